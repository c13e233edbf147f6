//! `file`: a directory, an absent path, a touched file, or the attributes of an existing one.

use serde::Deserialize;

use super::file_common::{attr_diffs, Mode};
use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{FileKind, HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    File,
    Directory,
    Absent,
    Touch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(alias = "dest", alias = "name")]
    pub path: Tpl<String>,
    #[serde(default)]
    pub state: Option<Tpl<State>>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct File {
    path: String,
    state: State,
    mode: Option<u32>,
    owner: Option<String>,
    group: Option<String>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<File, ModuleError> {
        Ok(File {
            path: absolute(self.path.resolve(cx.templates, cx.vars, cx.what)?, "path")?,
            state: opt(&self.state, cx)?.unwrap_or_default(),
            mode: opt(&self.mode, cx)?.map(|m| m.0),
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}

impl Module for File {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.path.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let cur = view
            .file(&self.path)
            .ok_or_else(|| ModuleError::Invalid(format!("{} was not read", self.path)))?;
        let host_err = |message: &str| ModuleError::Host {
            path: self.path.clone(),
            message: message.to_string(),
        };
        let no_change = |what: &str| Planned::NoChange {
            reason: format!("{} {what}", self.path),
        };
        let set_attrs = |diffs: Vec<DiffItem>| Planned::Change {
            ops: vec![Op::SetAttrs {
                path: self.path.clone(),
                mode: self.mode,
                owner: self.owner.clone(),
                group: self.group.clone(),
            }],
            diffs,
        };
        let attrs = attr_diffs(
            view,
            &self.path,
            self.mode,
            self.owner.as_deref(),
            self.group.as_deref(),
        );
        let state_item = |before: &str, after: &str| DiffItem {
            subject: format!("{} (state)", self.path),
            before: before.into(),
            after: after.into(),
            secret: false,
        };
        Ok(match (self.state, cur.kind) {
            (State::Absent, FileKind::Absent) => no_change("is absent"),
            (State::Absent, kind) => Planned::Change {
                ops: vec![Op::Remove {
                    path: self.path.clone(),
                }],
                diffs: vec![state_item(kind_name(kind), "absent")],
            },
            (State::Directory, FileKind::Absent) => Planned::Change {
                ops: vec![Op::Mkdir {
                    path: self.path.clone(),
                    mode: self.mode.unwrap_or(0o755),
                    owner: self.owner.clone(),
                    group: self.group.clone(),
                }],
                diffs: vec![state_item("absent", "directory")],
            },
            (State::Directory, FileKind::Directory) if attrs.is_empty() => {
                no_change("is a directory with the wanted attributes")
            }
            (State::Directory, FileKind::Directory) => set_attrs(attrs),
            (State::Directory, _) => return Err(host_err("exists and is not a directory")),
            (State::Touch, FileKind::Absent) => Planned::Change {
                ops: vec![Op::WriteFile {
                    path: self.path.clone(),
                    content: Vec::new(),
                    mode: self.mode.unwrap_or(0o644),
                    owner: self.owner.clone(),
                    group: self.group.clone(),
                }],
                diffs: vec![state_item("absent", "file")],
            },
            (State::File, FileKind::Absent) => {
                return Err(host_err("does not exist (use state: touch to create it)"))
            }
            (State::Touch | State::File, _) if attrs.is_empty() => {
                no_change("exists with the wanted attributes")
            }
            (State::Touch | State::File, _) => set_attrs(attrs),
        })
    }
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Absent => "absent",
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Other => "other",
    }
}
