//! The SSH transport over libssh2 (ssh2): one session per host, reused by every exec.
//!
//! The work is split by job: [`super::connect`] reaches the host (TCP, handshake, host key),
//! [`super::auth`] logs in, [`super::channel`] runs each command on its own channel, and
//! [`super::jump`] bridges sessions through jump hosts. This file holds the session and the
//! `Transport` implementation that ties them together.

use std::os::unix::io::AsRawFd;
use std::time::Duration;

use ssh2::Session;

use super::connect::{establish, tcp_connect, with_retries};
use super::jump::JumpPool;
use super::{
    become_wrap, wrap_become, Become, BecomePassword, ExecOutput, Transport, TransportError,
};

pub use super::known_hosts::fingerprint_sha256;
pub use super::target::{HostKeyPolicy, SshTarget};

pub struct SshTransport {
    pub(super) session: Session,
    pub(super) host: String,
    user: String,
    become_password: Option<BecomePassword>,
    round_trips: u64,
    /// Set once the connection is known to be dead: later execs fail fast with `Lost`.
    pub(super) broken: Option<String>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("round_trips", &self.round_trips)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Connect (through `t.jump` if set, with a pool private to this call), retrying
    /// transient failures `t.connect_retries` times.
    pub fn connect(t: &SshTarget) -> Result<SshTransport, TransportError> {
        Self::connect_via(t, &JumpPool::new())
    }

    /// Connect, sharing jump-host connections through `pool`.
    pub fn connect_via(t: &SshTarget, pool: &JumpPool) -> Result<SshTransport, TransportError> {
        let session = with_retries(t, || {
            if t.jump.is_empty() {
                let stream = tcp_connect(t)?;
                establish(t, stream)
            } else {
                let hop = pool.get(&t.jump)?;
                let stream = hop.open(&t.address, t.port, t.timeout()).map_err(|e| {
                    TransportError::Connect {
                        addr: format!("{} ({}) via {}", t.host, t.addr_display(), hop.name()),
                        reason: e.reason,
                        transient: e.transient,
                    }
                })?;
                establish(t, stream)
            }
        })?;
        // Exec drives the session non-blocking with its own deadlines.
        session.set_timeout(0);
        session.set_blocking(false);
        Ok(SshTransport {
            session,
            host: t.host.clone(),
            user: t.user.clone(),
            become_password: t.become_password.clone(),
            round_trips: 0,
            broken: None,
        })
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The socket's file descriptor (for diagnostics and tests).
    pub fn raw_fd(&self) -> i32 {
        self.session.as_raw_fd()
    }
}

impl Transport for SshTransport {
    fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        become_: Option<&Become>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.round_trips += 1;
        if let Some(why) = &self.broken {
            return Err(TransportError::Lost(why.clone()));
        }
        let already = become_.is_some_and(|b| b.user.as_deref().unwrap_or("root") == self.user);
        let (wrapped, fed) = wrap_become(
            command,
            stdin,
            become_,
            already,
            self.become_password.as_ref(),
        );
        let mut input = fed.as_deref().unwrap_or(stdin);
        self.run(&wrapped, &mut input, timeout, &mut |_| {})
    }

    fn exec_reader(
        &mut self,
        command: &str,
        stdin: &mut dyn std::io::Read,
        become_: Option<&Become>,
        timeout: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExecOutput, TransportError> {
        self.round_trips += 1;
        if let Some(why) = &self.broken {
            return Err(TransportError::Lost(why.clone()));
        }
        let already = become_.is_some_and(|b| b.user.as_deref().unwrap_or("root") == self.user);
        // The password line (if sudo gets one) goes first; only the caller's bytes count.
        let (wrapped, fed) = wrap_become(
            command,
            &[],
            become_,
            already,
            self.become_password.as_ref(),
        );
        let prefix = fed.unwrap_or_default();
        let skip = prefix.len() as u64;
        let mut input = std::io::Read::chain(&prefix[..], stdin);
        self.run(&wrapped, &mut input, timeout, &mut |sent| {
            progress(sent.saturating_sub(skip))
        })
    }

    fn round_trips(&self) -> u64 {
        self.round_trips
    }

    fn tunnel(
        &mut self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn super::tunnel::Tunnel + '_>, TransportError> {
        Ok(Box::new(self.open_tunnel(host, port, timeout)?))
    }
}

/// The command line to run for `become_` when logged in as `login_user`: no sudo when the
/// login user already is the become user (root→root is the common case).
pub fn wrap_for_user(login_user: &str, command: &str, become_: Option<&Become>) -> String {
    match become_ {
        Some(b) if b.user.as_deref().unwrap_or("root") != login_user => {
            become_wrap(command, Some(b))
        }
        _ => command.to_string(),
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        // Polite, bounded goodbye; libssh2 frees the session in blocking mode.
        self.session.set_blocking(true);
        self.session.set_timeout(1000);
        if self.broken.is_none() {
            let _ = self.session.disconnect(None, "bootstrapctl done", None);
        }
        // Make libssh2's session free (which closes any abandoned channel) see a dead socket
        // instead of waiting for replies that may never come.
        unsafe { libc::shutdown(self.session.as_raw_fd(), libc::SHUT_RDWR) };
    }
}
