//! What a module decides: `Planned::NoChange { reason }` or `Planned::Change { ops, diffs }`.
//! Ops are data; the executor runs them on a host, `simulate` applies them to a HostView.

use serde::Serialize;

use crate::hoststate::{unit_of_path, FileKind, FileState, HostView};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Atomic write: temp file in the same directory, fsync, mode/owner, rename.
    WriteFile {
        path: String,
        #[serde(skip)]
        content: Vec<u8>,
        mode: u32,
        owner: Option<String>,
        group: Option<String>,
    },
    SetAttrs {
        path: String,
        mode: Option<u32>,
        owner: Option<String>,
        group: Option<String>,
    },
    Mkdir {
        path: String,
        mode: u32,
        owner: Option<String>,
        group: Option<String>,
    },
    Remove {
        path: String,
    },
    /// A command or shell task; `argv` is run without a shell, `shell` through `sh -c`.
    Exec {
        command: String,
        chdir: Option<String>,
    },
    /// `systemctl ARGS…`
    Systemctl {
        args: Vec<String>,
    },
    SwapOff,
}

/// One item of a diff: a file's content, or one attribute of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffItem {
    /// What changes: a path, `unit kubelet.service`, …
    pub subject: String,
    pub before: String,
    pub after: String,
    /// Content holds a secret: render only that it changed.
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    NoChange { reason: String },
    Change { ops: Vec<Op>, diffs: Vec<DiffItem> },
}

impl Planned {
    pub fn is_change(&self) -> bool {
        matches!(self, Planned::Change { .. })
    }
}

/// Apply `ops` to `view` as a host would: used both for `--check` and, after a real apply,
/// to keep the view current without re-reading the host.
pub fn simulate(view: &mut HostView, ops: &[Op]) {
    for op in ops {
        match op {
            Op::WriteFile {
                path,
                content,
                mode,
                owner,
                group,
            } => {
                let old = view.file(path).cloned();
                view.set_file(
                    path,
                    FileState {
                        kind: FileKind::File,
                        mode: *mode,
                        owner: owner
                            .clone()
                            .or_else(|| {
                                old.as_ref().filter(|o| o.exists()).map(|o| o.owner.clone())
                            })
                            .unwrap_or_else(|| "root".into()),
                        group: group
                            .clone()
                            .or_else(|| {
                                old.as_ref().filter(|o| o.exists()).map(|o| o.group.clone())
                            })
                            .unwrap_or_else(|| "root".into()),
                        content: Some(content.clone()),
                    },
                );
                mark_unit_file_changed(view, path);
            }
            Op::SetAttrs {
                path,
                mode,
                owner,
                group,
            } => {
                if let Some(mut f) = view.file(path).cloned() {
                    if let Some(m) = mode {
                        f.mode = *m;
                    }
                    if let Some(o) = owner {
                        f.owner = o.clone();
                    }
                    if let Some(g) = group {
                        f.group = g.clone();
                    }
                    view.set_file(path, f);
                }
            }
            Op::Mkdir {
                path,
                mode,
                owner,
                group,
            } => view.set_file(
                path,
                FileState {
                    kind: FileKind::Directory,
                    mode: *mode,
                    owner: owner.clone().unwrap_or_else(|| "root".into()),
                    group: group.clone().unwrap_or_else(|| "root".into()),
                    content: None,
                },
            ),
            Op::Remove { path } => {
                view.set_file(path, FileState::absent());
                mark_unit_file_changed(view, path);
            }
            Op::Exec { .. } => {}
            Op::Systemctl { args } => simulate_systemctl(view, args),
            Op::SwapOff => view.set_swaps(Vec::new()),
        }
    }
}

fn mark_unit_file_changed(view: &mut HostView, path: &str) {
    if let Some(unit) = unit_of_path(path) {
        let u = view.unit_mut(&unit);
        // systemd flags a loaded unit whose file changed; a never-loaded unit shows up as
        // not-found until daemon-reload.
        u.need_daemon_reload = true;
        if u.load_state.is_empty() {
            u.load_state = "not-found".into();
        }
    }
}

fn simulate_systemctl(view: &mut HostView, args: &[String]) {
    let Some((verb, units)) = args.split_first() else {
        return;
    };
    if verb == "daemon-reload" {
        for (_, u) in view.units_mut() {
            if u.need_daemon_reload {
                u.need_daemon_reload = false;
                u.load_state = "loaded".into();
            }
        }
        return;
    }
    let now = units.iter().any(|u| u == "--now");
    for unit in units.iter().filter(|u| !u.starts_with('-')) {
        let u = view.unit_mut(unit);
        match verb.as_str() {
            "enable" if now => {
                u.unit_file_state = "enabled".into();
                u.active_state = "active".into();
            }
            "disable" if now => {
                u.unit_file_state = "disabled".into();
                u.active_state = "inactive".into();
            }
            "enable" => u.unit_file_state = "enabled".into(),
            "disable" => u.unit_file_state = "disabled".into(),
            "start" | "restart" | "reload-or-restart" => u.active_state = "active".into(),
            "stop" => u.active_state = "inactive".into(),
            _ => {}
        }
    }
}
