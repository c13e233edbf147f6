//! Reading and editing the flags of a container's `command:`/`args:` in a static pod manifest.
//!
//! serde_yaml decides what the manifest means (which container, which items); the edit itself is
//! line based so comments, key order and formatting survive, which a serialize round trip would
//! lose. After every step the edited text is parsed again and must equal the original document
//! with only the flag list changed.

use serde_yaml::Value;

use super::{apply_op, plan, validate_edit, FlagEdit, FlagError, Op, MANIFEST_TARGET};

/// Applies `edits` in order to the flags of `container` (by name; default: the only container).
///
/// Flags are looked for in `command` then `args`; new flags go to `args` when the container has
/// that key, else to `command`.
pub fn edit_manifest_flags(
    manifest_yaml: &str,
    container: Option<&str>,
    edits: &[FlagEdit],
) -> Result<String, FlagError> {
    for edit in edits {
        validate_edit(edit, MANIFEST_TARGET)?;
    }
    let mut text = manifest_yaml.to_string();
    for edit in edits {
        let sem = Semantic::new(&text, container)?;
        let ops = plan(&sem.argv(), sem.first_flag(), edit);
        for op in ops {
            let before = Semantic::new(&text, container)?;
            let lists = locate(&text, &before)?;
            let mut expected = before.argv();
            apply_op(&mut expected, &op);
            let next = apply(&text, &before, &lists, &op)?;
            check(&next, container, &before, &expected, edit)?;
            text = next;
        }
    }
    Ok(text)
}

/// The container's `command` followed by its `args`: the argv the kubelet will run.
#[cfg(test)]
pub fn manifest_args(
    manifest_yaml: &str,
    container: Option<&str>,
) -> Result<Vec<String>, FlagError> {
    Ok(Semantic::new(manifest_yaml, container)?.argv())
}

/// What serde_yaml says the manifest means.
struct Semantic {
    doc: Value,
    index: usize,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
}

impl Semantic {
    fn new(text: &str, container: Option<&str>) -> Result<Semantic, FlagError> {
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| FlagError::ManifestYaml(e.to_string()))?;
        let containers = doc
            .get("spec")
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_sequence)
            .ok_or_else(|| FlagError::ManifestLayout("no spec.containers list".into()))?;
        let names: Vec<String> = containers
            .iter()
            .map(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let index = match container {
            Some(want) => names
                .iter()
                .position(|n| n == want)
                .ok_or_else(|| FlagError::ContainerNotFound(want.to_string(), names.join(", ")))?,
            None if containers.len() == 1 => 0,
            None if containers.is_empty() => {
                return Err(FlagError::ManifestLayout("spec.containers is empty".into()))
            }
            None => return Err(FlagError::AmbiguousContainer(names.join(", "))),
        };
        let c = &containers[index];
        let list = |key: &str| -> Result<Option<Vec<String>>, FlagError> {
            match c.get(key) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(Vec::new())),
                Some(Value::Sequence(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            FlagError::ManifestLayout(format!(
                                "container {:?}: {key} item {v:?} is not a string",
                                names[index]
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(other) => Err(FlagError::ManifestLayout(format!(
                    "container {:?}: {key} is not a list: {other:?}",
                    names[index]
                ))),
            }
        };
        let command = list("command")?;
        let args = list("args")?;
        if command.is_none() && args.is_none() {
            return Err(FlagError::ManifestLayout(format!(
                "container {:?} has neither command nor args",
                names[index]
            )));
        }
        Ok(Semantic {
            index,
            command,
            args,
            doc,
        })
    }

    fn argv(&self) -> Vec<String> {
        let mut v = self.command.clone().unwrap_or_default();
        v.extend(self.args.clone().unwrap_or_default());
        v
    }

    /// `command[0]` is the executable; `args` alone holds only arguments.
    fn first_flag(&self) -> usize {
        usize::from(self.command.as_ref().is_some_and(|c| !c.is_empty()))
    }

    fn command_len(&self) -> usize {
        self.command.as_ref().map_or(0, Vec::len)
    }
}

/// One physical line of the manifest.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    start: usize,
    content_end: usize,
    end: usize,
    indent: usize,
    /// The text after the indentation, without the terminator.
    body: &'a str,
}

impl Line<'_> {
    fn skip(&self) -> bool {
        self.body.is_empty() || self.body.starts_with('#')
    }
    fn is_item(&self) -> bool {
        self.body == "-" || self.body.starts_with("- ")
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let nl = text[start..].find('\n').map(|i| start + i);
        let (content_end, end) = match nl {
            Some(nl) if nl > start && text.as_bytes()[nl - 1] == b'\r' => (nl - 1, nl + 1),
            Some(nl) => (nl, nl + 1),
            None => (text.len(), text.len()),
        };
        let content = &text[start..content_end];
        let body = content.trim_start_matches(' ');
        out.push(Line {
            start,
            content_end,
            end,
            indent: content.len() - body.len(),
            body: body.trim_end(),
        });
        start = end;
    }
    out
}

