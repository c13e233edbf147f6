//! The only code that touches a host: the `Transport` trait and its SSH and local implementations.

pub mod known_hosts;
pub mod local;
pub mod ssh;

use std::time::Duration;

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

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("host key for {host} is not in {known_hosts} (key fingerprint {fingerprint}); pass --accept-new-host-keys to record it")]
    UnknownHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error("host key for {host} has CHANGED (now {fingerprint}); refusing to connect. If this is expected, remove the old entry from {known_hosts}")]
    ChangedHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
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

    /// Number of round trips (exec calls) made so far on this connection.
    fn round_trips(&self) -> u64;
}

/// Quote a string for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
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
