//! Runs commands on this machine through `sh -c`: for `ansible_connection: local`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{become_wrap, Become, ExecOutput, Transport, TransportError};

#[derive(Debug, Default)]
pub struct LocalTransport {
    round_trips: u64,
}

impl LocalTransport {
    pub fn new() -> Self {
        Self::default()
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
        let wrapped = match become_ {
            Some(b) if !(is_root && b.user.as_deref().unwrap_or("root") == "root") => {
                become_wrap(command, Some(b))
            }
            _ => command.to_string(),
        };
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
