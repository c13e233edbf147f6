//! Processes of a lab: liveness, mount-namespace identity, and stopping them (TERM, then KILL).

use std::collections::BTreeSet;
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Alive means the pid exists and is not a zombie (a killed sshd that was our child stays a
/// zombie until reaped, and must not count as a running host).
pub(crate) fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state field follows the last ')' (the command name may itself contain parentheses).
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => state != "Z" && state != "X",
        None => false,
    }
}

/// Inode of the process's mount namespace: identifies a lab host for as long as it lives.
pub(crate) fn mnt_ns(pid: u32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

pub(crate) fn own_mnt_ns() -> Option<u64> {
    mnt_ns(std::process::id())
}

/// Every live process whose mount namespace is one of `namespaces` (sshd, its sessions, and
/// anything the systemctl stand-in started inside the host).
pub(crate) fn pids_in_namespaces(namespaces: &BTreeSet<u64>) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| mnt_ns(pid).is_some_and(|ns| namespaces.contains(&ns)) && is_alive(pid))
        .collect()
}

/// Reaps `pid` if it is our child (it is when `up` and `down` run in one process, as in tests);
/// harmless otherwise.
fn reap(pid: u32) {
    unsafe {
        libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits until none of `pids` is alive or `within` passed; returns the ones still alive.
fn wait_gone(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        pids.iter().for_each(|&p| reap(p));
        let left: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL. Returns how many of `pids` were alive.
pub(crate) fn terminate(pids: &[u32], grace: Duration) -> usize {
    let me = std::process::id();
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| p != me && p > 1 && is_alive(p))
        .collect();
    alive.iter().for_each(|&p| signal(p, libc::SIGTERM));
    let stubborn = wait_gone(&alive, grace);
    stubborn.iter().for_each(|&p| signal(p, libc::SIGKILL));
    wait_gone(&stubborn, Duration::from_secs(1));
    alive.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_namespace() {
        assert!(is_alive(std::process::id()));
        assert!(own_mnt_ns().is_some());
        assert!(!is_alive(u32::MAX - 1));
    }

    #[test]
    fn terminate_stops_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert_eq!(terminate(&[pid], Duration::from_secs(2)), 1);
        assert!(!is_alive(pid));
        // terminate() reaped it already; this only satisfies the Child API.
        let _ = child.try_wait();
    }
}
