//! The only code that touches a host: the `Transport` trait and its SSH and local implementations.
//!
//! SSH by job: `target` (where and how to reach a host) → `connect` (TCP, handshake, host
//! key; uses `auth` to log in) → `ssh` (the session as a `Transport`; each exec through
//! `channel`). `jump` bridges sessions through jump hosts using `connect`; `ssh` uses `jump`,
//! never the reverse. `known_hosts` and `ssh_config` read OpenSSH's files.

mod auth;
mod channel;
mod connect;
mod identity;
pub mod jump;
pub mod known_hosts;
mod libssh2_util;
pub mod local;
mod per_file;
pub mod ssh;
pub mod ssh_config;
pub mod target;
pub mod tunnel;

use std::time::Duration;

use crate::shell::quote as sh_quote;

/// What a remote command returned. `stdout`/`stderr` are raw bytes: parsers decide the encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How to run a command with privileges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Become {
    /// `None`: run as the login user. `Some(user)`: wrap in `sudo -n -u user`.
    pub user: Option<String>,
}

/// The password `sudo` asks for (`--ask-become-pass`, `BOOTSTRAPCTL_BECOME_PASSWORD`,
/// `ansible_become_password`). Its `Debug` never shows it; it is only ever written to the
/// stdin of a remote `sudo -S`, never put on a command line.
#[derive(Clone, PartialEq, Eq)]
pub struct BecomePassword(std::sync::Arc<String>);

impl BecomePassword {
    pub fn new(password: impl Into<String>) -> Self {
        BecomePassword(std::sync::Arc::new(password.into()))
    }
    /// The clear text: only for feeding sudo and registering with the run's redactor.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BecomePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BecomePassword(<redacted>)")
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// `transient`: refused, reset or timed out before the SSH banner: worth retrying.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        addr: String,
        reason: String,
        transient: bool,
    },
    #[error("host key for {host} is not in {known_hosts} (key fingerprint {fingerprint}); pass --accept-new-host-keys to record it")]
    UnknownHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error("host key for {host} has CHANGED (now {fingerprint}); refusing to connect. If this is expected, remove the old entry from {known_hosts}{note}")]
    ChangedHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
        /// Extra explanation (e.g. that `StrictHostKeyChecking no` does not accept it).
        note: String,
    },
    #[error("host key for {host} ({fingerprint}) is marked @revoked in {known_hosts}; refusing to connect")]
    RevokedHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error("authentication as {user} failed: {reason}")]
    Auth { user: String, reason: String },
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// Errors after which the host counts as UNREACHABLE rather than FAILED.
    pub fn is_unreachable(&self) -> bool {
        // A command that outlived its timeout ran on a reachable host: that task failed.
        !matches!(self, TransportError::Other(_) | TransportError::Timeout(_))
    }

    /// Worth another connection attempt: never for authentication or host-key failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Connect {
                transient: true,
                ..
            }
        )
    }
}

/// A live connection to one host. One per host per run; every task and handler reuses it.
/// Implementations run on a blocking thread (ssh2 is blocking).
pub trait Transport: Send {
    /// Run `command` through `sh -c` on the host, with `stdin` fed and closed, as the
    /// become user when `become` is set. A non-zero exit status is NOT an error.
    fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        become_: Option<&Become>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError>;

    /// As `exec`, with stdin read from `stdin` while the command consumes it, so that a large
    /// file travels without being held in memory; `progress` gets the bytes of `stdin` sent so
    /// far. This default reads all of `stdin` first (fine for local commands and tests).
    fn exec_reader(
        &mut self,
        command: &str,
        stdin: &mut dyn std::io::Read,
        become_: Option<&Become>,
        timeout: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExecOutput, TransportError> {
        let mut buf = Vec::new();
        stdin
            .read_to_end(&mut buf)
            .map_err(|e| TransportError::Other(format!("reading local input: {e}")))?;
        let out = self.exec(command, &buf, become_, timeout)?;
        progress(buf.len() as u64);
        Ok(out)
    }

    /// Number of round trips (exec calls) made so far on this connection.
    fn round_trips(&self) -> u64;

    /// A TCP stream to `host:port` as the host reaches it (an SSH `direct-tcpip` channel), each
    /// read and write bounded by `timeout` from now; an error when this transport has none.
    fn tunnel(
        &mut self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn tunnel::Tunnel + '_>, TransportError> {
        let _ = timeout;
        Err(TransportError::Other(format!(
            "no tunnel to {host}:{port} over this connection"
        )))
    }
}

/// Wrap a command for `become`: `sudo -n` never prompts, so a missing NOPASSWD rule fails fast.
pub fn become_wrap(command: &str, become_: Option<&Become>) -> String {
    match become_ {
        None => command.to_string(),
        Some(b) => {
            let user = b.user.as_deref().unwrap_or("root");
            format!(
                "sudo -n -H -u {} -- sh -c {}",
                sh_quote(user),
                sh_quote(command)
            )
        }
    }
}

/// Wrap a command for `become` when a sudo password is known. The caller prepends the
/// password and a newline to the command's stdin (see [`password_stdin`]).
///
/// The outer shell reads that first line itself (`read` consumes stdin byte by byte, so the
/// command's own input is left intact) and keeps it in a shell variable: it never appears on
/// a command line. If sudo needs no password (NOPASSWD rule, cached credentials) the command
/// runs under `sudo -n` and the password goes nowhere; otherwise it is fed to `sudo -S -p ''`
/// (sudo also reads its password byte by byte up to the newline), followed by the rest of
/// stdin for the command.
pub fn become_wrap_with_password(command: &str, become_: &Become) -> String {
    let user = sh_quote(become_.user.as_deref().unwrap_or("root"));
    let cmd = sh_quote(command);
    format!(
        "IFS= read -r __bsctl_pw || exit 125; \
         if sudo -n -u {user} true 2>/dev/null; then unset __bsctl_pw; \
         exec sudo -n -H -u {user} -- sh -c {cmd}; fi; \
         {{ printf '%s\\n' \"$__bsctl_pw\"; unset __bsctl_pw; exec cat; }} | \
         sudo -S -p '' -H -u {user} -- sh -c {cmd}"
    )
}

/// The stdin for [`become_wrap_with_password`]: the password line, then the command's input.
pub fn password_stdin(password: &BecomePassword, stdin: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(password.expose().len() + 1 + stdin.len());
    v.extend_from_slice(password.expose().as_bytes());
    v.push(b'\n');
    v.extend_from_slice(stdin);
    v
}

/// The command line and stdin to run `command` as `become_`, given whether the login user
/// already is the become user (then no sudo at all) and the sudo password, if any.
pub fn wrap_become(
    command: &str,
    stdin: &[u8],
    become_: Option<&Become>,
    already_that_user: bool,
    password: Option<&BecomePassword>,
) -> (String, Option<Vec<u8>>) {
    match (become_, password) {
        (None, _) => (command.to_string(), None),
        (Some(_), _) if already_that_user => (command.to_string(), None),
        (Some(b), None) => (become_wrap(command, Some(b)), None),
        (Some(b), Some(pw)) => (
            become_wrap_with_password(command, b),
            Some(password_stdin(pw, stdin)),
        ),
    }
}
