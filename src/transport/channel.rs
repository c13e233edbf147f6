//! One command on an SSH session: a channel driven non-blocking, waiting on the socket with
//! `poll(2)` in the directions libssh2 says it is blocked on, so stdin, stdout and stderr all
//! flow without deadlock or busy-waiting; deadlines, exit status and signals.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel};

use super::libssh2_util::{
    code_of, is_eagain, set_quickack, LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT,
};
use super::ssh::SshTransport;
use super::{ExecOutput, TransportError};

/// Largest read chunk; also the largest single stdin write.
const CHUNK: usize = 32 * 1024;
/// First read and stdin chunk: the buffers grow to `CHUNK` only for a stream that fills
/// them. Every host's command is in flight at once, so a fixed 32 KiB pair per command cost
/// a 500-host run 20 MB for scripts and outputs of a few kilobytes.
const FIRST_CHUNK: usize = 4 * 1024;
/// How long a timed-out command's channel may take to close before it is abandoned.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

impl SshTransport {
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
    pub(super) fn wait_socket(&self, deadline: Instant) -> bool {
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
    pub(super) fn retry<T>(
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

    /// Run `command` with `stdin` streamed to it as the channel takes it (never read ahead
    /// by more than one chunk); `progress` gets the bytes of it sent so far.
    pub(super) fn run(
        &mut self,
        command: &str,
        stdin: &mut dyn Read,
        timeout: Duration,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExecOutput, TransportError> {
        crate::thread_stack::release_unused();
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
        let result = self.drive(&mut channel, command, stdin, progress, deadline);
        match result {
            Ok(out) => {
                self.close_channel(&mut channel);
                Ok(out)
            }
            Err(Drive::Timeout) => {
                self.close_channel(&mut channel);
                Err(timed_out())
            }
            Err(Drive::Input(e)) => {
                self.close_channel(&mut channel);
                Err(TransportError::Other(format!(
                    "{}: reading the local input of a command: {e}",
                    self.host
                )))
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
        stdin: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
        deadline: Instant,
    ) -> Result<ExecOutput, Drive> {
        match self.retry(deadline, || channel.exec(command)) {
            Ok(Some(())) => {}
            Ok(None) => return Err(Drive::Timeout),
            Err(e) => return Err(Drive::Failed("starting command", e)),
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut buf = vec![0u8; FIRST_CHUNK];
        // One chunk of stdin at a time: `pending[sent_of_chunk..]` is what the channel has
        // not taken yet; the next chunk is read only once it took all of it.
        let mut pending: Vec<u8> = Vec::new();
        let mut stdin_chunk = FIRST_CHUNK;
        let mut sent_of_chunk = 0usize;
        let mut input_done = false;
        let mut sent: u64 = 0;
        let mut eof_sent = false;
        let mut stderr = channel.stderr();
        loop {
            let mut progress_made = false;

            // stdin, then EOF.
            if !eof_sent {
                if sent_of_chunk == pending.len() && !input_done {
                    pending.resize(stdin_chunk, 0);
                    match stdin.read(&mut pending) {
                        Ok(0) => {
                            input_done = true;
                            pending = Vec::new();
                        }
                        Ok(n) => {
                            if n == stdin_chunk {
                                stdin_chunk = (stdin_chunk * 2).min(CHUNK);
                            }
                            pending.truncate(n)
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => pending.clear(),
                        Err(e) => return Err(Drive::Input(e)),
                    }
                    sent_of_chunk = 0;
                }
                if sent_of_chunk < pending.len() {
                    match channel.write(&pending[sent_of_chunk..]) {
                        Ok(n) => {
                            sent_of_chunk += n;
                            sent += n as u64;
                            if n > 0 {
                                progress(sent);
                                progress_made = true;
                            }
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
                if input_done && sent_of_chunk == pending.len() && !eof_sent {
                    match channel.send_eof() {
                        Ok(()) => {
                            eof_sent = true;
                            progress_made = true;
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
                            progress_made = true;
                            if n == buf.len() && buf.len() < CHUNK {
                                buf.resize(buf.len() * 2, 0);
                            }
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

            if !progress_made && !self.wait_socket(deadline) {
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

enum Drive {
    Timeout,
    /// The local source of stdin failed (a file being uploaded).
    Input(std::io::Error),
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
