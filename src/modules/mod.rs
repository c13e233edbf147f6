//! Modules: each one resolves its arguments for a host, declares what it must read, and plans
//! against a HostView. Pure: no I/O, no async; the engine does the reading and applying.

pub mod artifact;
pub mod bootstrap_token;
pub mod command;
pub mod copy;
pub mod file;
pub mod file_common;
#[cfg(test)]
mod fixtures;
pub mod kube_csr_approve;
pub mod kube_flags;
pub mod kube_object;
pub mod kube_wait;
pub mod kubectl;
pub mod kubelet_join_state;
pub mod modprobe;
pub mod swap;
pub mod sysctl;
pub mod systemd;
pub mod template;
// Ansible's builtin modules for playbooks as users write them.
pub mod assert;
pub mod debug;
pub mod include_vars;
pub mod lineinfile;
pub mod replace;
pub mod set_fact;
pub mod stat;

use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer};
use serde::Deserialize;

use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::{TemplateError, Templates};

/// What a module needs to resolve its arguments for one host.
pub struct ResolveCx<'a> {
    pub templates: &'a Templates,
    pub vars: &'a minijinja::Value,
    /// The playbook's directory: `copy: src=` and `template: src=` are relative to it.
    pub base_dir: &'a Path,
    /// Names the task in template errors.
    pub what: &'a str,
}

