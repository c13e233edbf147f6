//! SSH transport over libssh2 (ssh2): one session per host, host keys checked against known_hosts.
//!
//! Connection: TCP connect with timeout (TCP_NODELAY), handshake preferring curve25519 kex and
//! the host key types already recorded for the host (else ed25519), host key verified BEFORE
//! authentication, then publickey auth. Every `exec` opens one channel on the same session and
//! drives it non-blocking, waiting on the socket with `poll(2)` in the directions libssh2 says it
//! is blocked on, so stdin, stdout and stderr all flow without deadlock or busy-waiting.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel, ErrorCode, MethodType, Session};

use super::jump::JumpPool;
use super::known_hosts::{self, KnownHostsDb, Verdict};
use super::{
    become_wrap, wrap_become, Become, BecomePassword, ExecOutput, Transport, TransportError,
};

pub use super::known_hosts::fingerprint_sha256;

// libssh2 error codes (libssh2.h) that this module tells apart.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_ERROR_CHANNEL_CLOSED: i32 = -26;
const LIBSSH2_ERROR_CHANNEL_EOF_SENT: i32 = -27;
const LIBSSH2_ERROR_EAGAIN: i32 = -37;

/// Read chunk size; also the largest single stdin write.
const CHUNK: usize = 32 * 1024;
/// How long a timed-out command's channel may take to close before it is abandoned.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

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
    /// Further attempts after a transient failure (refused, reset, timeout before the banner).
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

pub struct SshTransport {
    session: Session,
    host: String,
    user: String,
    become_password: Option<BecomePassword>,
    round_trips: u64,
    /// Set once the connection is known to be dead: later execs fail fast with `Lost`.
    broken: Option<String>,
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

pub(crate) fn code_of(e: &ssh2::Error) -> i32 {
    match e.code() {
        ErrorCode::Session(c) => c,
        ErrorCode::SFTP(c) => c,
    }
}

pub(crate) fn is_eagain(e: &ssh2::Error) -> bool {
    code_of(e) == LIBSSH2_ERROR_EAGAIN
}

/// Order `supported` with the `preferred` ones first (in that order), the rest after.
fn ordered_prefs(preferred: &[&str], supported: &[&str]) -> String {
    let mut out: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|p| supported.contains(p))
        .collect();
    for s in supported {
        if !out.contains(s) {
            out.push(s);
        }
    }
    out.join(",")
}

