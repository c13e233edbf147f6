//! Errors above the module layer, one enum per layer, and the exit codes, in one place.
//!
//! Each variant says what was being done and keeps what went wrong as its `source`, so the
//! cause chain survives up to `lib::run`, which prints it once: `error: <top>` and an
//! indented `caused by: <source>` line per cause, through the redactor ([`Error::render`]).
//! Errors of the layers below (inventory, playbook, ssh config, extra vars, tokens, PKI) are
//! wrapped, never turned into text.

use std::path::PathBuf;

use crate::inventory::InventoryError;
use crate::k8s::token::TokenError;
use crate::pki::PkiError;
use crate::playbook::PlaybookError;
use crate::secret::Redactor;
use crate::transport::ssh_config::SshConfigError;
use crate::vars::ExtraVarsError;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// A host failed or was unreachable.
    pub const HOST_FAILED: i32 = 1;
    /// Usage or configuration error: nothing was run.
    pub const USAGE: i32 = 2;
    /// `--check --detailed-exitcode` with changes pending.
    pub const CHANGES_PENDING: i32 = 3;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
}

/// What a command returns when it cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command line that cannot work, whatever the files say (no cause below it).
    #[error("{0}")]
    Usage(String),
    /// Boxed: resolving settings has many ways to fail, and a `Result` stays small.
    #[error(transparent)]
    Settings(Box<SettingsError>),
    /// The inventory names file:line:column itself.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The playbook names file:line:column itself.
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("reading the vault password")]
    Vault(#[from] crate::vault::VaultError),
    /// A message-only configuration error, for commands that have no typed cause to keep.
    #[cfg(feature = "lab")]
    #[error(transparent)]
    Lab(#[from] bootstrapctl_lab::LabError),
}

/// Resolving the command line, the environment and ssh_config into run settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--output: unknown format {0:?} (supported: json)")]
    OutputFormat(String),
    #[error("--output takes FORMAT FILE")]
    OutputArgs,
    #[error("--forks must be at least 1")]
    Forks,
    #[error("--ask-become-pass: cannot read the password from the terminal")]
    BecomePrompt(#[source] std::io::Error),
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    /// A host's connection variable of the wrong type (names file, host and variable).
    #[error(transparent)]
    HostVar(#[from] InventoryError),
    #[error("host {host}: {var} must be plain text here (templates are not rendered for connection settings); use --ask-become-pass or $BOOTSTRAPCTL_BECOME_PASSWORD")]
    TemplatedBecomePassword { host: String, var: String },
    #[error("host {host}: {var} must be a string")]
    BecomePasswordType { host: String, var: String },
    #[error(
        "host {host}: StrictHostKeyChecking {value:?} is not one of yes, ask, accept-new, no, off"
    )]
    StrictHostKeyChecking { host: String, value: String },
    #[error("host {host}: ConnectTimeout {value:?} is not a number of seconds")]
    ConnectTimeout {
        host: String,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("host {0}: jump hosts nest more than 8 deep (a loop?)")]
    JumpTooDeep(String),
    #[error("host {0}: bastion must be a string")]
    BastionType(String),
    #[error("host {host}: jump host {hop:?}")]
    JumpHost {
        host: String,
        hop: String,
        #[source]
        source: SshConfigError,
    },
}

/// What the commands do between loading and printing.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("selecting hosts with --limit")]
    Limit(#[source] InventoryError),
    #[error("play {play:?}: selecting its hosts")]
    PlayHosts {
        play: String,
        #[source]
        source: InventoryError,
    },
    #[error("no shipped playbook {0}")]
    NoShippedPlaybook(String),
    #[error("reading extra variables")]
    ExtraVars(#[source] ExtraVarsError),
    #[error("writing JSON report {}", .path.display())]
    JsonReport {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("making a bootstrap token")]
    Token(#[source] TokenError),
    #[error("{}: no host in group control_plane to reach the cluster through", .inventory.display())]
    NoControlPlane { inventory: PathBuf },
    #[error("reading the cluster CA on {host}")]
    ClusterCa {
        host: String,
        #[source]
        source: PkiError,
    },
    #[error("kubectl on {host} printed no JSON list")]
    KubectlOutput {
        host: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no group {0:?} in the inventory")]
    NoGroup(String),
    #[error("no host {0:?} in the inventory")]
    NoHost(String),
    #[error("{0:?} is not a token id ([a-z0-9]{{6}})")]
    TokenId(String),
    #[error("{} already holds {}; nothing was written (--force overwrites them)", .dir.display(), .files.join(", "))]
    InitExists { dir: PathBuf, files: Vec<String> },
    #[error("writing {}", .path.display())]
    InitWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--token")]
    TokenArg(#[source] TokenError),
    #[error("reading {}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a cluster-info ConfigMap in YAML or JSON", .path.display())]
    ClusterInfoFile {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{}: reading certificates", .path.display())]
    Certificates {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
    #[cfg(feature = "lab")]
    #[error("finding bootstrapctl's own binary (the lab mounts it as the stand-ins)")]
    OwnBinary(#[source] std::io::Error),
    #[error("refusing to reset control-plane host(s) {}: resetting one takes its kubelet out of the cluster; pass --allow-control-plane to do it anyway", .hosts.join(", "))]
    ResetControlPlane { hosts: Vec<String> },
    #[error("reading the bundle")]
    Bundle(#[source] crate::artifact::manifest::BundleError),
}

impl From<SettingsError> for Error {
    fn from(e: SettingsError) -> Self {
        Error::Settings(Box::new(e))
    }
}

impl Error {
    /// The exit code for this error; the only place that maps errors to codes.
    pub fn code(&self) -> i32 {
        match self {
            #[cfg(feature = "lab")]
            Error::Lab(_) => exit::HOST_FAILED,
            Error::Usage(_)
            | Error::Settings(_)
            | Error::Inventory(_)
            | Error::Playbook(_)
            | Error::Command(_)
            | Error::Vault(_) => exit::USAGE,
        }
    }

    /// `error: <top>` then `  caused by: <source>` for each cause, redacted. A cause whose
    /// text the line above already ends with (errors that print their source themselves) is
    /// not repeated.
    pub fn render(&self, redactor: &Redactor) -> String {
        render_chain(self, redactor)
    }
}

/// The print format of [`Error::render`], for any error.
pub fn render_chain(e: &dyn std::error::Error, redactor: &Redactor) -> String {
    let mut previous = e.to_string();
    let mut out = format!("error: {previous}\n");
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !previous.ends_with(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        previous = text;
        cause = c.source();
    }
    redactor.redact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_printed_once_per_cause_and_redacted() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::Command(CommandError::JsonReport {
            path: "/tmp/hunter2-pass/report.json".into(),
            source: io,
        });
        let r = Redactor::new();
        r.register("hunter2-pass");
        assert_eq!(
            e.render(&r),
            "error: writing JSON report /tmp/<redacted>/report.json\n  caused by: denied\n"
        );
        assert_eq!(e.code(), exit::USAGE);
    }

    #[test]
    fn a_cause_already_in_its_parent_is_not_repeated() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = InventoryError::Read {
            path: "inv.yaml".into(),
            source: inner,
        };
        assert_eq!(
            render_chain(&e, &Redactor::new()),
            "error: reading inv.yaml: gone\n"
        );
    }
}
