//! Reaching a host: TCP connect with timeout (TCP_NODELAY), retries of failures that came
//! fast (refused, reset, unreachable) with backoff, never of one that waited out its timeout, the SSH handshake preferring curve25519 kex and the host key types already
//! recorded for the host, and the host key checked against known_hosts BEFORE any credential
//! leaves this machine; then [`super::auth`] logs in.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;

use ssh2::{MethodType, Session};

use super::auth::authenticate;
use super::known_hosts::{self, fingerprint_sha256, KnownHostsDb, Verdict};
use super::libssh2_util::{code_of, release_zero_pages, LIBSSH2_ERROR_TIMEOUT};
use super::target::{HostKeyPolicy, SshTarget};
use super::TransportError;

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

/// Why a failure that waited out the timeout is not retried: a host that accepts TCP and
/// never speaks SSH (or drops SYNs) would otherwise cost `1 + retries` whole timeouts.
const NOT_RETRIED: &str = "not retried: the attempt already waited out the connect timeout";

/// Failures that come fast and may pass (sshd restarting, a route coming up). A timeout is
/// not one of them: see [`NOT_RETRIED`].
fn io_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
        )
    )
}

fn io_timed_out(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETIMEDOUT) || e.kind() == ErrorKind::TimedOut
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
            Err(e) if io_timed_out(&e) => {
                last_err = Some((format!("{a}: {e} ({NOT_RETRIED})"), false))
            }
            Err(e) => last_err = Some((format!("{a}: {e}"), io_transient(&e))),
        }
    }
    let (reason, transient) = last_err.unwrap_or_default();
    Err(connect_err(t, reason, transient))
}

/// Handshakes (key exchange and login) in flight at once in this process. Each costs both
/// ends tens of milliseconds of CPU; hundreds started at once on a small machine all crawl
/// and some wait out their connect timeout, while taking turns they finish in the same total
/// time (the machine was saturated either way) and none times out.
fn max_handshakes() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (32 * cores).max(64)
}

static HANDSHAKES: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// One turn at a handshake, given back when dropped.
struct HandshakeTurn;

impl HandshakeTurn {
    fn take() -> HandshakeTurn {
        let (busy, freed) = &HANDSHAKES;
        let mut n = busy.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max_handshakes() {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        HandshakeTurn
    }
}

impl Drop for HandshakeTurn {
    fn drop(&mut self) {
        let (busy, freed) = &HANDSHAKES;
        let mut n = busy.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        freed.notify_one();
    }
}

/// SSH over an established byte stream (a TCP socket, or one end of a socket pair bridged
/// to a jump host's channel): handshake preferring known host key types, host key checked
/// against known_hosts BEFORE any credential leaves this machine, then publickey auth.
/// Returns the session in blocking mode with the connect timeout set.
pub(crate) fn establish<S: 'static + AsRawFd>(
    t: &SshTarget,
    stream: S,
) -> Result<Session, TransportError> {
    // Its timeouts count from here, after the wait for a turn.
    let _turn = HandshakeTurn::take();
    let timeout = t.timeout();
    let mut session =
        Session::new().map_err(|e| connect_err(t, format!("libssh2 session: {e}"), false))?;
    release_zero_pages(&session);
    session.set_tcp_stream(stream);
    session.set_blocking(true);
    session.set_timeout(timeout.as_millis().clamp(1, u32::MAX as u128) as u32);

    let kh = KnownHostsDb::shared(&t.known_hosts).map_err(TransportError::Other)?;
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
                | LIBSSH2_ERROR_SOCKET_RECV
        );
        if code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_SOCKET_TIMEOUT {
            connect_err(
                t,
                format!("SSH handshake timed out after {timeout:?} ({NOT_RETRIED})"),
                false,
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
