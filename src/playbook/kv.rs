//! Ansible's `key=value` module arguments (`copy: src=a dest=/b mode=0644`): split into a
//! mapping of strings, quoting as Ansible's `parse_kv` reads it. For the free-form modules
//! (`command`, `shell`) the words that are not one of their own options are the command.

/// Options a free-form module takes as `key=value` words among its command.
const FREE_FORM_OPTIONS: &[&str] = &["creates", "removes", "chdir"];

/// The argument a module's free-form text fills (`command: ls` is `cmd`), if it has one.
pub fn free_form(module: &str) -> Option<&'static str> {
    match module {
        "command" | "shell" => Some("cmd"),
        "include_vars" => Some("file"),
        _ => None,
    }
}

pub fn split_for(text: &str, module: &str) -> Result<serde_yaml::Mapping, String> {
    match free_form(module) {
        Some("cmd") => split(text, true),
        Some(key) if !text.contains('=') => {
            let mut m = serde_yaml::Mapping::new();
            m.insert(key.into(), text.trim().into());
            Ok(m)
        }
        _ => split(text, false),
    }
}

pub fn split(text: &str, free_form: bool) -> Result<serde_yaml::Mapping, String> {
    let mut map = serde_yaml::Mapping::new();
    let words = words(text)?;
    // The command is joined as Ansible's split_args and join_args join it, so that
    // `shell: |` runs its script as written: each word keeps the whitespace after it, less
    // the one space the join puts back (all of it when it holds a newline, and then the join
    // adds none); an option word takes its own whitespace away with it.
    let mut rest = String::new();
    let mut newline_before = false;
    for (i, (word, at)) in words.iter().enumerate() {
        let raw = &text[at.clone()];
        let next = words.get(i + 1).map_or(text.len(), |(_, r)| r.start);
        let after = &text[at.end..next];
        let kv = word
            .split_once('=')
            .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'));
        match kv {
            Some((k, v)) if !free_form || FREE_FORM_OPTIONS.contains(&k) => {
                map.insert(k.into(), scalar(v));
            }
            _ if free_form => {
                if !rest.is_empty() && !newline_before {
                    rest.push(' ');
                }
                rest.push_str(raw);
                newline_before = after.contains('\n');
                if newline_before {
                    rest.push_str(after);
                } else if i + 1 < words.len() {
                    rest.push_str(after.get(1..).unwrap_or_default());
                }
            }
            _ => {
                return Err(format!(
                    "{word:?} is not key=value (give this module's arguments as key=value words or as a mapping)"
                ))
            }
        }
    }
    if free_form && !rest.is_empty() {
        map.insert("cmd".into(), rest.into());
    }
    Ok(map)
}

/// A number stays a number (`port=6443`), anything else is text, as the module reads it
/// (`mode=0644` is the string "0644", `force=no` the string "no").
fn scalar(v: &str) -> serde_yaml::Value {
    let numeric =
        !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    match v.parse::<u64>() {
        Ok(n) if numeric => n.into(),
        _ => v.into(),
    }
}

/// Words split on unquoted whitespace; a word's quotes are removed (the unquoted text), and
/// where it stands in `text` is kept, so a command keeps its quoting and its whitespace.
/// Jinja `{{ }}` never splits.
fn words(text: &str) -> Result<Vec<(String, std::ops::Range<usize>)>, String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut word = String::new();
        let mut quote: Option<u8> = None;
        let mut depth = 0usize;
        while i < bytes.len() {
            let c = bytes[i];
            if quote.is_none() && depth == 0 && c.is_ascii_whitespace() {
                break;
            }
            match c {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    depth += 1;
                    word.push_str("{{");
                    i += 2;
                    continue;
                }
                b'}' if depth > 0 && bytes.get(i + 1) == Some(&b'}') => {
                    depth -= 1;
                    word.push_str("}}");
                    i += 2;
                    continue;
                }
                b'\'' | b'"' if depth == 0 && quote.is_none() => quote = Some(c),
                q if Some(q) == quote => quote = None,
                // Escapes are decoded, as Ansible's parse_kv does (`content="a\n"`).
                b'\\' if i + 1 < bytes.len() && b"ntr\\\"'".contains(&bytes[i + 1]) => {
                    i += 1;
                    word.push(match bytes[i] {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        c => c as char,
                    });
                }
                _ => {
                    let ch = text[i..].chars().next().expect("char boundary");
                    word.push(ch);
                    i += ch.len_utf8();
                    continue;
                }
            }
            i += 1;
        }
        if quote.is_some() {
            return Err(format!("unbalanced quote in {text:?}"));
        }
        out.push((word, start..i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &serde_yaml::Mapping, k: &str) -> serde_yaml::Value {
        m.get(k).cloned().unwrap_or(serde_yaml::Value::Null)
    }

    #[test]
    fn key_value_words_as_ansible_reads_them() {
        let m = split(
            "dest=/etc/x mode=0644 content='a b' port=6443 force=no",
            false,
        )
        .unwrap();
        assert_eq!(get(&m, "dest"), "/etc/x");
        assert_eq!(get(&m, "mode"), "0644");
        assert_eq!(get(&m, "content"), "a b");
        assert_eq!(get(&m, "port"), 6443);
        assert_eq!(get(&m, "force"), "no");
        let m = split(r#"content="a\nb" x='c\td'"#, false).unwrap();
        assert_eq!(get(&m, "content"), "a\nb");
        assert_eq!(get(&m, "x"), "c\td");
        let m = split(
            "path={{ dir }}/x line=\"a = {{ v | default('b c') }}\"",
            false,
        )
        .unwrap();
        assert_eq!(get(&m, "line"), "a = {{ v | default('b c') }}");
        assert!(split("just words", false)
            .unwrap_err()
            .contains("not key=value"));
    }

    #[test]
    fn free_form_keeps_the_command_and_takes_its_options() {
        let m = split("echo 'a b' > /tmp/x creates=/tmp/x chdir=/tmp", true).unwrap();
        assert_eq!(get(&m, "cmd"), "echo 'a b' > /tmp/x");
        assert_eq!(get(&m, "creates"), "/tmp/x");
        assert_eq!(get(&m, "chdir"), "/tmp");
        let m = split("sysctl -w net.ipv4.ip_forward=1", true).unwrap();
        assert_eq!(get(&m, "cmd"), "sysctl -w net.ipv4.ip_forward=1");
        // A script keeps its lines and spaces; an option word goes with the whitespace after
        // it, a newline included.
        let m = split(
            "a=1\nfor i in x y; do\n  echo \"$i$a\"   end\ndone chdir=/tmp\necho b\n",
            true,
        )
        .unwrap();
        assert_eq!(
            get(&m, "cmd"),
            "a=1\nfor i in x y; do\n  echo \"$i$a\"   end\ndone echo b\n"
        );
        assert_eq!(get(&m, "chdir"), "/tmp");
        let m = split("creates=/x ls  -l chdir=/d  /etc", true).unwrap();
        assert_eq!(get(&m, "cmd"), "ls  -l /etc");
        let m = split("echo x\nchdir=/tmp\necho y\n", true).unwrap();
        assert_eq!(get(&m, "cmd"), "echo x\necho y\n");
    }
}
