//! Jump hosts (ProxyJump, `-J`, the inventory `bastion` variable).
//!
//! One SSH connection per jump chain (`a`, or `a,b` = `b` reached through `a`) is shared by
//! every target behind it: [`JumpPool`] keys them by the chain's `user@host:port` specs and
//! connects each chain once, whatever the number of threads asking (a slot mutex is held
//! while connecting; a failure is remembered for the run, so a dead bastion is not retried
//! by each of its hosts).
//!
//! libssh2 needs a real socket under each session, and a session must not be driven from
//! several threads at once with blocking calls. So each jump connection has one pump thread
//! that owns its session (non-blocking) and all its `direct-tcpip` channels. A target
//! connection asks the pump for a channel to `host:port`; the pump opens it and hands back
//! one end of a `UnixStream::pair()`, which the target's own ssh2 session uses as its
//! socket. The pump copies bytes between each channel and its socket-pair end, with
//! back-pressure (one buffer each way), and forwards EOF in both directions. Host keys of
//! every hop and of the target are checked by `ssh::establish`, each under its own name.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel, Session};

use super::connect::{establish, tcp_connect, with_retries};
use super::libssh2_util::{code_of, is_eagain, set_quickack};
use super::target::SshTarget;
use super::TransportError;

const CHUNK: usize = 32 * 1024;
/// How long a closing channel may wait for the remote's CLOSE before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why a channel through a jump host could not be opened.
#[derive(Debug, Clone)]
pub struct OpenError {
    pub reason: String,
    /// The jump host answered but could not reach the target (refused, unreachable): the
    /// target may be rebooting, so this is worth a retry.
    pub transient: bool,
}

enum Slot {
    Empty,
    Up(Arc<JumpConn>),
    Failed(TransportError),
}

/// The run's jump connections, keyed by chain. Cheap to clone; clones share the connections.
#[derive(Clone, Default)]
pub struct JumpPool {
    slots: Arc<Mutex<HashMap<String, Arc<Mutex<Slot>>>>>,
    connects: Arc<AtomicU64>,
}

fn chain_key(chain: &[SshTarget]) -> String {
    chain
        .iter()
        .map(SshTarget::spec)
        .collect::<Vec<_>>()
        .join(",")
}

impl JumpPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Jump-host SSH connections made so far (one per chain hop actually connected).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::SeqCst)
    }

    /// The live connection to the last hop of `chain`, connecting it (and the hops before
    /// it) on first use.
    pub fn get(&self, chain: &[SshTarget]) -> Result<Arc<JumpConn>, TransportError> {
        let Some((last, before)) = chain.split_last() else {
            return Err(TransportError::Other("empty jump chain".into()));
        };
        let key = chain_key(chain);
        let slot = {
            let mut slots = self.slots.lock().expect("jump pool lock");
            slots
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Slot::Empty)))
                .clone()
        };
        let mut slot = slot.lock().expect("jump slot lock");
        match &*slot {
            Slot::Up(c) if !c.is_broken() => return Ok(c.clone()),
            Slot::Failed(e) => return Err(e.clone()),
            _ => {}
        }
        let session = with_retries(last, || {
            if before.is_empty() {
                establish(last, tcp_connect(last)?)
            } else {
                let parent = self.get(before)?;
                let stream = parent
                    .open(&last.address, last.port, last.timeout())
                    .map_err(|e| TransportError::Connect {
                        addr: format!(
                            "jump host {} ({}) via {}",
                            last.host,
                            last.addr_display(),
                            parent.name()
                        ),
                        reason: e.reason,
                        transient: e.transient,
                    })?;
                establish(last, stream)
            }
        });
        match session {
            Ok(session) => {
                self.connects.fetch_add(1, Ordering::SeqCst);
                let conn = Arc::new(JumpConn::start(session, key)?);
                *slot = Slot::Up(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let e = match e {
                    TransportError::Connect {
                        addr,
                        reason,
                        transient,
                    } if !addr.starts_with("jump host") => TransportError::Connect {
                        addr: format!("jump host {addr}"),
                        reason,
                        transient,
                    },
                    e => e,
                };
                *slot = Slot::Failed(e.clone());
                Err(e)
            }
        }
    }
}

struct OpenReq {
    host: String,
    port: u16,
    reply: Sender<Result<UnixStream, OpenError>>,
}

/// One jump host's SSH connection, driven by its pump thread.
pub struct JumpConn {
    name: String,
    tx: Sender<OpenReq>,
    wake: UnixStream,
    broken: Arc<Mutex<Option<String>>>,
}