/// A block sequence item: its lines and where its scalar starts.
#[derive(Debug, Clone, Copy)]
struct Item {
    first: usize,
    last: usize,
    scalar_start: usize,
}

#[derive(Debug, Clone)]
struct List {
    /// Line holding the `command:`/`args:` key.
    key_line: usize,
    /// Column of the key, i.e. of the container mapping's keys.
    key_col: usize,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
struct Lists {
    command: Option<List>,
    args: Option<List>,
}

fn layout(msg: impl Into<String>) -> FlagError {
    FlagError::ManifestLayout(msg.into())
}

/// Key `key` written at `col`, either on its own line or after a sequence dash (`- key:`).
fn key_at(line: &Line, col: usize, key: &str) -> bool {
    let (at, body) = if line.indent == col {
        (col, line.body)
    } else if line.is_item() {
        let rest = line.body[1..].trim_start_matches(' ');
        (line.indent + line.body.len() - rest.len(), rest)
    } else {
        return false;
    };
    at == col
        && body
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.is_empty() || r.starts_with(' '))
}

/// The lines `from..to` belonging to the block that starts after line `from - 1` at deeper
/// indentation than `parent_col` (or at the same column, for dash items of an indentless sequence).
fn block_end(ls: &[Line], from: usize, parent_col: usize, allow_same_col_items: bool) -> usize {
    let mut i = from;
    while i < ls.len() {
        let l = &ls[i];
        if !l.skip()
            && (l.indent < parent_col
                || (l.indent == parent_col && !(allow_same_col_items && l.is_item())))
        {
            break;
        }
        i += 1;
    }
    i
}

/// Items of the block sequence that is the value of the key on `key_line`.
fn seq_items(
    ls: &[Line],
    key_line: usize,
    key_col: usize,
    limit: usize,
) -> Result<Vec<Item>, FlagError> {
    let end = block_end(ls, key_line + 1, key_col, true).min(limit);
    let Some(first) = (key_line + 1..end).find(|&i| !ls[i].skip()) else {
        return Ok(Vec::new());
    };
    let col = ls[first].indent;
    let mut items: Vec<Item> = Vec::new();
    for (i, l) in ls.iter().enumerate().take(end).skip(first) {
        if l.skip() {
            continue;
        }
        if l.indent == col && l.is_item() {
            let rest = l.body[1..].trim_start_matches(' ');
            items.push(Item {
                first: i,
                last: i,
                scalar_start: l.start + l.indent + (l.body.len() - rest.len()),
            });
        } else if l.indent > col {
            let last = items
                .last_mut()
                .ok_or_else(|| layout(format!("line {}: unexpected indentation in list", i + 1)))?;
            last.last = i;
        } else {
            return Err(layout(format!("line {}: expected a list item", i + 1)));
        }
    }
    Ok(items)
}

/// Finds the container's `command`/`args` lists in the text.
fn locate(text: &str, sem: &Semantic) -> Result<Lists, FlagError> {
    let ls = lines(text);
    let spec = (0..ls.len())
        .find(|&i| key_at(&ls[i], 0, "spec"))
        .ok_or_else(|| layout("no top-level `spec:` line"))?;
    let spec_end = block_end(&ls, spec + 1, 0, false);
    let spec_col = (spec + 1..spec_end)
        .map(|i| &ls[i])
        .find(|l| !l.skip())
        .map(|l| l.indent)
        .ok_or_else(|| layout("`spec:` is empty"))?;
    let containers = (spec + 1..spec_end)
        .find(|&i| key_at(&ls[i], spec_col, "containers"))
        .ok_or_else(|| layout("no `containers:` under `spec:`"))?;
    let c_end = block_end(&ls, containers + 1, spec_col, true).min(spec_end);
    let dashes: Vec<usize> = {
        let col = (containers + 1..c_end)
            .map(|i| &ls[i])
            .find(|l| !l.skip())
            .map(|l| l.indent)
            .ok_or_else(|| layout("`containers:` is not a block list"))?;
        (containers + 1..c_end)
            .filter(|&i| ls[i].indent == col && ls[i].is_item())
            .collect()
    };
    let Some(&dash) = dashes.get(sem.index) else {
        return Err(layout(
            "could not find the container's list item in the text",
        ));
    };
    let item_end = dashes.get(sem.index + 1).copied().unwrap_or(c_end);
    let d = &ls[dash];
    let rest = d.body[1..].trim_start_matches(' ');
    let key_col = d.indent + d.body.len() - rest.len();
    let find = |key: &str, expect: &Option<Vec<String>>| -> Result<Option<List>, FlagError> {
        let Some(expect) = expect else {
            return Ok(None);
        };
        let key_line = (dash..item_end)
            .find(|&i| key_at(&ls[i], key_col, key))
            .ok_or_else(|| {
                layout(format!(
                    "could not find `{key}:` of the container in the text"
                ))
            })?;
        let l = &ls[key_line];
        let after = l.body[l.body.find(':').expect("key_at checked") + 1..].trim_start();
        if !(after.is_empty() || after.starts_with('#')) {
            return Err(layout(format!(
                "line {}: `{key}:` is not a block list (flow lists like [a, b] are not edited)",
                key_line + 1
            )));
        }
        let items = seq_items(&ls, key_line, key_col, item_end)?;
        if items.len() != expect.len() {
            return Err(layout(format!(
                "`{key}:` has {} items but {} list lines were found; unsupported formatting",
                expect.len(),
                items.len()
            )));
        }
        Ok(Some(List {
            key_line,
            key_col,
            items,
        }))
    };
    Ok(Lists {
        command: find("command", &sem.command)?,
        args: find("args", &sem.args)?,
    })
}

