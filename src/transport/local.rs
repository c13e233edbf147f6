//! Runs commands on this machine through `sh -c`: for `ansible_connection: local`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{wrap_become, Become, BecomePassword, ExecOutput, Transport, TransportError};

#[derive(Debug, Default)]
pub struct LocalTransport {
    round_trips: u64,
    become_password: Option<BecomePassword>,
}

impl LocalTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// `become` feeds this password to `sudo -S` (see `become_wrap_with_password`).
    pub fn with_become_password(password: Option<BecomePassword>) -> Self {
        LocalTransport {
            round_trips: 0,
            become_password: password,
        }
    }
}

impl Transport for LocalTransport {
    fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        become_: Option<&Become>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.round_trips += 1;
        let is_root = unsafe { libc::geteuid() } == 0;
        let already =
            become_.is_some_and(|b| is_root && b.user.as_deref().unwrap_or("root") == "root");
        let (wrapped, fed) = wrap_become(
            command,
            stdin,
            become_,
            already,
            self.become_password.as_ref(),
        );
        let stdin = fed.as_deref().unwrap_or(stdin);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&wrapped)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TransportError::Other(format!("spawning /bin/sh: {e}")))?;
        let mut child_in = child.stdin.take().expect("piped stdin");
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = child_in.write_all(&input);
        });
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TransportError::Timeout(timeout));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(TransportError::Other(format!("waiting for sh: {e}"))),
            }
        };
        let _ = writer.join();
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        Ok(ExecOutput {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    fn round_trips(&self) -> u64 {
        self.round_trips
    }
}
