//! Issue 7 against real sshd processes: agent, IdentitiesOnly, retries, jump hosts through
//! network namespaces, sudo with a password in a private /etc, known_hosts corner cases.

use super::*;
use crate::transport::jump::JumpPool;
use crate::transport::BecomePassword;

/// An `ssh-agent -D` on a private socket, holding the given keys; killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path, keys: &[&Path]) -> Agent {
        let sock = dir.join("agent.sock");
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(5), "agent socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        for k in keys {
            sh(&format!(
                "SSH_AUTH_SOCK={} ssh-add -q {} 2>&1",
                sock.display(),
                k.display()
            ));
        }
        Agent { child, sock }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_key_is_used_when_no_identity_file_is_configured() {
    let sshd = Sshd::start();
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let mut target = sshd.target();
    target.identity_files = vec![];
    target.agent_socket = Some(agent.sock.clone());
    let mut t = SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(t.exec("echo a", b"", None, LONG).unwrap().stdout, b"a\n");
}

#[test]
fn identities_only_offers_only_the_identity_file_even_with_the_agent() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/stranger"));
    // The agent holds the authorized key; the configured identity is another one.
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let mut target = sshd.target();
    target.agent_socket = Some(agent.sock.clone());
    target.identity_files = vec![sshd.dir.join("stranger")];
    target.identities_only = true;
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("stranger"), "{err}");
    // The sshd saw exactly one key offered (the stranger), never the agent's.
    let offered = sshd.log().matches("Failed publickey").count()
        + sshd.log().matches("Accepted publickey").count();
    assert!(offered <= 1, "{}", sshd.log());

    // Without IdentitiesOnly the agent's other keys are tried after the file: success.
    target.identities_only = false;
    SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn identity_file_held_by_the_agent_is_used_through_the_agent() {
    let sshd = Sshd::start();
    // The private key is only in the agent; the identity file on disk is just the .pub.
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let only_pub = sshd.dir.join("only_pub");
    std::fs::copy(
        sshd.dir.join("client_key.pub"),
        sshd.dir.join("only_pub.pub"),
    )
    .unwrap();
    let mut target = sshd.target();
    target.agent_socket = Some(agent.sock.clone());
    target.identity_files = vec![only_pub];
    target.identities_only = true;
    let mut t = SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.exec("echo via-agent", b"", None, LONG).unwrap().stdout,
        b"via-agent\n"
    );
}

// ---------------------------------------------------------------------------------------
// Retries.

