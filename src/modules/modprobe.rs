//! `modprobe`: a kernel module loaded (or removed) now and persisted for the next boot in
//! `/etc/modules-load.d/<name>.conf` (its parameters in `/etc/modprobe.d/<name>.conf`), as
//! community.general.modprobe does with `persistent: present`.

use serde::Deserialize;

use super::sysctl::parent_dir;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::kernel::module_name;
use crate::hoststate::{FileKind, HostView, KernelRead, ModuleState, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Persistent {
    /// Loaded at boot (`state: present`) or not configured to be (`state: absent`).
    Present,
    /// The boot-time files removed.
    Absent,
    /// The boot-time files left as they are.
    Disabled,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: Tpl<String>,
    pub state: Option<Tpl<State>>,
    pub params: Option<Tpl<String>>,
    /// Default `present` (community.general's default is `disabled`): a prerequisite loaded
    /// only until the next reboot would break the node then.
    pub persistent: Option<Tpl<Persistent>>,
}

#[derive(Debug)]
pub struct Modprobe {
    name: String,
    state: State,
    params: Vec<String>,
    persistent: Persistent,
}

pub const LOAD_DIR: &str = "/etc/modules-load.d";
pub const OPTIONS_DIR: &str = "/etc/modprobe.d";

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Modprobe, ModuleError> {
        let name = module_name(&self.name.resolve(cx.templates, cx.vars, cx.what)?);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ModuleError::Invalid(format!(
                "name: {name:?} is not a kernel module name"
            )));
        }
        let params: Vec<String> = opt(&self.params, cx)?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if let Some(p) = params.iter().find(|p| !p.contains('=')) {
            return Err(ModuleError::Invalid(format!(
                "params: {p:?} is not NAME=VALUE"
            )));
        }
        Ok(Modprobe {
            name,
            state: opt(&self.state, cx)?.unwrap_or(State::Present),
            params,
            persistent: opt(&self.persistent, cx)?.unwrap_or(Persistent::Present),
        })
    }
}

impl Modprobe {
    fn load_file(&self) -> String {
        format!("{LOAD_DIR}/{}.conf", self.name)
    }
    fn options_file(&self) -> String {
        format!("{OPTIONS_DIR}/{}.conf", self.name)
    }
    /// Each boot-time file with the content it must have (`None`: must not exist); files
    /// not managed are left out.
    fn wanted_files(&self) -> Vec<(String, Option<String>)> {
        match (self.state, self.persistent) {
            (_, Persistent::Disabled) => Vec::new(),
            (State::Present, Persistent::Present) => {
                let mut v = vec![(self.load_file(), Some(format!("{}\n", self.name)))];
                if !self.params.is_empty() {
                    v.push((
                        self.options_file(),
                        Some(format!("options {} {}\n", self.name, self.params.join(" "))),
                    ));
                }
                v
            }
            _ => vec![(self.load_file(), None), (self.options_file(), None)],
        }
    }
}

impl Module for Modprobe {
    fn reads(&self) -> Vec<Read> {
        let mut r = vec![Read::Kernel(KernelRead::Module(self.name.clone()))];
        for (path, _) in self.wanted_files() {
            r.push(Read::File(parent_dir(&path)));
            r.push(Read::File(path));
        }
        r
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        let live = view
            .kernel_module(&self.name)
            .unwrap_or(ModuleState::Absent);
        let word = |s: ModuleState| match s {
            ModuleState::Loaded => "loaded",
            ModuleState::Builtin => "built in",
            ModuleState::Absent => "not loaded",
        };
        let remove = match (self.state, live) {
            (State::Present, ModuleState::Absent) => Some(false),
            (State::Absent, ModuleState::Loaded) => Some(true),
            (State::Absent, ModuleState::Builtin) => {
                return Err(ModuleError::Invalid(format!(
                    "module {} is built into the kernel: it cannot be removed",
                    self.name
                )))
            }
            _ => None,
        };
        if let Some(remove) = remove {
            ops.push(Op::Modprobe {
                name: self.name.clone(),
                params: if remove {
                    Vec::new()
                } else {
                    self.params.clone()
                },
                remove,
            });
            diffs.push(DiffItem {
                subject: format!("kernel module {}", self.name),
                before: format!("{}\n", word(live)),
                after: format!("{}\n", if remove { "not loaded" } else { "loaded" }),
                secret: false,
            });
        }
        for (path, want) in self.wanted_files() {
            let f = view.file(&path).filter(|f| f.exists());
            let have = f.map(|f| {
                String::from_utf8_lossy(f.content.as_deref().unwrap_or_default()).into_owned()
            });
            match (want, have) {
                (None, Some(before)) => {
                    ops.push(Op::Remove { path: path.clone() });
                    diffs.push(DiffItem {
                        subject: path,
                        before,
                        after: String::new(),
                        secret: false,
                    });
                }
                (Some(want), have) if have.as_deref() != Some(want.as_str()) => {
                    let dir = parent_dir(&path);
                    if have.is_none()
                        && !view
                            .file(&dir)
                            .is_some_and(|d| d.kind == FileKind::Directory)
                    {
                        ops.push(Op::Mkdir {
                            path: dir,
                            mode: 0o755,
                            owner: None,
                            group: None,
                        });
                    }
                    ops.push(Op::WriteFile {
                        path: path.clone(),
                        content: want.clone().into_bytes(),
                        mode: f.map_or(0o644, |f| f.mode),
                        owner: f.map(|f| f.owner.clone()),
                        group: f.map(|f| f.group.clone()),
                    });
                    diffs.push(DiffItem {
                        subject: path,
                        before: have.unwrap_or_default(),
                        after: want,
                        secret: false,
                    });
                }
                _ => {}
            }
        }
        if !ops.is_empty() {
            return Ok(Planned::Change { ops, diffs });
        }
        let boot = match (self.state, self.persistent) {
            (_, Persistent::Disabled) => String::new(),
            (State::Present, Persistent::Present) => {
                format!(", loaded at boot by {}", self.load_file())
            }
            _ => ", not loaded at boot".into(),
        };
        Ok(Planned::NoChange {
            reason: format!("module {} is {}{boot}", self.name, word(live)),
        })
    }
}
