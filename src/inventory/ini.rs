//! Ansible's INI inventory plugin: `[group]`, `[group:vars]`, `[group:children]`, hosts before
//! any section (`ungrouped`), `host:port`, ranges, `key=value` typed as Python literals, `#`
//! and `;` comments; errors are `FILE:LINE: message` with the plugin's wording.

use std::path::Path;

use serde_yaml::Value;

use super::connection;
use super::error::{InventoryError, Place};
use super::pylit;
use super::range;
use super::raw::Raw;

/// A `[group:children]` entry naming a group not declared yet (Ansible's pending declaration).
struct Pending {
    line: usize,
    vars: bool,
    parents: Vec<String>,
}

/// Reads INI `text` into `raw`.
pub(crate) fn read(text: &str, source: &Path, raw: &mut Raw) -> Result<(), InventoryError> {
    let err = |line: usize, message: String| InventoryError::Invalid {
        place: Place {
            file: source.to_path_buf(),
            position: Some((line, 0)),
        },
        message,
    };
    let mut pending: Vec<(String, Pending)> = Vec::new();
    let find =
        |pending: &[(String, Pending)], name: &str| pending.iter().position(|(n, _)| n == name);
    let (mut group, mut state) = ("ungrouped".to_string(), "hosts".to_string());
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some((name, kind)) = section(line) {
            let kind = kind.unwrap_or("hosts");
            if !matches!(kind, "hosts" | "children" | "vars") {
                return Err(err(
                    lineno,
                    format!("Section [{name}:{kind}] has unknown type: {kind}"),
                ));
            }
            if raw.group(name).is_none() {
                if kind == "vars" && find(&pending, name).is_none() {
                    pending.push((
                        name.to_string(),
                        Pending {
                            line: lineno,
                            vars: true,
                            parents: Vec::new(),
                        },
                    ));
                }
                raw.add_group(name);
            }
            if kind != "vars" {
                if let Some(i) = find(&pending, name) {
                    if pending[i].1.vars {
                        pending.remove(i);
                    } else {
                        add_pending_children(name, &mut pending, raw)
                            .map_err(|m| err(lineno, m))?;
                    }
                }
            }
            (group, state) = (name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(err(lineno, format!("Invalid section entry: '{line}'. Please make sure that there are no spaces in the section entry, and that there are no other invalid characters")));
        }
        let g = raw.add_group(&group);
        match state.as_str() {
            "hosts" => {
                let tokens = shlex_split(line).map_err(|e| {
                    err(
                        lineno,
                        format!("Error parsing host definition '{line}': {e}"),
                    )
                })?;
                let Some(entry) = tokens.first() else {
                    continue;
                };
                let (names, port) = range::expand_hostpattern(entry)
                    .map_err(|m| err(lineno, format!("host {entry:?}: {m}")))?;
                if entry.trim().ends_with(':') && port.is_none() {
                    return Err(err(lineno, format!("Invalid host pattern '{entry}' supplied, ending in ':' is not allowed, this character is reserved to provide a port.")));
                }
                if names.iter().any(|n| n.trim() == "---") {
                    return Err(err(lineno, format!("Invalid host pattern '{entry}' supplied, '---' is normally a sign this is a YAML file.")));
                }
                let mut vars = Vec::new();
                for token in &tokens[1..] {
                    let Some((k, v)) = token.split_once('=') else {
                        return Err(err(
                            lineno,
                            format!("Expected key=value host variable assignment, got: {token}"),
                        ));
                    };
                    let value = typed(v);
                    connection::check(k, &value)
                        .map_err(|m| err(lineno, format!("host {entry:?}: variable {k}: {m}")))?;
                    vars.push((k.to_string(), value));
                }
                for name in names {
                    let h = raw.add_host(&name, Some(g), source);
                    if let Some(port) = port {
                        raw.set_host_var(h, connection::PORT[1], port.into());
                    }
                    for (k, v) in &vars {
                        raw.set_host_var(h, k, v.clone());
                    }
                }
            }
            "vars" => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(lineno, format!("Expected key=value, got: {line}")));
                };
                let (k, value) = (k.trim(), typed(v.trim()));
                connection::check(k, &value)
                    .map_err(|m| err(lineno, format!("group {group:?}: variable {k}: {m}")))?;
                raw.set_group_var(g, k, value)
                    .map_err(|m| err(lineno, format!("group {group:?}: {m}")))?;
            }
            _ => {
                let Some(child) = group_name(line) else {
                    return Err(err(lineno, format!("Expected group name, got: {line}")));
                };
                if raw.group(child).is_none() {
                    match find(&pending, child) {
                        Some(i) => pending[i].1.parents.push(group.clone()),
                        None => pending.push((
                            child.to_string(),
                            Pending {
                                line: lineno,
                                vars: false,
                                parents: vec![group.clone()],
                            },
                        )),
                    }
                } else {
                    raw.add_child(&group, child).map_err(|m| err(lineno, m))?;
                }
            }
        }
    }
    if let Some((name, decl)) = pending.into_iter().next() {
        return Err(err(
            decl.line,
            if decl.vars {
                format!("Section [{name}:vars] not valid for undefined group: {name}")
            } else {
                let parent = decl.parents.last().cloned().unwrap_or_default();
                format!("Section [{parent}:children] includes undefined group: {name}")
            },
        ));
    }
    Ok(())
}

