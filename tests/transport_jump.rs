//! Jump hosts against real sshd processes in network namespaces the test creates: a bastion
//! shared by the targets only it can reach, and a two-hop chain. The connecting side runs in
//! a client namespace of its own, so the machine's own network namespace gains nothing (each
//! test checks its links and addresses before, during and after).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bootstrapctl::transport::jump::JumpPool;
use bootstrapctl::transport::ssh::{SshTarget, SshTransport};
use bootstrapctl::transport::{Transport, TransportError};

use crate::support::sshd::{sh, Sshd, SshdOpts, LONG};

// ---------------------------------------------------------------------------------------
// Jump hosts through network namespaces.

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// The bastion's and the targets' addresses. Every address lives in a namespace of this test
/// only, so parallel tests can use the same ones.
const BASTION: &str = "198.18.0.2";
const TARGETS: &str = "198.19.0.2";

/// The topology (every link and address inside namespaces this test creates):
///
/// ```text
///  ns <c>: client             ns <b>: bastion                 ns <t>: targets
///  veth c0 198.18.0.1/30 ──── veth b0 198.18.0.2/30
///                             veth b1 198.19.0.1/30 ───────── veth t0 198.19.0.2/30
///                             sshd jump1 198.18.0.2:22        sshd target1 198.19.0.2:2201
///                                                             sshd target2 198.19.0.2:2202
///                                                             sshd jump2   198.19.0.2:2203
///                                                             sshd inner   127.0.0.1:2204
/// ```
///
/// The client namespace has no route to 198.19.0.0/30 (no default route at all) and the
/// bastion namespace does not forward (net.ipv4.ip_forward is 0 in a new namespace), so only
/// jump1 reaches the targets, and only jump2 reaches `inner` (on the target namespace's own
/// loopback). The sshds are started with `ip netns exec`; the client side runs on a thread
/// that joined <c> with setns(2), and the threads it spawns inherit <c>.
struct Net {
    c: String,
    b: String,
    t: String,
}

impl Net {
    fn up() -> Option<Net> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: network namespaces need root");
            return None;
        }
        let id = format!(
            "{}-{}",
            std::process::id() % 100000,
            NEXT_NET.fetch_add(1, Ordering::SeqCst)
        );
        let net = Net {
            c: format!("bsc{id}"),
            b: format!("bsb{id}"),
            t: format!("bst{id}"),
        };
        let (c, b, t) = (&net.c, &net.b, &net.t);
        // Each veth is created inside a test namespace with its peer moved straight into
        // another one: no link ever exists in the machine's own namespace.
        sh(&format!(
            "set -e; ip netns add {c}; ip netns add {b}; ip netns add {t}; \
             ip -n {c} link add c0 type veth peer name b0 netns {b}; \
             ip -n {c} addr add 198.18.0.1/30 dev c0; ip -n {c} link set c0 up; \
             ip -n {c} link set lo up; \
             ip -n {b} addr add {BASTION}/30 dev b0; ip -n {b} link set b0 up; \
             ip -n {b} link set lo up; \
             ip -n {b} link add b1 type veth peer name t0 netns {t}; \
             ip -n {b} addr add 198.19.0.1/30 dev b1; ip -n {b} link set b1 up; \
             ip -n {t} addr add {TARGETS}/30 dev t0; ip -n {t} link set t0 up; \
             ip -n {t} link set lo up"
        ));
        Some(net)
    }

    fn sshd(&self, ns: &str, addr: &str, port: u16) -> Sshd {
        Sshd::start_opts(SshdOpts {
            listen: Some((addr.to_string(), port)),
            netns: Some(ns.to_string()),
            ..Default::default()
        })
    }

    /// Runs `f` on a thread inside the client namespace (sockets it or its threads open
    /// belong to that namespace); a panic in `f` is re-raised here.
    fn as_client<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let ns = std::fs::File::open(format!("/var/run/netns/{}", self.c)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) with a namespace fd we opened; it moves only this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The veths go with their namespaces.
        for ns in [&self.c, &self.b, &self.t] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The links and addresses of the machine's own network namespace (without address
/// lifetimes, which count down on their own).
fn root_net() -> String {
    let addrs: String = sh("ip -o addr")
        .lines()
        .map(|l| l.split(" valid_lft").next().unwrap_or(l).to_string() + "\n")
        .collect();
    sh("ip -o link") + &addrs
}

