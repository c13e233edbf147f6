//! Is a host's sshd answering? TCP connect plus the `SSH-2.0` banner, checked for many hosts at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::procs;

/// Threads probing at once: loopback connects are cheap, the bound only limits thread count.
const PARALLEL: usize = 32;

/// Connects and reads the server's identification line. Ok only for an SSH-2.0 banner.
pub(crate) fn banner(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while buf.len() < 255 && !buf.ends_with(b"\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
    if line.starts_with("SSH-2.0") {
        // Answer with our own identification before closing: a peer that hangs up before
        // identifying itself makes sshd log an error line per probe.
        let _ = s.write_all(b"SSH-2.0-bootstrapctl_lab_probe\r\n");
        Ok(line)
    } else {
        Err(format!("no SSH-2.0 banner (got {line:?})"))
    }
}

/// Is anything listening at `addr`? Used before starting a host, so that a banner later
/// really comes from our sshd.
pub(crate) fn in_use(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Runs `f` over `items` on up to PARALLEL threads, keeping the order of the results.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let chunk = items.len().div_ceil(PARALLEL);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| scope.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("probe thread panicked"))
            .collect()
    })
}

/// A host `up` is waiting for.
pub(crate) struct Pending<'a> {
    pub(crate) name: &'a str,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
}

/// Polls every host until its port answers with an SSH banner, its sshd dies, or `deadline`.
/// Returns, per host, None when it came up or the reason it did not.
pub(crate) fn wait_all(hosts: &[Pending], deadline: Instant) -> Vec<Option<String>> {
    parallel_map(hosts, |h| loop {
        if !procs::is_alive(h.pid) {
            return Some(format!("{} (sshd pid {} exited)", h.name, h.pid));
        }
        match banner(h.addr, Duration::from_millis(500)) {
            Ok(_) => return None,
            Err(e) if Instant::now() >= deadline => {
                return Some(format!("{} ({}: {e})", h.name, h.addr))
            }
            Err(_) => sleep(Duration::from_millis(25)),
        }
    })
}
