//! Shared by the file-writing modules: file modes as users write them, and the plan for
//! "this path should hold these bytes with these attributes".

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::hoststate::{FileKind, HostView};
use crate::plan::{DiffItem, Op, Planned};

use super::ModuleError;

/// A file mode: `"0644"`, `"644"`, `0o644`, or the integer 644 read as octal digits (YAML 1.2
/// reads `0644` as decimal 644; users mean octal, as in Ansible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

fn parse_octal(s: &str) -> Option<u32> {
    let digits = s.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal file mode such as \"0644\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                parse_octal(s).map(Mode).ok_or_else(|| {
                    E::custom(format!(
                        "invalid file mode {s:?}: expected octal digits such as \"0644\""
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Mode, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Mode, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// A file with given bytes and attributes: what `template` and `copy` resolve to.
#[derive(Debug)]
pub struct ManagedFile {
    pub dest: String,
    pub content: Vec<u8>,
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// `false`: leave an existing file alone (copy's `force: false`).
    pub force: bool,
}

impl super::Module for ManagedFile {
    fn reads(&self) -> Vec<crate::hoststate::Read> {
        vec![crate::hoststate::Read::File(self.dest.clone())]
    }
    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        if !self.force && view.file(&self.dest).is_some_and(|f| f.exists()) {
            return Ok(Planned::NoChange {
                reason: format!("{} exists (force: false)", self.dest),
            });
        }
        plan_file(
            view,
            WantFile {
                path: &self.dest,
                content: self.content.clone(),
                mode: self.mode,
                owner: self.owner.clone(),
                group: self.group.clone(),
            },
        )
    }
}

pub struct WantFile<'a> {
    pub path: &'a str,
    pub content: Vec<u8>,
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// Plan a file's content and attributes. New files default to 0644.
pub fn plan_file(view: &HostView, want: WantFile<'_>) -> Result<Planned, ModuleError> {
    let cur = view
        .file(want.path)
        .ok_or_else(|| ModuleError::Invalid(format!("{} was not read", want.path)))?;
    match cur.kind {
        FileKind::Directory | FileKind::Other => {
            return Err(ModuleError::Host {
                path: want.path.to_string(),
                message: "exists and is not a regular file".into(),
            })
        }
        FileKind::Absent | FileKind::File => {}
    }
    let mut diffs = Vec::new();
    let before_content = cur.content.clone().unwrap_or_default();
    let content_changed = !cur.exists() || before_content != want.content;
    if content_changed {
        diffs.push(DiffItem {
            subject: want.path.to_string(),
            before: if cur.exists() {
                String::from_utf8_lossy(&before_content).into_owned()
            } else {
                String::new()
            },
            after: String::from_utf8_lossy(&want.content).into_owned(),
            secret: false,
        });
    }
    let mode = want.mode.map(|m| m.0);
    let attrs = attr_diffs(
        view,
        want.path,
        mode,
        want.owner.as_deref(),
        want.group.as_deref(),
    );
    if !content_changed && attrs.is_empty() {
        return Ok(Planned::NoChange {
            reason: format!("{} is up to date", want.path),
        });
    }
    let ops = if content_changed {
        let keep_mode = cur.exists().then_some(cur.mode);
        vec![Op::WriteFile {
            path: want.path.to_string(),
            content: want.content,
            mode: mode.or(keep_mode).unwrap_or(0o644),
            owner: want
                .owner
                .or_else(|| cur.exists().then(|| cur.owner.clone())),
            group: want
                .group
                .or_else(|| cur.exists().then(|| cur.group.clone())),
        }]
    } else {
        vec![Op::SetAttrs {
            path: want.path.to_string(),
            mode,
            owner: want.owner,
            group: want.group,
        }]
    };
    if content_changed && !cur.exists() {
        if let Some(m) = mode {
            diffs.push(mode_item(want.path, None, m));
        }
    } else {
        diffs.extend(attrs);
    }
    Ok(Planned::Change { ops, diffs })
}

/// Diff items for attributes of an existing path that differ from what is wanted.
pub fn attr_diffs(
    view: &HostView,
    path: &str,
    mode: Option<u32>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Vec<DiffItem> {
    let Some(cur) = view.file(path).filter(|f| f.exists()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(m) = mode.filter(|m| *m != cur.mode) {
        out.push(mode_item(path, Some(cur.mode), m));
    }
    if let Some(o) = owner.filter(|o| *o != cur.owner) {
        out.push(DiffItem {
            subject: format!("{path} (owner)"),
            before: cur.owner.clone(),
            after: o.to_string(),
            secret: false,
        });
    }
    if let Some(g) = group.filter(|g| *g != cur.group) {
        out.push(DiffItem {
            subject: format!("{path} (group)"),
            before: cur.group.clone(),
            after: g.to_string(),
            secret: false,
        });
    }
    out
}

fn mode_item(path: &str, before: Option<u32>, after: u32) -> DiffItem {
    DiffItem {
        subject: format!("{path} (mode)"),
        before: before.map(|m| format!("{m:04o}")).unwrap_or_default(),
        after: format!("{after:04o}"),
        secret: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_octal() {
        let m: Mode = serde_yaml::from_str("0644").unwrap();
        assert_eq!(m.0, 0o644);
        let m: Mode = serde_yaml::from_str("'0600'").unwrap();
        assert_eq!(m.0, 0o600);
        let m: Mode = serde_yaml::from_str("'0o755'").unwrap();
        assert_eq!(m.0, 0o755);
        assert!(serde_yaml::from_str::<Mode>("'rw-r--r--'").is_err());
        assert!(serde_yaml::from_str::<Mode>("999").is_err());
    }
}
