//! Is a host's sshd answering? At `up`, its socket listening (read from /proc/net/tcp for all
//! hosts at once); for `status`, a TCP connect plus the `SSH-2.0` banner.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
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

/// The IPv4 sockets in LISTEN state in this network namespace (the lab's hosts share it), or
/// None when /proc/net/tcp cannot be read.
fn listening() -> Option<HashSet<SocketAddrV4>> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    Some(
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let local = f.nth(1)?;
                // Field 4 is the state; 0A is TCP_LISTEN.
                if f.nth(1)? != "0A" {
                    return None;
                }
                let (ip, port) = local.split_once(':')?;
                // The kernel prints the address as the u32 it holds in network byte order.
                let ip = u32::from_str_radix(ip, 16).ok()?;
                let port = u16::from_str_radix(port, 16).ok()?;
                Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
            })
            .collect(),
    )
}

/// Like [`wait_all`], but a host is up once its sshd listens: one read of /proc/net/tcp per
/// poll for every host, instead of a connection per host, each of which costs a full sshd
/// start (sshd re-executes itself for every connection) and, for 500 hosts, seconds of CPU.
/// `up` checked before starting that nobody else listened there, and the pid is checked to
/// be alive, so the listener is that host's sshd. Falls back to [`wait_all`] without /proc.
pub(crate) fn wait_listening(hosts: &[Pending], deadline: Instant) -> Vec<Option<String>> {
    let mut result: Vec<Option<Option<String>>> = vec![None; hosts.len()];
    loop {
        let Some(up) = listening() else {
            return wait_all(hosts, deadline);
        };
        let late = Instant::now() >= deadline;
        for (h, r) in hosts
            .iter()
            .zip(result.iter_mut())
            .filter(|(_, r)| r.is_none())
        {
            let SocketAddr::V4(addr) = h.addr else {
                *r = Some(banner(h.addr, Duration::from_millis(500)).err());
                continue;
            };
            if up.contains(&addr) {
                *r = Some(None);
            } else if !procs::is_alive(h.pid) {
                *r = Some(Some(format!("{} (sshd pid {} exited)", h.name, h.pid)));
            } else if late {
                *r = Some(Some(format!("{} ({}: not listening)", h.name, h.addr)));
            }
        }
        if result.iter().all(Option::is_some) {
            return result.into_iter().map(Option::unwrap_or_default).collect();
        }
        sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_seen_and_a_closed_one_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            unreachable!()
        };
        assert!(listening().unwrap().contains(&addr));
        let me = Pending {
            name: "h",
            addr: SocketAddr::V4(addr),
            pid: std::process::id(),
        };
        assert_eq!(wait_listening(&[me], Instant::now()), vec![None]);
        drop(l);
        assert!(!listening().unwrap().contains(&addr));
        let gone = Pending {
            name: "h",
            addr: SocketAddr::V4(addr),
            pid: std::process::id(),
        };
        let r = wait_listening(&[gone], Instant::now());
        assert!(
            r[0].as_deref().is_some_and(|m| m.contains("not listening")),
            "{r:?}"
        );
    }
}