const KEX_PREFS: &[&str] = &[
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
];
const HOSTKEY_PREFS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
];

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

    /// Turn a libssh2 error during exec into a `TransportError`, poisoning the session
    /// when the connection itself failed.
    fn exec_error(&mut self, what: &str, e: &ssh2::Error) -> TransportError {
        let code = code_of(e);
        if (-28..=-20).contains(&code) {
            // Channel-level trouble (request denied, channel failure...): session still fine.
            TransportError::Other(format!("{}: {what}: {e}", self.host))
        } else {
            let msg = format!("{}: {what}: {e}", self.host);
            self.broken = Some(msg.clone());
            TransportError::Lost(msg)
        }
    }

    /// Wait until the socket is ready in the directions libssh2 last blocked on, or `deadline`.
    /// Returns false when the deadline has passed.
    fn wait_socket(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let (events, cap) = match self.session.block_directions() {
            BlockDirections::Inbound => (libc::POLLIN, Duration::from_secs(1)),
            BlockDirections::Outbound => (libc::POLLOUT, Duration::from_secs(1)),
            BlockDirections::Both => (libc::POLLIN | libc::POLLOUT, Duration::from_secs(1)),
            // Nothing to wait for according to libssh2: re-check soon.
            BlockDirections::None => (libc::POLLIN, Duration::from_millis(5)),
        };
        let wait = (deadline - now).min(cap);
        let mut pfd = libc::pollfd {
            fd: self.session.as_raw_fd(),
            events,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder does not spin.
        let ms = wait.as_millis().max(1) as libc::c_int;
        set_quickack(pfd.fd);
        // EINTR and errors just mean "look again"; the caller re-checks the deadline.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        true
    }

    /// Retry a non-blocking libssh2 call until it stops returning EAGAIN or `deadline` passes
    /// (`Ok(None)`).
    fn retry<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<Option<T>, ssh2::Error> {
        loop {
            match f() {
                Ok(v) => return Ok(Some(v)),
                Err(e) if is_eagain(&e) => {
                    if !self.wait_socket(deadline) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Close a channel (bounded by `CLOSE_GRACE`) so it is freed cleanly and the session stays
    /// usable. sshd answers our CLOSE only once the command has exited, so for a timed-out
    /// command still running the close is abandoned after the grace period: libssh2 keeps the
    /// half-closed channel (a few hundred bytes) until the session ends; the session is fine.
    fn close_channel(&mut self, channel: &mut Channel) {
        let deadline = Instant::now() + CLOSE_GRACE;
        match self.retry(deadline, || channel.close()) {
            Ok(Some(())) | Ok(None) => {}
            Err(e) => {
                let _ = self.exec_error("closing channel", &e);
            }
        }
    }

    fn run(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or(start + Duration::from_secs(86400 * 365));
        let timed_out = || TransportError::Timeout(timeout);

        let mut channel = match self.retry(deadline, || self.session.channel_session()) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(timed_out()),
            Err(e) => return Err(self.exec_error("opening channel", &e)),
        };
        let result = self.drive(&mut channel, command, stdin, deadline);
        match result {
            Ok(out) => {
                self.close_channel(&mut channel);
                Ok(out)
            }
            Err(Drive::Timeout) => {
                self.close_channel(&mut channel);
                Err(timed_out())
            }
            Err(Drive::Failed(what, e)) => {
                let err = self.exec_error(what, &e);
                if self.broken.is_none() {
                    self.close_channel(&mut channel);
                }
                Err(err)
            }
        }
    }

    fn drive(
        &self,
        channel: &mut Channel,
        command: &str,
        stdin: &[u8],
        deadline: Instant,
    ) -> Result<ExecOutput, Drive> {
        match self.retry(deadline, || channel.exec(command)) {
            Ok(Some(())) => {}
            Ok(None) => return Err(Drive::Timeout),
            Err(e) => return Err(Drive::Failed("starting command", e)),
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut written = 0usize;
        let mut eof_sent = false;
        let mut stderr = channel.stderr();
        loop {
            let mut progress = false;

            // stdin, then EOF.
            if !eof_sent {
                if written < stdin.len() {
                    let end = stdin.len().min(written + CHUNK);
                    match channel.write(&stdin[written..end]) {
                        Ok(n) => {
                            written += n;
                            progress |= n > 0;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => {
                            let e = self.last_error();
                            if self.channel_gone(&e) {
                                // The remote side closed; the command does not want more input.
                                eof_sent = true;
                            } else {
                                return Err(Drive::Failed("writing stdin", e));
                            }
                        }
                    }
                }
                if written == stdin.len() && !eof_sent {
                    match channel.send_eof() {
                        Ok(()) => {
                            eof_sent = true;
                            progress = true;
                        }
                        Err(e) if is_eagain(&e) => {}
                        Err(e) if self.channel_gone(&e) => eof_sent = true,
                        Err(e) => return Err(Drive::Failed("closing stdin", e)),
                    }
                }
            }

            // stdout and stderr: drain whatever is there.
            for (stream_out, is_err) in [(&mut out, false), (&mut err, true)] {
                loop {
                    let r = if is_err {
                        stderr.read(&mut buf)
                    } else {
                        channel.read(&mut buf)
                    };
                    match r {
                        Ok(0) => break,
                        Ok(n) => {
                            stream_out.extend_from_slice(&buf[..n]);
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => return Err(Drive::Failed("reading output", self.last_error())),
                    }
                }
            }

            // Everything read and the remote sent EOF: wait for its close, which follows
            // the exit status.
            if channel.eof() {
                match channel.wait_close() {
                    Ok(()) => break,
                    Err(e) if is_eagain(&e) => {}
                    Err(e) => return Err(Drive::Failed("waiting for command exit", e)),
                }
            }

            if !progress && !self.wait_socket(deadline) {
                return Err(Drive::Timeout);
            }
            if Instant::now() >= deadline {
                return Err(Drive::Timeout);
            }
        }

        let mut status = channel.exit_status().unwrap_or(-1);
        if let Ok(sig) = channel.exit_signal() {
            if let Some(name) = sig.exit_signal {
                status = 128 + signal_number(&name);
            }
        }
        Ok(ExecOutput {
            status,
            stdout: out,
            stderr: err,
        })
    }

    fn last_error(&self) -> ssh2::Error {
        ssh2::Error::last_session_error(&self.session).unwrap_or_else(ssh2::Error::unknown)
    }

    /// The channel was closed by the remote: stop feeding stdin, the command is done with it.
    fn channel_gone(&self, e: &ssh2::Error) -> bool {
        matches!(
            code_of(e),
            LIBSSH2_ERROR_CHANNEL_CLOSED | LIBSSH2_ERROR_CHANNEL_EOF_SENT
        )
    }
}

/// Ask Linux to ACK the next incoming segments at once instead of delaying the ACK (up to
/// 40 ms). sshd does not set TCP_NODELAY on non-interactive sessions, so it holds back its
/// next small packet (exec reply, exit-status, EOF, CLOSE) until our ACK: with delayed ACKs
/// every exec would stall ~40 ms per burst. The kernel drops out of quick-ACK mode by itself,
/// so this is re-armed before each wait.
pub(crate) fn set_quickack(fd: i32) {
    #[cfg(target_os = "linux")]
    unsafe {
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

enum Drive {
    Timeout,
    Failed(&'static str, ssh2::Error),
}

/// Signal name as sent in "exit-signal" (no SIG prefix) to its Linux number (127 if unknown,
/// so 128 + n stays clearly non-zero).
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

// libssh2 error codes meaning the transport failed before or during the banner exchange.
const LIBSSH2_ERROR_BANNER_RECV: i32 = -2;
const LIBSSH2_ERROR_BANNER_SEND: i32 = -3;
const LIBSSH2_ERROR_SOCKET_SEND: i32 = -7;
const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;

/// Run `attempt`, and again after `t.retry_backoff`, doubled each time, up to
/// `t.connect_retries` more times while it fails transiently. Authentication and host-key
/// failures are returned at once.
pub(crate) fn with_retries<T>(
    t: &SshTarget,
    mut attempt: impl FnMut() -> Result<T, TransportError>,
) -> Result<T, TransportError> {
    let mut delay = t.retry_backoff;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && tries <= t.connect_retries => {
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
            Err(TransportError::Connect {
                addr,
                reason,
                transient,
            }) if tries > 1 => {
                return Err(TransportError::Connect {
                    addr,
                    reason: format!("{reason} (after {tries} attempts)"),
                    transient,
                })
            }
            Err(e) => return Err(e),
        }
    }
}

fn connect_err(t: &SshTarget, reason: String, transient: bool) -> TransportError {
    TransportError::Connect {
        addr: format!("{} ({})", t.host, t.addr_display()),
        reason,
        transient,
    }
}

fn io_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::ETIMEDOUT
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
        )
    ) || e.kind() == ErrorKind::TimedOut
}

/// TCP connect with the target's timeout, TCP_NODELAY set.
pub(crate) fn tcp_connect(t: &SshTarget) -> Result<TcpStream, TransportError> {
    let addrs: Vec<SocketAddr> = (t.address.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| connect_err(t, format!("cannot resolve {}: {e}", t.address), false))?
        .collect();
    if addrs.is_empty() {
        return Err(connect_err(
            t,
            format!("{} resolves to no address", t.address),
            false,
        ));
    }
    let mut last_err = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, t.timeout()) {
            Ok(s) => {
                s.set_nodelay(true)
                    .map_err(|e| connect_err(t, format!("setting TCP_NODELAY: {e}"), false))?;
                return Ok(s);
            }
            Err(e) => last_err = Some((format!("{a}: {e}"), io_transient(&e))),
        }
    }
    let (reason, transient) = last_err.unwrap_or_default();
    Err(connect_err(t, reason, transient))
}

/// SSH over an established byte stream (a TCP socket, or one end of a socket pair bridged
/// to a jump host's channel): handshake preferring known host key types, host key checked
/// against known_hosts BEFORE any credential leaves this machine, then publickey auth.
/// Returns the session in blocking mode with the connect timeout set.
pub(crate) fn establish<S: 'static + AsRawFd>(
    t: &SshTarget,
    stream: S,
) -> Result<Session, TransportError> {
    let timeout = t.timeout();
    let mut session =
        Session::new().map_err(|e| connect_err(t, format!("libssh2 session: {e}"), false))?;
    session.set_tcp_stream(stream);
    session.set_blocking(true);
    session.set_timeout(timeout.as_millis().clamp(1, u32::MAX as u128) as u32);

    let kh = KnownHostsDb::load(&t.known_hosts, &session).map_err(TransportError::Other)?;
    let known_types = kh.known_key_types(&t.address, t.port);
    let mut hostkey_prefs: Vec<&str> = known_types
        .iter()
        .flat_map(|kt| known_hosts::hostkey_algorithms_for(kt).iter().copied())
        .collect();
    hostkey_prefs.extend_from_slice(HOSTKEY_PREFS);
    for (method, prefs) in [
        (MethodType::Kex, KEX_PREFS),
        (MethodType::HostKey, hostkey_prefs.as_slice()),
    ] {
        if let Ok(supported) = session.supported_algs(method) {
            let list = ordered_prefs(prefs, &supported);
            // Best effort: libssh2's defaults are fine if this fails.
            let _ = session.method_pref(method, &list);
        }
    }
    session.handshake().map_err(|e| {
        let code = code_of(&e);
        let transient = matches!(
            code,
            LIBSSH2_ERROR_BANNER_RECV
                | LIBSSH2_ERROR_BANNER_SEND
                | LIBSSH2_ERROR_SOCKET_SEND
                | LIBSSH2_ERROR_SOCKET_DISCONNECT
                | LIBSSH2_ERROR_SOCKET_TIMEOUT
                | LIBSSH2_ERROR_SOCKET_RECV
                | LIBSSH2_ERROR_TIMEOUT
        );
        if code == LIBSSH2_ERROR_TIMEOUT {
            connect_err(
                t,
                format!("SSH handshake timed out after {timeout:?}"),
                true,
            )
        } else {
            connect_err(t, format!("SSH handshake failed: {e}"), transient)
        }
    })?;

    let (blob, _) = session
        .host_key()
        .ok_or_else(|| connect_err(t, "server sent no host key".into(), false))?;
    let blob = blob.to_vec();
    let fingerprint = fingerprint_sha256(&blob);
    let known_hosts_display = t.known_hosts.display().to_string();
    match kh.check(&t.address, t.port, &blob) {
        Ok(Verdict::Match) => {}
        Ok(Verdict::NotFound) if t.host_key_policy.accepts_new() => {
            known_hosts::append_host_key(&t.known_hosts, &t.address, t.port, &blob)
                .map_err(TransportError::Other)?;
        }
        Ok(Verdict::NotFound) => {
            return Err(TransportError::UnknownHostKey {
                host: t.host.clone(),
                known_hosts: known_hosts_display,
                fingerprint,
            })
        }
        Ok(Verdict::Mismatch) => {
            return Err(TransportError::ChangedHostKey {
                host: t.host.clone(),
                known_hosts: known_hosts_display,
                fingerprint,
                note: if t.host_key_policy == HostKeyPolicy::No {
                    " (StrictHostKeyChecking=no is treated as accept-new: a changed key is always refused)"
                        .into()
                } else {
                    String::new()
                },
            })
        }
        Ok(Verdict::Revoked) => {
            return Err(TransportError::RevokedHostKey {
                host: t.host.clone(),
                known_hosts: known_hosts_display,
                fingerprint,
            })
        }
        Err(e) => return Err(TransportError::Other(e)),
    }
    drop(kh);

    authenticate(&session, t)?;
    Ok(session)
}

/// The public key blob of an identity file, from `FILE.pub` (or FILE itself if it is a
/// `.pub`), used to recognise the same key in the agent.
fn public_blob(path: &Path) -> Option<Vec<u8>> {
    let pub_path = if path.extension().is_some_and(|e| e == "pub") {
        path.to_path_buf()
    } else {
        let mut p = path.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let text = std::fs::read_to_string(pub_path).ok()?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().nth(1)?)
        .ok()
}

/// The agent and its keys, or why it cannot be used.
fn open_agent(
    t: &SshTarget,
    session: &Session,
) -> Result<(ssh2::Agent, Vec<ssh2::PublicKey>), String> {
    let socket = match &t.agent_socket {
        Some(p) => p.clone(),
        None => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => return Err("agent (SSH_AUTH_SOCK not set)".into()),
        },
    };
    let fail = |e: ssh2::Error| format!("agent {} ({})", socket.display(), e.message());
    let mut agent = session.agent().map_err(fail)?;
    agent.set_identity_path(&socket).map_err(fail)?;
    agent.connect().map_err(fail)?;
    agent.list_identities().map_err(fail)?;
    let ids = agent.identities().map_err(fail)?;
    Ok((agent, ids))
}

/// Publickey authentication, as OpenSSH orders it: each identity file (through the agent
/// when the agent holds that key, else from the file), then — unless IdentitiesOnly — the
/// agent's other keys; with no identity file configured, every agent key then the default
/// ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
fn authenticate(session: &Session, t: &SshTarget) -> Result<(), TransportError> {
    let auth_err = |reason: String| TransportError::Auth {
        user: format!("{}@{}", t.user, t.host),
        reason,
    };
    let mut tried: Vec<String> = Vec::new();
    let mut agent = match open_agent(t, session) {
        Ok(a) => Some(a),
        Err(why) => {
            if t.identity_files.is_empty() || !t.identities_only {
                tried.push(why);
            }
            None
        }
    };
    // Indices of agent keys already offered.
    let mut used: Vec<usize> = Vec::new();
    let agent_try = |agent: &mut (ssh2::Agent, Vec<ssh2::PublicKey>), i: usize| {
        agent.0.userauth(&t.user, &agent.1[i]).is_ok() && session.authenticated()
    };

    if !t.identity_files.is_empty() {
        for path in &t.identity_files {
            let blob = public_blob(path);
            if let (Some(a), Some(blob)) = (agent.as_mut(), blob.as_ref()) {
                if let Some(i) = a.1.iter().position(|id| id.blob() == blob.as_slice()) {
                    used.push(i);
                    if agent_try(a, i) {
                        let _ = a.0.disconnect();
                        return Ok(());
                    }
                    tried.push(format!("{} (via agent: not accepted)", path.display()));
                    continue;
                }
            }
            match std::fs::File::open(path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tried.push(format!("private key file {} not found", path.display()));
                    continue;
                }
                Err(e) => {
                    tried.push(format!(
                        "private key file {} is unreadable: {e}",
                        path.display()
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            match try_key_file(session, &t.user, path) {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(format!("publickey {}: {e}", path.display())),
            }
        }
        if !t.identities_only {
            if let Some(a) = agent.as_mut() {
                let others: Vec<usize> = (0..a.1.len()).filter(|i| !used.contains(i)).collect();
                for &i in &others {
                    if agent_try(a, i) {
                        let _ = a.0.disconnect();
                        return Ok(());
                    }
                }
                if !others.is_empty() {
                    tried.push(format!(
                        "{} other agent key(s) (not accepted)",
                        others.len()
                    ));
                }
            }
        }
        if let Some(mut a) = agent {
            let _ = a.0.disconnect();
        }
        return Err(auth_err(format!("tried {}", tried.join("; "))));
    }

    if let Some(a) = agent.as_mut() {
        let n = a.1.len();
        for i in 0..n {
            if agent_try(a, i) {
                let _ = a.0.disconnect();
                return Ok(());
            }
        }
        tried.push(format!("agent ({n} key(s), none accepted)"));
        let _ = a.0.disconnect();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let Some(path) = home.as_ref().map(|h| h.join(".ssh").join(name)) else {
            break;
        };
        if !path.exists() {
            continue;
        }
        match try_key_file(session, &t.user, &path) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    if home.is_none() {
        tried.push("default keys (HOME not set)".into());
    } else if !tried.iter().any(|s| s.contains("/.ssh/")) {
        tried.push("no default key in ~/.ssh (id_ed25519, id_ecdsa, id_rsa)".into());
    }
    Err(auth_err(format!("tried {}", tried.join("; "))))
}

fn try_key_file(session: &Session, user: &str, path: &Path) -> Result<(), String> {
    session
        .userauth_pubkey_file(user, None, path, None)
        .map_err(|e| e.message().to_string())?;
    if session.authenticated() {
        Ok(())
    } else {
        Err("partial success only".into())
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
        self.run(&wrapped, fed.as_deref().unwrap_or(stdin), timeout)
    }

    fn round_trips(&self) -> u64 {
        self.round_trips
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

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
