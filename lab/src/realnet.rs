//! The network namespace of a lab worker that runs a real kubelet and containerd
//! (`lab up --real-components`), held by one small process of the lab (argv[0]
//! `bootstrapctl-lab-netns`, started inside the host's mount namespace so `lab down` stops it
//! with the host). It creates the namespace, brings up its loopback and a veth pair
//! carrying the node's address, and forwards the control plane's API port from inside the namespace to
//! the same loopback address outside, so that the kubelet reaches `https://127.S.0.1:6443`
//! (the address in the shipped bootstrap-kubeconfig) while its own ports (10250, 10248) and
//! containerd's stay inside the namespace.
//!
//! The node address is on a veth inside the namespace (both ends there) because kubelet 1.20 refuses loopback and
//! link-local node IPs: it comes from TEST-NET-2 (198.51.100.0/24, RFC 5737, never routed);
//! nothing ever sends traffic to it (the API server does not dial kubelets for a join).
//! The systemctl stand-in starts the host's services inside this namespace (see
//! `service::spawn`), finding the holder through `NETNS_PID_FILE`.

use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;

/// argv[0] of the holder process.
pub(crate) const NETNS_ARGV0: &str = "bootstrapctl-lab-netns";
/// Holder's pid inside the host's state dir (also swept by `lab down` as a `*.pid`).
pub(crate) const NETNS_PID_FILE: &str = "lab-netns.pid";

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// `bootstrapctl-lab-netns LISTEN_ADDR:PORT NODE_IP/PREFIX PID_FILE`: forwards connections to
/// LISTEN_ADDR:PORT inside the new namespace to the same address in the namespace it started in.
pub(crate) fn netns_main(args: &[String]) -> i32 {
    let [listen, node_ip, pid_file] = args else {
        eprintln!("usage: {NETNS_ARGV0} ADDR:PORT NODE_IP/PREFIX PID_FILE");
        return 2;
    };
    match run(listen, node_ip, pid_file) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{NETNS_ARGV0}: {e}");
            1
        }
    }
}

fn run(listen: &str, node_ip: &str, pid_file: &str) -> io::Result<()> {
    let outside = File::open("/proc/self/ns/net")?;
    // SAFETY: plain syscalls on this (single-threaded) process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::other(format!(
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        )));
    }
    ip(&["link", "set", "lo", "up"])?;
    // A veth pair with both ends in here (this kernel has no dummy driver): an interface to
    // carry the node's address, nothing at the other end.
    ip(&[
        "link", "add", "lab0", "type", "veth", "peer", "name", "lab1",
    ])?;
    ip(&["addr", "add", node_ip, "dev", "lab0"])?;
    ip(&["link", "set", "lab1", "up"])?;
    ip(&["link", "set", "lab0", "up"])?;
    let listener = TcpListener::bind(listen)?;
    // This thread stays in the new namespace (so /proc/PID/ns/net is it, for the systemctl
    // stand-in); each connection's thread moves to the outside one before it dials.
    let outside = std::sync::Arc::new(outside);
    // Written last: `up` waits for it, and then the namespace is complete.
    let tmp = format!("{pid_file}.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, pid_file)?;
    for conn in listener.incoming() {
        let Ok(inside) = conn else { continue };
        let target = listen.to_string();
        let outside = outside.clone();
        std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a namespace fd kept open by the Arc.
            if unsafe { libc::setns(outside.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return;
            }
            let Ok(out) = TcpStream::connect(&target) else {
                return;
            };
            let (Ok(i2), Ok(o2)) = (inside.try_clone(), out.try_clone()) else {
                return;
            };
            let t = std::thread::spawn(move || pipe(i2, o2));
            pipe(out, inside);
            let _ = t.join();
        });
    }
    Ok(())
}

/// The network namespace file of the holder whose pid `pid_file` records, when it is still
/// that holder (a recycled pid is refused).
pub(crate) fn holder_netns(pid_file: &std::path::Path) -> io::Result<Option<File>> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{}: not a pid", pid_file.display())))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    if !argv0.ends_with(NETNS_ARGV0.as_bytes()) {
        return Err(io::Error::other(format!(
            "the host's network namespace holder (pid {pid} in {}) is gone",
            pid_file.display()
        )));
    }
    File::open(format!("/proc/{pid}/ns/net")).map(Some)
}