fn add_pending_children(
    group: &str,
    pending: &mut Vec<(String, Pending)>,
    raw: &mut Raw,
) -> Result<(), String> {
    let Some(i) = pending.iter().position(|(n, _)| n == group) else {
        return Ok(());
    };
    let parents = pending[i].1.parents.clone();
    for parent in &parents {
        raw.add_child(parent, group)?;
        if pending.iter().any(|(n, d)| n == parent && !d.vars) {
            add_pending_children(parent, pending, raw)?;
        }
    }
    if let Some(i) = pending.iter().position(|(n, _)| n == group) {
        pending.remove(i);
    }
    Ok(())
}

/// A value as the plugin types it: a Python literal, else the text.
fn typed(text: &str) -> Value {
    pylit::eval(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// `[name]` or `[name:kind]`, with an optional trailing comment (the plugin's section regex).
fn section(line: &str) -> Option<(&str, Option<&str>)> {
    let body = line.strip_prefix('[')?;
    let close = body.find(']')?;
    let rest = body[close + 1..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let inside = &body[..close];
    let (name, kind) = match inside.split_once(':') {
        Some((name, kind)) => (name, Some(kind)),
        None => (inside, None),
    };
    let name_ok =
        !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ':' || c == ']');
    let kind_ok =
        kind.is_none_or(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && kind_ok).then_some((name, kind))
}

/// A `[group:children]` line: a group name, optionally followed by a comment.
fn group_name(line: &str) -> Option<&str> {
    let end = line
        .find(|c: char| c.is_whitespace() || c == ':' || c == ']')
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start();
    (!name.is_empty() && (rest.is_empty() || rest.starts_with('#'))).then_some(name)
}

/// Python's `shlex.split(line, comments=True)` (POSIX mode): quotes removed, backslash escapes,
/// `#` outside quotes starts a comment.
pub(crate) fn shlex_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    let mut token = String::new();
    let mut in_token = false;
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut token));
                    in_token = false;
                }
            }
            '#' => break,
            '\\' => {
                token.push(chars.next().ok_or("No escaped character")?);
                in_token = true;
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next().ok_or("No closing quotation")? {
                        '\'' => break,
                        c => token.push(c),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next().ok_or("No closing quotation")? {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\')) => {
                            token.push(chars.next().expect("peeked"))
                        }
                        c => token.push(c),
                    }
                }
            }
            c => {
                token.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(token);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlex_as_python() {
        assert_eq!(
            shlex_split("h a='x y' b=\"q\\\"\" c=d#e f").unwrap(),
            ["h", "a=x y", "b=q\"", "c=d"]
        );
        assert_eq!(shlex_split("h a=''").unwrap(), ["h", "a="]);
        assert_eq!(shlex_split("h a='x").unwrap_err(), "No closing quotation");
    }

    #[test]
    fn sections() {
        assert_eq!(section("[web]"), Some(("web", None)));
        assert_eq!(section("[web:vars] # c"), Some(("web", Some("vars"))));
        assert_eq!(section("[web server]"), None);
        assert_eq!(group_name("kube_node # x"), Some("kube_node"));
    }

    #[test]
    fn pending_declarations_and_errors() {
        let mut raw = Raw::new();
        let text = "[a:children]\nb\n[b]\nh1 x=1 y=yes\n[a:vars]\nz=True\n";
        read(text, Path::new("hosts"), &mut raw).unwrap();
        let a = raw.group("a").unwrap();
        assert_eq!(raw.groups[a].children, [raw.group("b").unwrap()]);
        let h = raw.host("h1").unwrap();
        assert_eq!(
            raw.hosts[h].vars,
            serde_yaml::from_str::<serde_yaml::Mapping>("{x: 1, y: 'yes'}").unwrap()
        );
        let cases = [
            (
                "[a:children]\nb\n",
                "hosts:2: Section [a:children] includes undefined group: b",
            ),
            (
                "[x:vars]\nk=v\n",
                "hosts:1: Section [x:vars] not valid for undefined group: x",
            ),
            (
                "[g]\nh k\n",
                "hosts:2: Expected key=value host variable assignment, got: k",
            ),
            (
                "[g:hosts]\n[g:meta]\n",
                "hosts:2: Section [g:meta] has unknown type: meta",
            ),
            (
                "[g]\nh a='x\n",
                "hosts:2: Error parsing host definition 'h a='x': No closing quotation",
            ),
        ];
        for (text, want) in cases {
            let e = read(text, Path::new("hosts"), &mut Raw::new()).unwrap_err();
            assert_eq!(e.to_string(), want, "{text}");
        }
    }
}
