//! A TCP connection from the host's side: a `direct-tcpip` channel on the host's own session
//! (what `ssh -L` opens), read and written as a byte stream. bootstrapctl talks to a service
//! that listens on the host (the API server on a control plane) without a process there.
//!
//! The session is non-blocking (its execs keep their own deadlines), so each read and write
//! waits for the socket the way an exec does, until the tunnel's deadline.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::libssh2_util::is_eagain;
use super::ssh::SshTransport;
use super::TransportError;

/// How long closing a tunnel may wait for the host's answer before the channel is dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// A byte stream to a port as the host reaches it.
pub trait Tunnel: Read + Write {}

pub(super) struct SshTunnel<'a> {
    transport: &'a SshTransport,
    channel: Channel,
    deadline: Instant,
}

impl Tunnel for SshTunnel<'_> {}

impl SshTransport {
    pub(super) fn open_tunnel(
        &mut self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<SshTunnel<'_>, TransportError> {
        if let Some(why) = &self.broken {
            return Err(TransportError::Lost(why.clone()));
        }
        let deadline = Instant::now() + timeout;
        let opened = self.retry(deadline, || {
            self.session.channel_direct_tcpip(host, port, None)
        });
        match opened {
            Ok(Some(channel)) => Ok(SshTunnel {
                transport: self,
                channel,
                deadline,
            }),
            Ok(None) => Err(TransportError::Other(format!(
                "{}: opening a tunnel to {host}:{port}: timed out",
                self.host
            ))),
            Err(e) => Err(TransportError::Other(format!(
                "{}: opening a tunnel to {host}:{port}: {e}",
                self.host
            ))),
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl SshTunnel<'_> {
    fn wait(&self) -> io::Result<()> {
        if self.transport.wait_socket(self.deadline) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("tunnel on {}: timed out", self.transport.host),
            ))
        }
    }
}

impl Read for SshTunnel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.channel.read(buf) {
                Err(e) if would_block(&e) => self.wait()?,
                r => return r,
            }
        }
    }
}

impl Write for SshTunnel<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.channel.write(buf) {
                Err(e) if would_block(&e) => self.wait()?,
                r => return r,
            }
        }
    }

    /// Nothing is held back here (a channel write sends its packets); a channel's own flush
    /// would discard data not yet read instead.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SshTunnel<'_> {
    fn drop(&mut self) {
        let deadline = Instant::now() + CLOSE_GRACE;
        let channel = &mut self.channel;
        let _ = self.transport.retry(deadline, || match channel.close() {
            Err(e) if is_eagain(&e) => Err(e),
            _ => Ok(()),
        });
    }
}