/// For unit tests: `resolve` given a context with no template directory, `vars`, and the
/// current directory as the playbook's.
#[cfg(test)]
pub(crate) fn resolve_in_test<M>(
    vars: minijinja::Value,
    resolve: impl FnOnce(&ResolveCx<'_>) -> Result<M, ModuleError>,
) -> M {
    let templates = Templates::new(vec![]);
    resolve(&ResolveCx {
        templates: &templates,
        vars: &vars,
        base_dir: Path::new("."),
        what: "t",
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    Host { path: String, message: String },
}

/// A module with its arguments resolved for one host.
pub trait Module: Send {
    fn reads(&self) -> Vec<Read>;
    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError>;
    /// True for modules whose change must run a command in `--check` mode to be known
    /// (command/shell): those are reported as skipped there, as Ansible does.
    fn runs_commands(&self) -> bool {
        false
    }
    /// Values to redact everywhere (a token, Secret data), known once arguments resolve.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
    /// Values added to the task's registered result, from the state planned against.
    fn output(&self, _view: &HostView) -> Vec<(String, minijinja::Value)> {
        Vec::new()
    }
    /// False for modules that only wait or check: success is `ok`, not `changed`.
    fn changes_host(&self) -> bool {
        true
    }
}

/// A task's module call as written in the playbook, type-checked at load time.
#[derive(Debug, Clone)]
pub enum ModuleArgs {
    Template(template::Args),
    Copy(copy::Args),
    File(file::Args),
    Command(command::Args),
    Shell(command::Args),
    Systemd(systemd::Args),
    Swap(swap::Args),
    KubeFlags(kube_flags::Args),
    KubeObject(kube_object::Args),
    BootstrapToken(bootstrap_token::Args),
    KubeWait(kube_wait::Args),
    KubeCsrApprove(kube_csr_approve::Args),
    KubeletJoinState(kubelet_join_state::Args),
    Artifact(artifact::Args),
    Sysctl(sysctl::Args),
    Modprobe(modprobe::Args),
    SetFact(set_fact::Args),
    IncludeVars(include_vars::Args),
    Debug(debug::Args),
    Assert(assert::Args),
    Fail(assert::FailArgs),
    LineInFile(lineinfile::Args),
    Stat(stat::Args),
    Replace(replace::Args),
    BlockInFile(replace::BlockArgs),
}

/// Module names accepted in playbooks (Ansible's FQCNs too, where one exists).
pub const MODULE_NAMES: &[&str] = &[
    "template",
    "copy",
    "file",
    "command",
    "shell",
    "systemd",
    "systemd_service",
    "swap",
    "kube_flags",
    "kube_object",
    "bootstrap_token",
    "kube_wait",
    "kube_csr_approve",
    "kubelet_join_state",
    "artifact",
    "sysctl",
    "modprobe",
    "set_fact",
    "include_vars",
    "debug",
    "assert",
    "fail",
    "service",
    "lineinfile",
    "stat",
    "replace",
    "blockinfile",
];

/// Modules that run on the controller only (variables, messages, checks): nothing to apply.
pub fn controller_side(m: &ModuleArgs) -> bool {
    matches!(
        m,
        ModuleArgs::SetFact(_)
            | ModuleArgs::IncludeVars(_)
            | ModuleArgs::Debug(_)
            | ModuleArgs::Assert(_)
            | ModuleArgs::Fail(_)
    )
}

/// Modules whose `ansible_facts` become the host's variables.
pub fn sets_facts(m: &ModuleArgs) -> bool {
    matches!(m, ModuleArgs::SetFact(_) | ModuleArgs::IncludeVars(_))
}

pub fn canonical_name(key: &str) -> Option<&'static str> {
    let short = key.strip_prefix("ansible.builtin.").unwrap_or(key);
    let short = short.strip_prefix("ansible.legacy.").unwrap_or(short);
    let short = short.strip_prefix("bootstrapctl.").unwrap_or(short);
    let short = short.strip_prefix("ansible.posix.").unwrap_or(short);
    let short = short.strip_prefix("community.general.").unwrap_or(short);
    MODULE_NAMES.iter().copied().find(|n| *n == short)
}

impl ModuleArgs {
    /// `command` and `shell`: their effect is known only by running them.
    pub fn runs_commands(&self) -> bool {
        matches!(
            self,
            ModuleArgs::Command(_) | ModuleArgs::Shell(_) | ModuleArgs::KubeWait(_)
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModuleArgs::Template(_) => "template",
            ModuleArgs::Copy(_) => "copy",
            ModuleArgs::File(_) => "file",
            ModuleArgs::Command(_) => "command",
            ModuleArgs::Shell(_) => "shell",
            ModuleArgs::Systemd(_) => "systemd",
            ModuleArgs::Swap(_) => "swap",
            ModuleArgs::KubeFlags(_) => "kube_flags",
            ModuleArgs::KubeObject(_) => "kube_object",
            ModuleArgs::BootstrapToken(_) => "bootstrap_token",
            ModuleArgs::KubeWait(_) => "kube_wait",
            ModuleArgs::KubeCsrApprove(_) => "kube_csr_approve",
            ModuleArgs::KubeletJoinState(_) => "kubelet_join_state",
            ModuleArgs::Artifact(_) => "artifact",
            ModuleArgs::Sysctl(_) => "sysctl",
            ModuleArgs::Modprobe(_) => "modprobe",
            ModuleArgs::SetFact(_) => "set_fact",
            ModuleArgs::IncludeVars(_) => "include_vars",
            ModuleArgs::Debug(_) => "debug",
            ModuleArgs::Assert(_) => "assert",
            ModuleArgs::Fail(_) => "fail",
            ModuleArgs::LineInFile(_) => "lineinfile",
            ModuleArgs::Stat(_) => "stat",
            ModuleArgs::Replace(_) => "replace",
            ModuleArgs::BlockInFile(_) => "blockinfile",
        }
    }

    /// What the module will read, for the batched read before the first task. A template's
    /// destination is known without rendering its body (which may use facts not read yet).
    pub fn reads(&self, cx: &ResolveCx<'_>) -> Result<Vec<crate::hoststate::Read>, ModuleError> {
        match self {
            ModuleArgs::Template(a) => Ok(vec![crate::hoststate::Read::File(a.dest.resolve(
                cx.templates,
                cx.vars,
                cx.what,
            )?)]),
            // The certificate's path is known before the CA is (read from the control plane).
            ModuleArgs::KubeletJoinState(a) => Ok(vec![crate::hoststate::Read::File(
                template::opt(&a.cert, cx)?
                    .unwrap_or_else(|| kubelet_join_state::DEFAULT_CERT.into()),
            )]),
            _ => Ok(self.resolve(cx)?.reads()),
        }
    }

    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Box<dyn Module>, ModuleError> {
        Ok(match self {
            ModuleArgs::Template(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Copy(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::File(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Command(a) => Box::new(a.resolve(cx, false)?),
            ModuleArgs::Shell(a) => Box::new(a.resolve(cx, true)?),
            ModuleArgs::Systemd(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Swap(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::KubeFlags(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::KubeObject(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::BootstrapToken(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::KubeWait(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::KubeCsrApprove(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::KubeletJoinState(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Artifact(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Sysctl(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Modprobe(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::SetFact(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::IncludeVars(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Debug(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Assert(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Fail(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::LineInFile(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Stat(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::Replace(a) => Box::new(a.resolve(cx)?),
            ModuleArgs::BlockInFile(a) => Box::new(a.resolve(cx)?),
        })
    }
}

/// Deserializes a module's arguments straight from the YAML stream, so unknown arguments and
/// wrong types carry the file's line and column.
pub struct ArgsSeed(pub &'static str);

impl<'de> DeserializeSeed<'de> for ArgsSeed {
    type Value = ModuleArgs;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ModuleArgs, D::Error> {
        Ok(match self.0 {
            "template" => ModuleArgs::Template(Deserialize::deserialize(d)?),
            "copy" => ModuleArgs::Copy(Deserialize::deserialize(d)?),
            "file" => ModuleArgs::File(Deserialize::deserialize(d)?),
            "command" => ModuleArgs::Command(Deserialize::deserialize(d)?),
            "shell" => ModuleArgs::Shell(Deserialize::deserialize(d)?),
            "systemd" | "systemd_service" | "service" => {
                ModuleArgs::Systemd(Deserialize::deserialize(d)?)
            }
            "swap" => ModuleArgs::Swap(Deserialize::deserialize(d)?),
            "kube_flags" => ModuleArgs::KubeFlags(Deserialize::deserialize(d)?),
            "kube_object" => ModuleArgs::KubeObject(Deserialize::deserialize(d)?),
            "bootstrap_token" => ModuleArgs::BootstrapToken(Deserialize::deserialize(d)?),
            "kube_wait" => ModuleArgs::KubeWait(Deserialize::deserialize(d)?),
            "kube_csr_approve" => ModuleArgs::KubeCsrApprove(Deserialize::deserialize(d)?),
            "kubelet_join_state" => ModuleArgs::KubeletJoinState(Deserialize::deserialize(d)?),
            "artifact" => ModuleArgs::Artifact(Deserialize::deserialize(d)?),
            "sysctl" => ModuleArgs::Sysctl(Deserialize::deserialize(d)?),
            "modprobe" => ModuleArgs::Modprobe(Deserialize::deserialize(d)?),
            "set_fact" => ModuleArgs::SetFact(Deserialize::deserialize(d)?),
            "include_vars" => ModuleArgs::IncludeVars(Deserialize::deserialize(d)?),
            "debug" => ModuleArgs::Debug(Deserialize::deserialize(d)?),
            "assert" => ModuleArgs::Assert(Deserialize::deserialize(d)?),
            "fail" => ModuleArgs::Fail(Deserialize::deserialize(d)?),
            "lineinfile" => ModuleArgs::LineInFile(Deserialize::deserialize(d)?),
            "stat" => ModuleArgs::Stat(Deserialize::deserialize(d)?),
            "replace" => ModuleArgs::Replace(Deserialize::deserialize(d)?),
            "blockinfile" => ModuleArgs::BlockInFile(Deserialize::deserialize(d)?),
            other => unreachable!("ArgsSeed built for unknown module {other}"),
        })
    }
}