#[test]
fn refused_then_up_is_retried_with_backoff() {
    let mut sshd = Sshd::start();
    let mut target = sshd.target();
    sshd.stop();
    // Nothing listens: refused at once, a transient failure.
    let t0 = Instant::now();
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(t0.elapsed() < Duration::from_millis(400));

    // sshd comes back 1 s after the first attempt; retries at +0.5 s (refused) and +1.5 s.
    target.connect_retries = 3;
    let t0 = Instant::now();
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        sshd.respawn();
        sshd
    });
    let result = SshTransport::connect(&target);
    let elapsed = t0.elapsed();
    let sshd = back.join().unwrap();
    let mut t = result.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(
        t.exec("echo back", b"", None, LONG).unwrap().stdout,
        b"back\n"
    );
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // Still refusing after every retry: the error says how many attempts were made.
    let mut t2 = target.clone();
    t2.port = {
        let l = std::net::TcpListener::bind((sshd.addr.as_str(), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    t2.connect_retries = 2;
    t2.retry_backoff = Duration::from_millis(50);
    let t0 = Instant::now();
    let err = SshTransport::connect(&t2).unwrap_err();
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[test]
fn auth_and_host_key_failures_are_not_retried() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/stranger"));
    let mut target = sshd.target();
    target.connect_retries = 3;
    target.identity_files = vec![sshd.dir.join("stranger")];
    let t0 = Instant::now();
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(
        t0.elapsed() < Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );

    let empty = sshd.dir.join("empty_kh");
    std::fs::write(&empty, "").unwrap();
    let mut target = sshd.target_with(empty);
    target.connect_retries = 3;
    let t0 = Instant::now();
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn strict_no_still_refuses_a_changed_key_and_says_so() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/impostor"));
    let kh = sshd.dir.join("changed_kh");
    std::fs::write(&kh, sshd.known_line(&sshd.dir.join("impostor.pub"))).unwrap();
    let mut target = sshd.target_with(kh);
    target.host_key_policy = HostKeyPolicy::No;
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(
        matches!(err, TransportError::ChangedHostKey { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("StrictHostKeyChecking=no"),
        "{err}"
    );
    // An unknown key is accepted and recorded under `no`.
    let kh = sshd.dir.join("new_kh");
    let mut target = sshd.target_with(kh.clone());
    target.host_key_policy = HostKeyPolicy::No;
    SshTransport::connect(&target).unwrap();
    assert!(std::fs::read_to_string(&kh)
        .unwrap()
        .contains("ssh-ed25519"));
}

#[test]
fn revoked_key_refused_even_when_also_listed_as_known() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("revoked_hashed");
    let line = sshd.known_line(&sshd.host_pub());
    let key = line.split_once(' ').unwrap().1.to_string();
    std::fs::write(&kh, &line).unwrap();
    sh(&format!("ssh-keygen -H -f {} 2>/dev/null", kh.display()));
    let mut text = std::fs::read_to_string(&kh).unwrap();
    text.push_str(&format!("@revoked {} {key}", sshd.addr));
    std::fs::write(&kh, text).unwrap();
    let err = SshTransport::connect(&sshd.target_with(kh)).unwrap_err();
    assert!(
        matches!(err, TransportError::RevokedHostKey { .. }),
        "{err}"
    );
}

#[test]
fn cert_authority_line_for_the_host_is_not_taken_as_its_key() {
    let sshd = Sshd::start();
    // A @cert-authority line naming exactly this host with the host's own key must not be
    // read as a plain known key (it only vouches for certificates, which we do not use).
    let kh = sshd.dir.join("ca_kh");
    let line = sshd.known_line(&sshd.host_pub());
    std::fs::write(&kh, format!("@cert-authority {line}")).unwrap();
    let err = SshTransport::connect(&sshd.target_with(kh)).unwrap_err();
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
}

#[test]
fn several_key_types_for_one_host_in_known_hosts() {
    let sshd = Sshd::start_opts(SshdOpts {
        rsa_host_key: true,
        ..Default::default()
    });
    // Both types known, RSA first in the file: either negotiated key matches.
    let kh = sshd.dir.join("both_kh");
    std::fs::write(
        &kh,
        format!(
            "{}{}",
            sshd.known_line(&sshd.dir.join("host_rsa.pub")),
            sshd.known_line(&sshd.host_pub())
        ),
    )
    .unwrap();
    let mut t = SshTransport::connect(&sshd.target_with(kh)).unwrap();
    assert_eq!(t.exec("echo k", b"", None, LONG).unwrap().stdout, b"k\n");
    // Port 22-style bare entry does not match a non-22 port: unknown, not changed.
    let kh = sshd.dir.join("bare_kh");
    let line = sshd.known_line(&sshd.host_pub());
    let key = line.split_once(' ').unwrap().1.to_string();
    std::fs::write(&kh, format!("{} {key}", sshd.addr)).unwrap();
    let err = SshTransport::connect(&sshd.target_with(kh)).unwrap_err();
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Jump hosts through network namespaces.

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// The topology (all addresses inside namespaces this test creates; nothing leaves the
/// machine):
///
/// ```text
///  root ns (this test)          ns <b>: bastion                 ns <t>: targets
///  veth r 198.18.N.1/30 ─────── veth b0 198.18.N.2/30
///                               veth b1 198.19.N.1/30 ───────── veth t0 198.19.N.2/30
///                               sshd jump1 198.18.N.2:22        sshd target1 198.19.N.2:2201
///                                                               sshd target2 198.19.N.2:2202
///                                                               sshd jump2   198.19.N.2:2203
///                                                               sshd inner   127.0.0.1:2204
/// ```
///
/// The root namespace has no route to 198.19.N.0/30 and the bastion namespace does not
/// forward (net.ipv4.ip_forward is 0 in a new namespace), so only jump1 reaches the
/// targets, and only jump2 reaches `inner` (on the target namespace's own loopback).
struct Net {
    b: String,
    t: String,
    root_veth: String,
    n: u32,
}

impl Net {
    fn up() -> Option<Net> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: network namespaces need root");
            return None;
        }
        let n = (std::process::id() % 50) * 5 + NEXT_NET.fetch_add(1, Ordering::SeqCst) % 5 + 1;
        let id = format!("{}-{n}", std::process::id() % 100000);
        let net = Net {
            b: format!("bsb{id}"),
            t: format!("bst{id}"),
            root_veth: format!("bsr{n}"),
            n,
        };
        let (b, t, r) = (&net.b, &net.t, &net.root_veth);
        let _ = Command::new("ip").args(["link", "del", r]).output();
        sh(&format!(
            "set -e; ip netns add {b}; ip netns add {t}; \
             ip link add {r} type veth peer name b0 netns {b}; \
             ip addr add 198.18.{n}.1/30 dev {r}; ip link set {r} up; \
             ip -n {b} addr add 198.18.{n}.2/30 dev b0; ip -n {b} link set b0 up; \
             ip -n {b} link set lo up; \
             ip -n {b} link add b1 type veth peer name t0 netns {t}; \
             ip -n {b} addr add 198.19.{n}.1/30 dev b1; ip -n {b} link set b1 up; \
             ip -n {t} addr add 198.19.{n}.2/30 dev t0; ip -n {t} link set t0 up; \
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
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.t]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_veth])
            .output();
    }
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
    let Some(net) = Net::up() else { return };
    let n = net.n;
    let jump1 = net.sshd(&net.b.clone(), &format!("198.18.{n}.2"), 22);
    let target1 = net.sshd(&net.t.clone(), &format!("198.19.{n}.2"), 2201);
    let target2 = net.sshd(&net.t.clone(), &format!("198.19.{n}.2"), 2202);
    let kh = jump1.dir.join("fleet_known_hosts");
    let bastion = hop("bastion", &jump1, &kh);
    let mut t1 = hop("target1", &target1, &kh);
    let mut t2 = hop("target2", &target2, &kh);

    // Direct: no route from here.
    let mut direct = t1.clone();
    direct.connect_timeout = Duration::from_secs(1);
    assert!(SshTransport::connect(&direct).is_err());

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
    let b2 = hop("bastion", &jump1, &kh_bastion_only);
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
    let Some(net) = Net::up() else { return };
    let n = net.n;
    let jump1 = net.sshd(&net.b.clone(), &format!("198.18.{n}.2"), 22);
    let jump2 = net.sshd(&net.t.clone(), &format!("198.19.{n}.2"), 2203);
    let inner = net.sshd(&net.t.clone(), "127.0.0.1", 2204);
    let kh = jump1.dir.join("chain_kh");
    let mut target = hop("inner", &inner, &kh);
    target.jump = vec![hop("jump1", &jump1, &kh), hop("jump2", &jump2, &kh)];
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

// ---------------------------------------------------------------------------------------
// become with a password: a user and a sudoers rule that exist only in a private /etc.

/// An sshd in its own mount namespace whose /etc/passwd, /etc/shadow, /etc/group and
/// /etc/sudoers.d are bind-mounted temp files: users `bsctlpw` (sudo with password
/// `s3cret-pw!`) and `bsctlnp` (NOPASSWD) exist only there.
fn sudo_sshd(login: &str) -> Option<Sshd> {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/sudo").exists() {
        eprintln!("skipping: needs root and sudo (scripts/setup installs it)");
        return None;
    }
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let etc = std::env::temp_dir().join(format!("bsctl-etc-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&etc);
    std::fs::create_dir_all(etc.join("sudoers.d")).unwrap();
    let hash = sh("perl -e 'print crypt(q{s3cret-pw!}, q{$6$bsctlsalt$})'");
    assert!(hash.starts_with("$6$"), "{hash}");
    let e = etc.display();
    let home = std::env::temp_dir();
    sh(&format!(
        "cp /etc/passwd {e}/passwd && cp /etc/shadow {e}/shadow && cp /etc/group {e}/group && \
         echo 'bsctlpw:x:4701:4701::{h}:/bin/sh' >> {e}/passwd && \
         echo 'bsctlnp:x:4702:4702::{h}:/bin/sh' >> {e}/passwd && \
         echo 'bsctlpw:x:4701:' >> {e}/group && echo 'bsctlnp:x:4702:' >> {e}/group && \
         chmod 0640 {e}/shadow",
        h = home.display()
    ));
    let mut shadow = std::fs::read_to_string(etc.join("shadow")).unwrap();
    shadow.push_str(&format!("bsctlpw:{hash}:19000:0:99999:7:::\n"));
    shadow.push_str(&format!("bsctlnp:{hash}:19000:0:99999:7:::\n"));
    std::fs::write(etc.join("shadow"), shadow).unwrap();
    std::fs::write(
        etc.join("sudoers.d/bsctl"),
        "Defaults:bsctlpw lecture=never\nbsctlpw ALL=(ALL:ALL) ALL\nbsctlnp ALL=(ALL:ALL) NOPASSWD: ALL\n",
    )
    .unwrap();
    sh(&format!("chmod 0440 {e}/sudoers.d/bsctl"));
    let script = format!(
        "mount --bind {e}/passwd /etc/passwd && mount --bind {e}/shadow /etc/shadow && \
         mount --bind {e}/group /etc/group && mount --bind {e}/sudoers.d /etc/sudoers.d && \
         exec \"$@\""
    );
    let sshd = Sshd::start_opts(SshdOpts {
        wrapper: vec![
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
            "sh".into(),
        ],
        user: Some(login.into()),
        ..Default::default()
    });
    // The users' keys: the fixture's client key. /etc stays untouched outside.
    assert!(!std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("bsctlpw"));
    Some(sshd)
}

const SUDO_PW: &str = "s3cret-pw!";

#[test]
fn become_with_password_feeds_sudo_and_keeps_stdin() {
    let Some(sshd) = sudo_sshd("bsctlpw") else {
        return;
    };
    let root = Become { user: None };
    // Without a password: sudo -n refuses.
    let mut t = sshd.connect();
    assert_eq!(
        t.exec("id -un", b"", None, LONG).unwrap().stdout,
        b"bsctlpw\n"
    );
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert!(!out.success(), "{}", out.stdout_lossy());
    assert!(
        out.stderr_lossy().contains("password"),
        "{}",
        out.stderr_lossy()
    );

    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new(SUDO_PW));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert_eq!(out.stdout, b"0\n", "{}", out.stderr_lossy());
    // The command's own stdin arrives intact, without the password line.
    let out = t
        .exec("cat; id -un", b"line one\nline two\n", Some(&root), LONG)
        .unwrap();
    assert_eq!(
        out.stdout,
        b"line one\nline two\nroot\n",
        "{}",
        out.stderr_lossy()
    );
    // Not on any command line while it runs, not in any output.
    let out = t
        .exec(
            "ps -eo args; cat /proc/self/cmdline",
            b"",
            Some(&root),
            LONG,
        )
        .unwrap();
    assert!(!out.stdout_lossy().contains(SUDO_PW));
    assert!(!out.stderr_lossy().contains(SUDO_PW));
    // become_user other than root.
    let out = t
        .exec(
            "id -un",
            b"",
            Some(&Become {
                user: Some("bsctlnp".into()),
            }),
            LONG,
        )
        .unwrap();
    assert_eq!(out.stdout, b"bsctlnp\n", "{}", out.stderr_lossy());
    // No become: the password is not fed to anything.
    assert_eq!(t.exec("cat", b"in\n", None, LONG).unwrap().stdout, b"in\n");

    // A wrong password fails the command, and shows no password.
    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new("wrong-password"));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert!(!out.success());
    assert!(!out.stdout_lossy().contains("wrong-password"));
    assert!(!out.stderr_lossy().contains("wrong-password"));
}

#[test]
fn become_password_with_nopasswd_rule_does_not_leak_into_stdin() {
    let Some(sshd) = sudo_sshd("bsctlnp") else {
        return;
    };
    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new(SUDO_PW));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t
        .exec(
            "cat; id -u",
            b"payload\n",
            Some(&Become { user: None }),
            LONG,
        )
        .unwrap();
    assert_eq!(out.stdout, b"payload\n0\n", "{}", out.stderr_lossy());
}

#[test]
fn become_password_debug_is_redacted() {
    let p = BecomePassword::new("hunter2-secret");
    assert!(!format!("{p:?}").contains("hunter2"));
    let target = SshTarget {
        become_password: Some(p),
        ..Default::default()
    };
    assert!(!format!("{target:?}").contains("hunter2"));
}