/// The YAML plain or quoted scalar for `s`, as serde_yaml writes it.
fn yaml_scalar(s: &str) -> Result<String, FlagError> {
    let out = serde_yaml::to_string(s).map_err(|e| FlagError::Internal(e.to_string()))?;
    let out = out.strip_suffix('\n').unwrap_or(&out);
    if out.contains('\n') {
        return Err(FlagError::Internal(format!(
            "{s:?} does not fit on one YAML line"
        )));
    }
    Ok(out.to_string())
}

fn splice(text: &str, start: usize, end: usize, with: &str) -> String {
    format!("{}{}{}", &text[..start], with, &text[end..])
}

fn apply(text: &str, sem: &Semantic, lists: &Lists, op: &Op) -> Result<String, FlagError> {
    let ls = lines(text);
    let item_of = |idx: usize| -> Item {
        let n = sem.command_len();
        if idx < n {
            lists.command.as_ref().expect("index is in command").items[idx]
        } else {
            lists.args.as_ref().expect("index is in args").items[idx - n]
        }
    };
    match op {
        Op::Replace { idx, word } => {
            let it = item_of(*idx);
            let end = ls[it.last].content_end;
            let old = &text[it.scalar_start..end];
            // Keep a trailing comment when the old scalar can be told apart from it.
            let comment = if it.first == it.last {
                let current = &sem.argv()[*idx];
                old.match_indices(" #")
                    .map(|(p, _)| old[..p].trim_end().len())
                    .find(|&p| {
                        serde_yaml::from_str::<String>(&old[..p]).ok().as_ref() == Some(current)
                    })
                    .map(|p| &old[p..])
            } else {
                None
            };
            // A bare `-` with the scalar on the next line needs the space a dash item requires.
            let space = if text[..it.scalar_start].ends_with('-') {
                " "
            } else {
                ""
            };
            let new = format!("{space}{}{}", yaml_scalar(word)?, comment.unwrap_or(""));
            Ok(splice(text, it.scalar_start, end, &new))
        }
        Op::Delete { idx } => {
            let it = item_of(*idx);
            Ok(splice(text, ls[it.first].start, ls[it.last].end, ""))
        }
        Op::Append { word } => {
            let list = lists
                .args
                .as_ref()
                .or(lists.command.as_ref())
                .expect("Semantic requires command or args");
            let scalar = yaml_scalar(word)?;
            let (after_line, prefix) = match list.items.last() {
                Some(it) => {
                    let l = &ls[it.first];
                    (it.last, text[l.start..it.scalar_start].to_string())
                }
                None => (list.key_line, format!("{}- ", " ".repeat(list.key_col + 2))),
            };
            let l = &ls[after_line];
            let terminator = if l.end > l.content_end {
                text[l.content_end..l.end].to_string()
            } else if text.contains("\r\n") {
                "\r\n".to_string()
            } else {
                "\n".to_string()
            };
            if l.end > l.content_end {
                Ok(splice(
                    text,
                    l.end,
                    l.end,
                    &format!("{prefix}{scalar}{terminator}"),
                ))
            } else {
                Ok(splice(
                    text,
                    l.end,
                    l.end,
                    &format!("{terminator}{prefix}{scalar}"),
                ))
            }
        }
    }
}

/// The edited document must be the original with only this container's flag list changed.
fn check(
    next: &str,
    container: Option<&str>,
    before: &Semantic,
    expected: &[String],
    edit: &FlagEdit,
) -> Result<(), FlagError> {
    let after = Semantic::new(next, container).map_err(|e| {
        FlagError::Internal(format!("edit of {} broke the manifest: {e}", edit.name()))
    })?;
    if after.argv() != expected {
        return Err(FlagError::Internal(format!(
            "edit of {} produced {:?}, expected {:?}",
            edit.name(),
            after.argv(),
            expected
        )));
    }
    let strip = |s: &Semantic| {
        let mut doc = s.doc.clone();
        if let Some(c) = doc
            .get_mut("spec")
            .and_then(|s| s.get_mut("containers"))
            .and_then(|c| c.get_mut(s.index))
            .and_then(Value::as_mapping_mut)
        {
            c.remove("command");
            c.remove("args");
        }
        doc
    };
    if strip(&after) != strip(before) {
        return Err(FlagError::Internal(format!(
            "edit of {} would change the manifest beyond the flag list",
            edit.name()
        )));
    }
    Ok(())
}
