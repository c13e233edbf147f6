//! Data-driven module tests: each file under tests/fixtures/modules/ gives a module's
//! arguments and a host snapshot, and expects either the exact ops or the no-change reason.
//! For every change, planning again on the view the ops leave behind must find nothing to do
//! (for the kube modules: on the cluster objects the ops leave behind).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{ArgsSeed, ResolveCx};
use crate::hoststate::{
    FileKind, FileState, HostView, KubeRead, ModuleState, ObjectRef, Read, UnitState,
};
use crate::plan::{simulate, Op, Planned};
use crate::template::Templates;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    module: String,
    args: serde_yaml::Value,
    #[serde(default)]
    vars: serde_yaml::Mapping,
    #[serde(default)]
    templates: BTreeMap<String, String>,
    #[serde(default)]
    host: Host,
    expect: Expect,
    /// Modules that change on every run (restarted, commands) skip the converge check.
    #[serde(default = "yes")]
    converges: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Host {
    #[serde(default)]
    files: BTreeMap<String, File>,
    #[serde(default)]
    units: BTreeMap<String, Unit>,
    swaps: Option<Vec<String>>,
    /// The objects of the cluster the module's kubectl reaches (Secrets with `data`).
    #[serde(default)]
    objects: Vec<serde_json::Value>,
    /// What read-only commands print: command → (exit status, stdout).
    #[serde(default)]
    commands: BTreeMap<String, (i32, String)>,
    /// Sysctl values by name (`~`: no such key on this kernel).
    #[serde(default)]
    sysctls: BTreeMap<String, Option<String>>,
    /// Kernel modules: loaded, builtin or absent.
    #[serde(default)]
    modules: BTreeMap<String, ModuleState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "file_kind")]
    kind: String,
    #[serde(default = "mode_644")]
    mode: String,
    #[serde(default = "root")]
    owner: String,
    #[serde(default = "root")]
    group: String,
    #[serde(default)]
    content: String,
}

fn file_kind() -> String {
    "file".into()
}
fn mode_644() -> String {
    "0644".into()
}
fn root() -> String {
    "root".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unit {
    #[serde(default)]
    load: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    enabled: String,
    #[serde(default)]
    need_reload: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    no_change: Option<String>,
    ops: Option<Vec<String>>,
    error: Option<String>,
}

/// One line per op, as the fixtures spell them.
fn summary(op: &Op) -> String {
    let chown = |o: &Option<String>, g: &Option<String>| match (o, g) {
        (None, None) => String::new(),
        (o, g) => format!(
            " {}:{}",
            o.as_deref().unwrap_or(""),
            g.as_deref().unwrap_or("")
        ),
    };
    match op {
        Op::WriteFile {
            path,
            content,
            mode,
            owner,
            group,
        } => format!(
            "write {path} {mode:04o}{} {:?}",
            chown(owner, group),
            String::from_utf8_lossy(content)
        ),
        Op::SetAttrs {
            path,
            mode,
            owner,
            group,
        } => format!(
            "attrs {path}{}{}",
            mode.map(|m| format!(" {m:04o}")).unwrap_or_default(),
            chown(owner, group)
        ),
        Op::Mkdir {
            path,
            mode,
            owner,
            group,
        } => format!("mkdir {path} {mode:04o}{}", chown(owner, group)),
        Op::Remove { path } => format!("remove {path}"),
        Op::Exec { command, chdir } => match chdir {
            Some(d) => format!("exec in {d}: {command}"),
            None => format!("exec {command}"),
        },
        Op::Systemctl { args } => format!("systemctl {}", args.join(" ")),
        Op::SwapOff => "swapoff".into(),
        Op::Sysctl { name, value } => format!("sysctl {name}={value}"),
        Op::Modprobe {
            name,
            params,
            remove,
        } => match (remove, params.is_empty()) {
            (true, _) => format!("modprobe -r {name}"),
            (false, true) => format!("modprobe {name}"),
            (false, false) => format!("modprobe {name} {}", params.join(" ")),
        },
        Op::KubeApply { objects, .. } => {
            let refs: Vec<String> = objects.iter().map(|(r, _)| object_label(r)).collect();
            format!("kube apply {}", refs.join(", "))
        }
        Op::KubeDelete { object } => format!("kube delete {}", object_label(object)),
        Op::CreateToken { object, .. } => format!("create token {}", object_label(object)),
        Op::ApproveCsr { object, .. } => format!("approve csr {}", object.name),
        Op::Artifact(a) => {
            let source = match &a.source {
                crate::artifact::Source::Upload { size, .. } => format!("upload {size} bytes"),
                crate::artifact::Source::Url { url } => format!("fetch {url}"),
            };
            let into = match &a.install {
                crate::artifact::Install::Binary { dest, mode } => format!("{dest} {mode:04o}"),
                crate::artifact::Install::Tarball { dir, strip } => {
                    format!("unpack {dir} strip {strip}")
                }
            };
            format!(
                "artifact {} {} {} {source} -> {into}",
                a.name,
                a.version,
                &a.sha256[..8]
            )
        }
    }
}

fn object_label(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.resource, r.name),
        None => format!("{} {}", r.resource, r.name),
    }
}