/// A hop/target for `sshd`, trusting its host key in `kh`.
fn hop(name: &str, sshd: &Sshd, kh: &Path) -> SshTarget {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(kh)
        .unwrap();
    use std::io::Write as _;
    f.write_all(sshd.known_line(&sshd.host_pub()).as_bytes())
        .unwrap();
    SshTarget {
        host: name.into(),
        address: sshd.addr.clone(),
        port: sshd.port,
        user: sshd.user.clone(),
        identity_files: vec![sshd.client_key.clone()],
        known_hosts: kh.to_path_buf(),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

#[test]
fn jump_host_shared_by_targets_only_it_can_reach() {
    let root_before = root_net();
    {
        let Some(net) = Net::up() else { return };
        let jump1 = net.sshd(&net.b, BASTION, 22);
        let target1 = net.sshd(&net.t, TARGETS, 2201);
        let target2 = net.sshd(&net.t, TARGETS, 2202);
        net.as_client(|| shared_bastion(&jump1, &target1, &target2));
        assert_eq!(root_net(), root_before, "the machine's own network changed");
    }
    assert_eq!(root_net(), root_before, "the machine's own network changed");
}

fn shared_bastion(jump1: &Sshd, target1: &Sshd, target2: &Sshd) {
    let kh = jump1.dir.join("fleet_known_hosts");
    let bastion = hop("bastion", jump1, &kh);
    let mut t1 = hop("target1", target1, &kh);
    let mut t2 = hop("target2", target2, &kh);

    // Direct: the client namespace has no route there.
    let direct = t1.clone();
    let err = SshTransport::connect(&direct).unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");

    t1.jump = vec![bastion.clone()];
    t2.jump = vec![bastion.clone()];
    let pool = JumpPool::new();
    // Several hosts behind the bastion at once, each with its own session.
    let handles: Vec<_> = [t1.clone(), t2.clone(), t1.clone(), t2.clone()]
        .into_iter()
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut s = SshTransport::connect_via(&t, &pool)?;
                s.exec("cat /proc/sys/kernel/hostname; echo ok", b"", None, LONG)
            })
        })
        .collect();
    for h in handles {
        let out = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", jump1.log()));
        assert!(out.stdout.ends_with(b"ok\n"));
    }
    assert_eq!(pool.connects(), 1);
    assert_eq!(
        jump1.log().matches("Accepted publickey").count(),
        1,
        "{}",
        jump1.log()
    );

    // 1 MiB both ways through the pump, interleaved with another host's traffic.
    let mut s1 = SshTransport::connect_via(&t1, &pool).unwrap();
    let mut s2 = SshTransport::connect_via(&t2, &pool).unwrap();
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = s1.exec("cat", &data, None, LONG).unwrap();
    assert!(out.stdout == data);
    assert_eq!(
        s2.exec("echo two", b"", None, LONG).unwrap().stdout,
        b"two\n"
    );
    assert_eq!(pool.connects(), 1);

    // The target's key is checked under its own address, not the bastion's.
    let kh_bastion_only = jump1.dir.join("bastion_only_kh");
    let b2 = hop("bastion", jump1, &kh_bastion_only);
    let mut t3 = t1.clone();
    t3.known_hosts = kh_bastion_only.clone();
    t3.jump = vec![b2];
    let err = SshTransport::connect(&t3).unwrap_err();
    match &err {
        TransportError::UnknownHostKey { host, .. } => assert_eq!(host, "target1"),
        other => panic!("expected the target's key unknown, got {other}"),
    }
    // And the bastion's own key is checked.
    let empty = jump1.dir.join("empty_kh");
    std::fs::write(&empty, "").unwrap();
    let mut b3 = bastion.clone();
    b3.known_hosts = empty;
    let mut t4 = t1.clone();
    t4.jump = vec![b3];
    let err = SshTransport::connect(&t4).unwrap_err();
    match &err {
        TransportError::UnknownHostKey { host, .. } => assert_eq!(host, "bastion"),
        other => panic!("expected the bastion's key unknown, got {other}"),
    }
    // A target behind the bastion that refuses: a transient connect error naming both.
    let mut t5 = t1.clone();
    t5.port = 2299;
    let err = SshTransport::connect_via(&t5, &pool).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("via"), "{err}");
}

#[test]
fn two_hop_jump_chain() {
    let root_before = root_net();
    {
        let Some(net) = Net::up() else { return };
        let jump1 = net.sshd(&net.b, BASTION, 22);
        let jump2 = net.sshd(&net.t, TARGETS, 2203);
        let inner = net.sshd(&net.t, "127.0.0.1", 2204);
        net.as_client(|| chain(&jump1, &jump2, &inner));
        assert_eq!(root_net(), root_before, "the machine's own network changed");
    }
    assert_eq!(root_net(), root_before, "the machine's own network changed");
}

fn chain(jump1: &Sshd, jump2: &Sshd, inner: &Sshd) {
    let kh = jump1.dir.join("chain_kh");
    let mut target = hop("inner", inner, &kh);
    target.jump = vec![hop("jump1", jump1, &kh), hop("jump2", jump2, &kh)];
    let pool = JumpPool::new();
    let mut t = SshTransport::connect_via(&target, &pool)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", jump1.log(), jump2.log()));
    assert_eq!(
        t.exec("echo deep", b"", None, LONG).unwrap().stdout,
        b"deep\n"
    );
    let mut again = SshTransport::connect_via(&target, &pool).unwrap();
    assert_eq!(
        again.exec("echo x", b"", None, LONG).unwrap().stdout,
        b"x\n"
    );
    assert_eq!(pool.connects(), 2, "one connection per hop, shared");
}
