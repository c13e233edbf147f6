//! What a module decides: `Planned::NoChange { reason }` or `Planned::Change { ops, diffs }`.
//! Ops are data; the executor runs them on a host, `simulate` applies them to a HostView
//! (files, units and swaps of the host; objects of the clusters its kubectl reaches).

use serde::Serialize;
use serde_json::Value as Json;

use crate::hoststate::{unit_of_path, Cluster, FileKind, FileState, HostView, ObjectRef};

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
    /// `sysctl -w NAME=VALUE`: the running kernel's value (persisting it is a file write).
    Sysctl {
        name: String,
        value: String,
    },
    /// `modprobe NAME PARAMS…`, or `modprobe -r NAME` when `remove`.
    Modprobe {
        name: String,
        params: Vec<String>,
        remove: bool,
    },
    /// Server-side apply of objects under field manager `bootstrapctl`.
    KubeApply {
        cluster: Cluster,
        /// Each object with the reference it is read back by.
        #[serde(skip)]
        objects: Vec<(ObjectRef, Json)>,
    },
    KubeDelete {
        object: ObjectRef,
    },
    /// `kubectl certificate approve NAME`: the Approved condition on a CSR.
    ApproveCsr {
        object: ObjectRef,
        /// The CSR as it will be once approved, for the view.
        #[serde(skip)]
        approved: Json,
    },
    /// Create a bootstrap token: its Secret (with `stringData`, as applied), applied like
    /// any object. Its own op so that the plan says what it is without showing the Secret.
    CreateToken {
        object: ObjectRef,
        #[serde(skip)]
        secret: Json,
    },
    /// Install a verified binary or tarball (see `artifact`): run on its own, since an upload
    /// streams the file on the command's stdin.
    Artifact(Box<crate::artifact::ArtifactOp>),
}

impl Op {
    /// The kubectl invocation a cluster op runs (server-side apply or delete).
    pub fn kubectl_command(&self) -> Option<String> {
        let yaml = |v: &Json| serde_yaml::to_string(v).unwrap_or_default();
        match self {
            Op::KubeApply { cluster, objects } => {
                let docs: Vec<String> = objects.iter().map(|(_, o)| yaml(o)).collect();
                Some(cluster.apply_command(&docs.join("---\n")))
            }
            Op::CreateToken { object, secret } => Some(object.cluster.apply_command(&yaml(secret))),
            Op::KubeDelete { object } => Some(object.delete_command()),
            Op::ApproveCsr { object, .. } => Some(object.cluster.raw(&format!(
                "certificate approve {}",
                crate::shell::quote(&object.name)
            ))),
            _ => None,
        }
    }

    /// Ops whose effect is known from the plan and that may wait in the host's batch.
    /// Commands and cluster changes run when their task runs: later tasks may read the
    /// cluster through another host.
    pub fn deferrable(&self) -> bool {
        !matches!(
            self,
            Op::Exec { .. }
                | Op::Artifact(_)
                | Op::KubeApply { .. }
                | Op::KubeDelete { .. }
                | Op::CreateToken { .. }
                | Op::ApproveCsr { .. }
        )
    }
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

#[cfg(test)]
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
                view.plan_file(
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
                if let Some(unit) = unit_of_path(path) {
                    let u = view.plan_unit(&unit);
                    // systemd reads a unit file's enablement from disk, without a reload.
                    if u.unit_file_state != "enabled" {
                        u.unit_file_state = if installable(content) {
                            "disabled"
                        } else {
                            "static"
                        }
                        .into();
                    }
                }
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
                    view.plan_file(path, f);
                }
            }
            Op::Mkdir {
                path,
                mode,
                owner,
                group,
            } => view.plan_file(
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
                view.plan_file(path, FileState::absent());
                mark_unit_file_changed(view, path);
            }
            Op::Exec { .. } => {}
            Op::Artifact(a) => crate::artifact::simulate(view, a),
            Op::Systemctl { args } => simulate_systemctl(view, args),
            Op::SwapOff => view.plan_swaps(Vec::new()),
            Op::Sysctl { name, value } => view.plan_sysctl(name, value),
            Op::Modprobe { name, remove, .. } => view.plan_kernel_module(
                name,
                if *remove {
                    crate::hoststate::ModuleState::Absent
                } else {
                    crate::hoststate::ModuleState::Loaded
                },
            ),
            Op::KubeApply { objects, .. } => {
                for (r, obj) in objects {
                    let merged = match view.kube_object(r) {
                        Some(Ok(Some(live))) => merge(live, obj),
                        _ => obj.clone(),
                    };
                    view.plan_kube_object(r, Some(merged));
                }
            }
            Op::CreateToken { object, secret } => {
                view.plan_kube_object(object, Some(stored_secret(secret)));
            }
            Op::KubeDelete { object } => view.plan_kube_object(object, None),
            Op::ApproveCsr { object, approved } => {
                view.plan_kube_object(object, Some(approved.clone()))
            }
        }
    }
}

/// Whether a unit file has an `[Install]` section that can enable it (systemd's
/// "disabled" rather than "static").
fn installable(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    let mut in_install = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if in_install
            && ["WantedBy=", "RequiredBy=", "UpheldBy=", "Alias=", "Also="]
                .iter()
                .any(|k| line.starts_with(k) && line.len() > k.len())
        {
            return true;
        }
    }
    false
}

fn mark_unit_file_changed(view: &mut HostView, path: &str) {
    if let Some(unit) = unit_of_path(path) {
        let u = view.plan_unit(&unit);
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
        for name in view.unit_names() {
            if view.unit(&name).is_some_and(|u| u.need_daemon_reload) {
                let u = view.plan_unit(&name);
                u.need_daemon_reload = false;
                u.load_state = "loaded".into();
            }
        }
        return;
    }
    let now = units.iter().any(|u| u == "--now");
    for unit in units.iter().filter(|u| !u.starts_with('-')) {
        let u = view.plan_unit(unit);
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

/// A Secret as the server stores it: `stringData` is write-only, merged into `data` (base64).
fn stored_secret(applied: &Json) -> Json {
    use base64::Engine as _;
    let mut v = applied.clone();
    if let Some(Json::Object(sd)) = v.as_object_mut().and_then(|o| o.remove("stringData")) {
        if !v["data"].is_object() {
            v["data"] = Json::Object(serde_json::Map::new());
        }
        for (k, val) in sd {
            let text = val
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| val.to_string());
            v["data"][&k] = Json::from(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    v
}

/// A server-side apply as the server merges it: the fields given replace the live ones,
/// maps merge key by key, fields not given stay.
fn merge(live: &Json, applied: &Json) -> Json {
    match (live, applied) {
        (Json::Object(l), Json::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, av),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Json::Object(out)
        }
        (_, a) => a.clone(),
    }
}
