//! Where and how to reach one SSH host: address, user, keys, known_hosts policy, timeouts,
//! retries and jump hosts. Resolved by the CLI's settings; read by connect, auth and jump.

use std::path::PathBuf;
use std::time::Duration;

use super::BecomePassword;

/// What to do with a host key that known_hosts does not hold (a CHANGED key is always refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Refuse unknown keys (`StrictHostKeyChecking yes`/`ask`, the default).
    #[default]
    Strict,
    /// Record unknown keys (`--accept-new-host-keys`, `StrictHostKeyChecking accept-new`).
    AcceptNew,
    /// `StrictHostKeyChecking no`/`off`: treated as accept-new. Unlike OpenSSH, a changed key
    /// is still refused, and the refusal says so.
    No,
}

impl HostKeyPolicy {
    pub fn accepts_new(self) -> bool {
        !matches!(self, HostKeyPolicy::Strict)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Inventory name (or, for a jump host, its spec), used in messages.
    pub host: String,
    /// IP or DNS name to connect to (and to look up in known_hosts).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Keys to offer, in order (the agent's copy when it holds the same public key). Empty:
    /// every agent key, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist.
    pub identity_files: Vec<PathBuf>,
    /// Offer only `identity_files` (from a file or the agent), no other agent key.
    pub identities_only: bool,
    /// The agent's socket; `None`: `$SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Further attempts after a failure that came fast (refused, reset, unreachable).
    pub connect_retries: u32,
    /// Wait before the first retry; doubled before each next one.
    pub retry_backoff: Duration,
    /// Jump hosts, first hop first (`ProxyJump a,b`): each is reached through the previous.
    pub jump: Vec<SshTarget>,
    /// Fed to `sudo -S` when `become` needs it.
    pub become_password: Option<BecomePassword>,
}

impl Default for SshTarget {
    fn default() -> Self {
        SshTarget {
            host: String::new(),
            address: String::new(),
            port: 22,
            user: "root".into(),
            identity_files: Vec::new(),
            identities_only: false,
            agent_socket: None,
            known_hosts: PathBuf::from("/dev/null"),
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            connect_retries: 0,
            retry_backoff: Duration::from_millis(500),
            jump: Vec::new(),
            become_password: None,
        }
    }
}

impl SshTarget {
    /// `user@address:port`, how this hop is named in the jump pool and in messages.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.user, self.addr_display())
    }

    pub(crate) fn addr_display(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        if self.connect_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            self.connect_timeout
        }
    }
}