impl JumpConn {
    fn start(session: Session, name: String) -> Result<JumpConn, TransportError> {
        let (wake, wake_rx) =
            UnixStream::pair().map_err(|e| TransportError::Other(format!("socketpair: {e}")))?;
        wake_rx
            .set_nonblocking(true)
            .map_err(|e| TransportError::Other(format!("socketpair: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let broken = Arc::new(Mutex::new(None));
        let b = broken.clone();
        std::thread::Builder::new()
            .name(format!("jump {name}"))
            .spawn(move || pump(session, rx, wake_rx, b))
            .map_err(|e| TransportError::Other(format!("spawning jump pump: {e}")))?;
        Ok(JumpConn {
            name,
            tx,
            wake,
            broken,
        })
    }

    /// The chain, as `user@host:port[,user@host:port]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_broken(&self) -> bool {
        self.broken.lock().map(|b| b.is_some()).unwrap_or(true)
    }

    /// A byte stream to `host:port` as seen from the jump host (a `direct-tcpip` channel).
    pub fn open(&self, host: &str, port: u16, timeout: Duration) -> Result<UnixStream, OpenError> {
        if let Some(why) = self.broken.lock().ok().and_then(|b| b.clone()) {
            return Err(OpenError {
                reason: format!("connection to jump host {} lost: {why}", self.name),
                transient: false,
            });
        }
        let (reply, answer) = mpsc::channel();
        let req = OpenReq {
            host: host.to_string(),
            port,
            reply,
        };
        let lost = || OpenError {
            reason: format!("connection to jump host {} lost", self.name),
            transient: false,
        };
        self.tx.send(req).map_err(|_| lost())?;
        let _ = (&self.wake).write(&[1]);
        match answer.recv_timeout(timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(OpenError {
                reason: format!(
                    "jump host {} did not open a channel within {timeout:?}",
                    self.name
                ),
                transient: true,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(lost()),
        }
    }
}

impl Drop for JumpConn {
    fn drop(&mut self) {
        // The pump sees the request channel closed and ends once its channels are closed.
        let _ = (&self.wake).write(&[0]);
    }
}

/// One forwarded connection: a channel and our end of its socket pair.
struct Fwd {
    ch: Channel,
    sock: UnixStream,
    /// Bytes read from the socket, not yet written to the channel.
    up: Vec<u8>,
    up_off: usize,
    /// Bytes read from the channel, not yet written to the socket.
    down: Vec<u8>,
    down_off: usize,
    local_eof: bool,
    eof_sent: bool,
    remote_eof_passed: bool,
    done: bool,
}

enum StepError {
    /// This channel is finished (closed, reset); the session is fine.
    Channel,
    /// The jump host connection itself failed.
    Session(String),
}

/// Socket-level libssh2 errors: the whole jump connection is gone.
fn session_fatal(code: i32) -> bool {
    matches!(code, -7 | -9 | -13 | -30 | -43)
}

impl Fwd {
    fn new(ch: Channel, sock: UnixStream) -> Fwd {
        Fwd {
            ch,
            sock,
            up: Vec::new(),
            up_off: 0,
            down: Vec::new(),
            down_off: 0,
            local_eof: false,
            eof_sent: false,
            remote_eof_passed: false,
            done: false,
        }
    }

    fn channel_error(&self, session: &Session) -> StepError {
        let e = ssh2::Error::last_session_error(session).unwrap_or_else(ssh2::Error::unknown);
        if session_fatal(code_of(&e)) {
            StepError::Session(e.to_string())
        } else {
            StepError::Channel
        }
    }

    /// Move whatever can move without blocking. Returns whether anything moved.
    fn step(&mut self, session: &Session, buf: &mut [u8]) -> Result<bool, StepError> {
        let mut progress = false;
        // Local → channel.
        if self.up_off == self.up.len() && !self.local_eof {
            match self.sock.read(buf) {
                Ok(0) => {
                    self.local_eof = true;
                    progress = true;
                }
                Ok(n) => {
                    self.up.clear();
                    self.up.extend_from_slice(&buf[..n]);
                    self.up_off = 0;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                Err(_) => return Err(StepError::Channel),
            }
        }
        while self.up_off < self.up.len() {
            match self.ch.write(&self.up[self.up_off..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.up_off += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Err(self.channel_error(session)),
            }
        }
        if self.local_eof && self.up_off == self.up.len() && !self.eof_sent {
            match self.ch.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    progress = true;
                }
                Err(e) if is_eagain(&e) => {}
                Err(_) => return Err(self.channel_error(session)),
            }
        }
        // Channel → local.
        if self.down_off == self.down.len() && !self.remote_eof_passed {
            match self.ch.read(buf) {
                Ok(0) => {}
                Ok(n) => {
                    self.down.clear();
                    self.down.extend_from_slice(&buf[..n]);
                    self.down_off = 0;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Err(self.channel_error(session)),
            }
        }
        while self.down_off < self.down.len() {
            match self.sock.write(&self.down[self.down_off..]) {
                Ok(n) => {
                    self.down_off += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(StepError::Channel),
            }
        }
        if self.down_off == self.down.len() && !self.remote_eof_passed && self.ch.eof() {
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
            self.remote_eof_passed = true;
            progress = true;
        }
        if self.remote_eof_passed && self.eof_sent {
            self.done = true;
        }
        Ok(progress)
    }
}

fn pump(
    session: Session,
    rx: Receiver<OpenReq>,
    mut wake: UnixStream,
    broken: Arc<Mutex<Option<String>>>,
) {
    session.set_blocking(false);
    let mut fwds: Vec<Fwd> = Vec::new();
    let mut closing: Vec<(Channel, Instant)> = Vec::new();
    let mut queue: VecDeque<OpenReq> = VecDeque::new();
    let mut disconnected = false;
    let mut buf = vec![0u8; CHUNK];
    let mut fatal: Option<String> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(r) => queue.push_back(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let mut scratch = [0u8; 64];
        while matches!(wake.read(&mut scratch), Ok(n) if n > 0) {}

        let mut progress = false;
        // One channel open at a time: libssh2 keeps a single open state per session.
        if let Some(req) = queue.front() {
            match session.channel_direct_tcpip(&req.host, req.port, None) {
                Ok(ch) => {
                    let req = queue.pop_front().expect("front");
                    progress = true;
                    match UnixStream::pair()
                        .and_then(|(a, b)| a.set_nonblocking(true).map(|_| (a, b)))
                    {
                        Ok((ours, theirs)) => {
                            fwds.push(Fwd::new(ch, ours));
                            let _ = req.reply.send(Ok(theirs));
                        }
                        Err(e) => {
                            closing.push((ch, Instant::now() + CLOSE_GRACE));
                            let _ = req.reply.send(Err(OpenError {
                                reason: format!("socketpair: {e}"),
                                transient: false,
                            }));
                        }
                    }
                }
                Err(e) if is_eagain(&e) => {}
                Err(e) if session_fatal(code_of(&e)) => fatal = Some(e.to_string()),
                Err(e) => {
                    let req = queue.pop_front().expect("front");
                    progress = true;
                    // "Channel open failure (connect failed)": the jump host could not reach
                    // the target (refused, unreachable): it may be rebooting.
                    let _ = req.reply.send(Err(OpenError {
                        reason: format!(
                            "the jump host could not open a connection to {}:{}: {}",
                            req.host,
                            req.port,
                            e.message()
                        ),
                        transient: true,
                    }));
                }
            }
        }

        for f in fwds.iter_mut() {
            match f.step(&session, &mut buf) {
                Ok(p) => progress |= p,
                Err(StepError::Channel) => {
                    f.done = true;
                    progress = true;
                }
                Err(StepError::Session(why)) => {
                    fatal = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = fatal {
            if let Ok(mut b) = broken.lock() {
                *b = Some(why.clone());
            }
            for req in queue.drain(..) {
                let _ = req.reply.send(Err(OpenError {
                    reason: format!("connection to the jump host lost: {why}"),
                    transient: false,
                }));
            }
            for f in &fwds {
                let _ = f.sock.shutdown(std::net::Shutdown::Both);
            }
            // Channels are freed with the session.
            drop(fwds);
            drop(closing);
            unsafe { libc::shutdown(session.as_raw_fd(), libc::SHUT_RDWR) };
            return;
        }
        let mut i = 0;
        while i < fwds.len() {
            if fwds[i].done {
                let f = fwds.swap_remove(i);
                let _ = f.sock.shutdown(std::net::Shutdown::Both);
                closing.push((f.ch, Instant::now() + CLOSE_GRACE));
                progress = true;
            } else {
                i += 1;
            }
        }
        closing.retain_mut(|(ch, deadline)| {
            matches!(ch.close(), Err(e) if is_eagain(&e) && Instant::now() < *deadline)
        });

        if disconnected && fwds.is_empty() && queue.is_empty() && closing.is_empty() {
            break;
        }
        if progress {
            continue;
        }

        // Nothing moved: wait for the jump host, a local socket, or a new request.
        let mut pfds = Vec::with_capacity(fwds.len() + 2);
        let session_events = match session.block_directions() {
            BlockDirections::Outbound => libc::POLLIN | libc::POLLOUT,
            BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            _ => libc::POLLIN,
        };
        pfds.push(libc::pollfd {
            fd: session.as_raw_fd(),
            events: session_events,
            revents: 0,
        });
        pfds.push(libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for f in &fwds {
            let mut events = 0;
            if f.up_off == f.up.len() && !f.local_eof {
                events |= libc::POLLIN;
            }
            if f.down_off < f.down.len() {
                events |= libc::POLLOUT;
            }
            pfds.push(libc::pollfd {
                fd: f.sock.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let ms = if closing.is_empty() { 200 } else { 20 };
        set_quickack(session.as_raw_fd());
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    }
    // Polite goodbye, bounded.
    session.set_blocking(true);
    session.set_timeout(1000);
    let _ = session.disconnect(None, "bootstrapctl done", None);
    unsafe { libc::shutdown(session.as_raw_fd(), libc::SHUT_RDWR) };
}