/// Answer the module's cluster reads from the fixture's objects, as kubectl would.
fn answer_kube(view: &mut HostView, objects: &[serde_json::Value], reads: &[Read]) {
    let at = |o: &serde_json::Value| {
        (
            super::kubectl::resource_of(
                o["apiVersion"].as_str().unwrap_or(""),
                o["kind"].as_str().unwrap_or(""),
            ),
            o["metadata"]["namespace"].as_str().map(str::to_string),
            o["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    for r in reads {
        match r {
            Read::Kube(KubeRead::Object(want)) => {
                let found = objects.iter().find(|o| {
                    at(o)
                        == (
                            want.resource.clone(),
                            want.namespace.clone(),
                            want.name.clone(),
                        )
                });
                view.set_kube_object(want, Ok(found.cloned()));
            }
            Read::Kube(KubeRead::List(l)) => {
                let items = objects
                    .iter()
                    .filter(|o| {
                        let (res, ns, _) = at(o);
                        res == l.resource && ns == l.namespace && l.selects(o)
                    })
                    .cloned()
                    .collect();
                view.set_kube_list(l, Ok(items));
            }
            _ => {}
        }
    }
}

fn view_of(h: &Host) -> HostView {
    let mut v = HostView::new();
    for (path, f) in &h.files {
        let kind = match f.kind.as_str() {
            "file" => FileKind::File,
            "directory" => FileKind::Directory,
            "absent" => FileKind::Absent,
            _ => FileKind::Other,
        };
        v.set_file(
            path,
            if kind == FileKind::Absent {
                FileState::absent()
            } else {
                FileState {
                    kind,
                    mode: u32::from_str_radix(&f.mode, 8).expect("fixture mode"),
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    content: (kind == FileKind::File).then(|| f.content.clone().into_bytes()),
                }
            },
        );
    }
    for (name, u) in &h.units {
        v.set_unit(
            name,
            UnitState {
                load_state: u.load.clone(),
                active_state: u.active.clone(),
                unit_file_state: u.enabled.clone(),
                need_daemon_reload: u.need_reload,
            },
        );
    }
    if let Some(s) = &h.swaps {
        v.set_swaps(s.clone());
    }
    for (cmd, (status, stdout)) in &h.commands {
        v.set_command(
            cmd,
            crate::hoststate::CommandOutput {
                status: *status,
                stdout: stdout.clone().into_bytes(),
                stderr: Vec::new(),
            },
        );
    }
    for (n, val) in &h.sysctls {
        v.set_sysctl(n, val.clone());
    }
    for (m, st) in &h.modules {
        v.set_kernel_module(m, *st);
    }
    v
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = serde_yaml::from_str(&text).map_err(|e| format!("fixture: {e}"))?;
    let name = super::canonical_name(&case.module).ok_or("unknown module")?;
    let args_yaml = serde_yaml::to_string(&case.args).map_err(|e| e.to_string())?;
    let args = ArgsSeed(name)
        .deserialize(serde_yaml::Deserializer::from_str(&args_yaml))
        .map_err(|e| format!("args: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "bsctl-modfix-{}-{}",
        std::process::id(),
        path.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (n, t) in &case.templates {
        std::fs::write(dir.join(n), t).map_err(|e| e.to_string())?;
    }
    let templates = Templates::new(vec![dir.clone()]);
    let vars = minijinja::Value::from_serialize(&case.vars);
    let cx = ResolveCx {
        templates: &templates,
        vars: &vars,
        base_dir: &dir,
        what: "fixture",
    };
    let result = args.resolve(&cx).and_then(|m| {
        let mut view = view_of(&case.host);
        answer_kube(&mut view, &case.host.objects, &m.reads());
        let missing = view.missing(&m.reads());
        if !missing.is_empty() {
            return Err(super::ModuleError::Invalid(format!(
                "fixture host lacks {missing:?}"
            )));
        }
        let planned = m.plan(&view)?;
        if let Planned::Change { ops, .. } = &planned {
            simulate(&mut view, ops);
            let again = m.plan(&view)?;
            if case.converges && again.is_change() {
                return Err(super::ModuleError::Invalid(format!(
                    "does not converge: {again:?}"
                )));
            }
        }
        Ok(planned)
    });
    std::fs::remove_dir_all(&dir).ok();
    match (&case.expect, result) {
        (
            Expect {
                error: Some(want), ..
            },
            Err(e),
        ) if e.to_string().contains(want.as_str()) => Ok(()),
        (
            Expect {
                no_change: Some(want),
                ..
            },
            Ok(Planned::NoChange { reason }),
        ) if &reason == want => Ok(()),
        (
            Expect {
                ops: Some(want), ..
            },
            Ok(Planned::Change { ops, .. }),
        ) => {
            let got: Vec<String> = ops.iter().map(summary).collect();
            if &got == want {
                Ok(())
            } else {
                Err(format!("ops differ:\n  want {want:#?}\n  got  {got:#?}"))
            }
        }
        (_, got) => Err(format!("unexpected result {got:?}")),
    }
}

use serde::de::DeserializeSeed;

#[test]
fn module_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modules");
    let mut failures = Vec::new();
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut converged: BTreeMap<String, bool> = BTreeMap::new();
    for p in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        count += 1;
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let module = stem.split('-').next().unwrap().to_string();
        if stem.contains("converged") {
            converged.insert(module.clone(), true);
        }
        converged.entry(module).or_insert(false);
        if let Err(e) = run_case(p) {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(count >= 20, "only {count} fixtures");
    let missing: Vec<_> = converged
        .iter()
        .filter(|(_, c)| !**c)
        .map(|(m, _)| m.clone())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a converged fixture: {missing:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
