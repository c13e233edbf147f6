//! Tests for the SSH transport against a real `/usr/sbin/sshd` started per test.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A private sshd on 127.0.0.x:port with its own host key(s), client key and authorized_keys.
struct Sshd {
    dir: PathBuf,
    child: Child,
    addr: String,
    port: u16,
    user: String,
    client_key: PathBuf,
    argv: Vec<String>,
}

/// How to start a fixture sshd (defaults: root namespace, a fresh 127.0.0.x address and port).
#[derive(Default)]
struct SshdOpts {
    rsa_host_key: bool,
    /// Listen here instead of a fresh 127.0.0.x:port.
    listen: Option<(String, u16)>,
    /// Run inside this network namespace (`ip netns exec`).
    netns: Option<String>,
    /// Command prefix that ends by exec'ing its arguments (e.g. a mount-namespace wrapper).
    wrapper: Vec<String>,
    /// Extra sshd_config lines.
    extra_cfg: String,
    /// Login user the fixture's target uses (default: whoever runs the tests).
    user: Option<String>,
}

impl Sshd {
    fn start() -> Sshd {
        Self::start_with(false)
    }

    fn start_with(rsa_host_key: bool) -> Sshd {
        Self::start_opts(SshdOpts {
            rsa_host_key,
            ..Default::default()
        })
    }

    fn start_opts(o: SshdOpts) -> Sshd {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("bootstrapctl-sshd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let d = dir.display();
        sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -C host -f {d}/host_key && \
             ssh-keygen -q -t ed25519 -N '' -C client -f {d}/client_key && \
             cp {d}/client_key.pub {d}/authorized_keys"
        ));
        let mut host_keys = format!("HostKey {d}/host_key\n");
        if o.rsa_host_key {
            sh(&format!(
                "ssh-keygen -q -t rsa -b 2048 -N '' -C host -f {d}/host_rsa"
            ));
            host_keys.push_str(&format!("HostKey {d}/host_rsa\n"));
        }
        let (addr, port) = match o.listen {
            Some(l) => l,
            None => {
                // A distinct loopback address per fixture keeps parallel tests apart.
                let addr = format!("127.0.0.{}", 2 + (std::process::id() + n * 7) % 250);
                let port = std::net::TcpListener::bind((addr.as_str(), 0))
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                (addr, port)
            }
        };
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress {addr}:{port}\n{host_keys}AuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel INFO\n\
                 MaxStartups 100\n{}",
                o.extra_cfg
            ),
        )
        .unwrap();
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &o.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(String::from));
        }
        argv.extend(o.wrapper.iter().cloned());
        argv.extend(["/usr/sbin/sshd", "-D", "-e", "-f"].map(String::from));
        argv.push(cfg.display().to_string());
        let child = Self::spawn(&dir, &argv);
        let user = o.user.unwrap_or_else(|| sh("id -un").trim().to_string());
        let mut s = Sshd {
            client_key: dir.join("client_key"),
            dir,
            child,
            addr,
            port,
            user,
            argv,
        };
        s.wait_listening();
        s
    }

    fn spawn(dir: &Path, argv: &[String]) -> Child {
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sshd")
    }

    /// Stop the sshd (its port then refuses connections).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again with the same keys, address and port.
    fn respawn(&mut self) {
        self.child = Self::spawn(&self.dir, &self.argv);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let s = self;
        let t0 = Instant::now();
        loop {
            if s.log().contains("Server listening on") {
                break;
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("sshd exited {st}: {}", s.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    fn host_pub(&self) -> PathBuf {
        self.dir.join("host_key.pub")
    }

    /// `[addr]:port <type> <base64>` for the given public key file.
    fn known_line(&self, pub_file: &Path) -> String {
        let text = std::fs::read_to_string(pub_file).unwrap();
        let mut f = text.split_whitespace();
        let (t, k) = (f.next().unwrap(), f.next().unwrap());
        format!(
            "{} {t} {k}\n",
            known_hosts::host_pattern(&self.addr, self.port)
        )
    }

    /// A target whose known_hosts already trusts the ed25519 host key.
    fn target(&self) -> SshTarget {
        let kh = self.dir.join("known_hosts");
        if !kh.exists() {
            std::fs::write(&kh, self.known_line(&self.host_pub())).unwrap();
        }
        self.target_with(kh)
    }

    fn target_with(&self, known_hosts: PathBuf) -> SshTarget {
        SshTarget {
            host: "node1".into(),
            address: self.addr.clone(),
            port: self.port,
            user: self.user.clone(),
            identity_files: vec![self.client_key.clone()],
            known_hosts,
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        }
    }

    fn connect(&self) -> SshTransport {
        SshTransport::connect(&self.target())
            .unwrap_or_else(|e| panic!("connect: {e}\nsshd log: {}", self.log()))
    }
}

#[path = "ssh7_tests.rs"]
mod issue7;

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LONG: Duration = Duration::from_secs(30);

fn keygen_fingerprint(pub_file: &Path) -> String {
    sh(&format!("ssh-keygen -lf {}", pub_file.display()))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn exec_echo_and_stdin_round_trip() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    let out = t
        .exec("echo hello; echo oops >&2", b"", None, LONG)
        .unwrap();
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status, 0);
    let out = t.exec("cat", b"some input\n", None, LONG).unwrap();
    assert_eq!(out.stdout, b"some input\n");
    assert_eq!(t.round_trips(), 2);
}

#[test]
fn one_mib_stdin_stdout_stderr_without_deadlock() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    let stdin: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // 1 MiB of stderr is produced before stdin is read at all, then stdin is echoed: the
    // client must drain stderr while its stdin writes are blocked, and read stdout while
    // still writing.
    let t0 = Instant::now();
    let out = t
        .exec(
            "head -c 1048576 /dev/zero | tr '\\0' E >&2; cat",
            &stdin,
            None,
            LONG,
        )
        .unwrap();
    eprintln!("3 MiB exchange took {:?}", t0.elapsed());
    assert_eq!(out.status, 0);
    assert_eq!(out.stderr.len(), 1024 * 1024);
    assert!(out.stderr.iter().all(|&b| b == b'E'));
    assert_eq!(out.stdout.len(), stdin.len());
    assert!(out.stdout == stdin);
    // Command that ignores its (large) stdin and exits: must not hang.
    let out = t.exec("echo done", &stdin, None, LONG).unwrap();
    assert_eq!(out.stdout, b"done\n");
}

#[test]
fn exit_status_and_signals() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    assert_eq!(t.exec("exit 7", b"", None, LONG).unwrap().status, 7);
    assert_eq!(t.exec("false", b"", None, LONG).unwrap().status, 1);
    assert_eq!(t.exec("true", b"", None, LONG).unwrap().status, 0);
    let killed = t.exec("kill -9 $$", b"", None, LONG).unwrap();
    assert_ne!(killed.status, 0);
    assert!(!killed.success());
}

#[test]
fn command_timeout_then_session_still_usable() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    let t0 = Instant::now();
    let err = t
        .exec("sleep 10", b"", None, Duration::from_millis(500))
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let out = t.exec("echo still here", b"", None, LONG).unwrap();
    assert_eq!(out.stdout, b"still here\n");
}

#[test]
fn hundreds_of_execs_on_one_session() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    for i in 0..200 {
        let out = t.exec(&format!("echo {i}"), b"", None, LONG).unwrap();
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    assert_eq!(t.round_trips(), 200);
}

#[test]
fn unknown_host_key_refused_with_fingerprint() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("empty_known_hosts");
    std::fs::write(&kh, "").unwrap();
    let err = SshTransport::connect(&sshd.target_with(kh.clone())).unwrap_err();
    let expected = keygen_fingerprint(&sshd.host_pub());
    match &err {
        TransportError::UnknownHostKey {
            host, fingerprint, ..
        } => {
            assert_eq!(host, "node1");
            assert_eq!(fingerprint, &expected);
        }
        other => panic!("expected UnknownHostKey, got {other}"),
    }
    assert!(err.to_string().contains(&expected));
    assert!(err.to_string().contains("node1"));
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "");
}

#[test]
fn accept_new_records_key_then_strict_connect_works() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("sub/dir/known_hosts");
    let mut target = sshd.target_with(kh.clone());
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let mut t = SshTransport::connect(&target).unwrap();
    assert_eq!(t.exec("echo x", b"", None, LONG).unwrap().stdout, b"x\n");
    drop(t);
    let text = std::fs::read_to_string(&kh).unwrap();
    let pubkey = std::fs::read_to_string(sshd.host_pub()).unwrap();
    let b64 = pubkey.split_whitespace().nth(1).unwrap();
    assert_eq!(
        text,
        format!("[{}]:{} ssh-ed25519 {b64}\n", sshd.addr, sshd.port)
    );
    let mode = std::fs::metadata(&kh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // OpenSSH agrees with what we wrote.
    sh(&format!(
        "ssh-keygen -F '[{}]:{}' -f {} | grep -q ssh-ed25519",
        sshd.addr,
        sshd.port,
        kh.display()
    ));
    target.host_key_policy = HostKeyPolicy::Strict;
    let mut t = SshTransport::connect(&target).unwrap();
    assert_eq!(t.exec("echo y", b"", None, LONG).unwrap().stdout, b"y\n");
    // Nothing appended a second time.
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), text);
}

#[test]
fn accept_new_appends_after_existing_line_without_newline() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("known_hosts_nonl");
    std::fs::write(
        &kh,
        "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKQy",
    )
    .unwrap();
    let mut target = sshd.target_with(kh.clone());
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    SshTransport::connect(&target).unwrap();
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .starts_with(&format!("[{}]:", sshd.addr)));
}

#[test]
fn concurrent_accept_new_does_not_corrupt_file() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("concurrent_known_hosts");
    let mut target = sshd.target_with(kh.clone());
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || SshTransport::connect(&target).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let text = std::fs::read_to_string(&kh).unwrap();
    let expected = sshd.known_line(&sshd.host_pub());
    assert!(!text.is_empty());
    for line in text.split_inclusive('\n') {
        assert_eq!(line, expected);
    }
}

#[test]
fn changed_host_key_refused_even_with_accept_new() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/impostor"));
    let kh = sshd.dir.join("changed_known_hosts");
    let original = sshd.known_line(&sshd.dir.join("impostor.pub"));
    std::fs::write(&kh, &original).unwrap();
    let mut target = sshd.target_with(kh.clone());
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let err = SshTransport::connect(&target).unwrap_err();
    match &err {
        TransportError::ChangedHostKey {
            host, fingerprint, ..
        } => {
            assert_eq!(host, "node1");
            assert_eq!(fingerprint, &keygen_fingerprint(&sshd.host_pub()));
        }
        other => panic!("expected ChangedHostKey, got {other}"),
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), original);
}

#[test]
fn revoked_host_key_refused() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("revoked_known_hosts");
    let line = sshd.known_line(&sshd.host_pub());
    let key = line.split_once(' ').unwrap().1;
    std::fs::write(&kh, format!("{line}@revoked * {key}")).unwrap();
    let err = SshTransport::connect(&sshd.target_with(kh)).unwrap_err();
    assert!(
        matches!(err, TransportError::RevokedHostKey { .. }),
        "{err}"
    );
}

#[test]
fn hashed_and_bracketed_entries_accepted() {
    let sshd = Sshd::start();
    // Bracketed [addr]:port entry, plus noise lines libssh2 alone would choke on.
    let kh = sshd.dir.join("bracket_known_hosts");
    std::fs::write(
        &kh,
        format!(
            "# comment\n\n@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKQy\n\
             garbage line\n{}",
            sshd.known_line(&sshd.host_pub())
        ),
    )
    .unwrap();
    SshTransport::connect(&sshd.target_with(kh)).unwrap();

    // Hashed with ssh-keygen -H.
    let kh = sshd.dir.join("hashed_known_hosts");
    std::fs::write(
        &kh,
        format!(
            "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKQyhostx\n{}",
            sshd.known_line(&sshd.host_pub())
        ),
    )
    .unwrap();
    sh(&format!("ssh-keygen -H -f {} 2>/dev/null", kh.display()));
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    assert!(!text.contains("127.0.0."), "{text}");
    let mut t = SshTransport::connect(&sshd.target_with(kh)).unwrap();
    assert_eq!(t.exec("echo h", b"", None, LONG).unwrap().stdout, b"h\n");
}

#[test]
fn known_rsa_key_is_preferred_over_unknown_ed25519() {
    let sshd = Sshd::start_with(true);
    // Only the RSA host key is known: we must negotiate RSA rather than report a change.
    let kh = sshd.dir.join("rsa_known_hosts");
    std::fs::write(&kh, sshd.known_line(&sshd.dir.join("host_rsa.pub"))).unwrap();
    let mut t = SshTransport::connect(&sshd.target_with(kh)).unwrap();
    assert_eq!(t.exec("echo r", b"", None, LONG).unwrap().stdout, b"r\n");
}

#[test]
fn missing_identity_file_is_auth_error_naming_file() {
    let sshd = Sshd::start();
    let mut target = sshd.target();
    target.identity_files = vec![PathBuf::from("/nonexistent/id_test")];
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("private key file /nonexistent/id_test not found"),
        "{msg}"
    );
}

#[test]
fn wrong_key_reports_tried_method() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/stranger"));
    let mut target = sshd.target();
    target.identity_files = vec![sshd.dir.join("stranger")];
    let err = SshTransport::connect(&target).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Auth { .. }), "{msg}");
    assert!(msg.contains("stranger"), "{msg}");
}

#[test]
fn connection_refused_is_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = SshTarget {
        host: "ghost".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        known_hosts: PathBuf::from("/nonexistent/known_hosts"),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.is_unreachable());
    assert!(err.to_string().contains("ghost"), "{err}");
}

#[test]
fn handshake_timeout_on_silent_server() {
    // Accepts TCP but never speaks SSH.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = SshTarget {
        host: "mute".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        known_hosts: PathBuf::from("/nonexistent/known_hosts"),
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let t0 = Instant::now();
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    drop(listener);
}

#[test]
fn become_wrapping() {
    let root = Become { user: None };
    let alice = Become {
        user: Some("alice".into()),
    };
    assert_eq!(wrap_for_user("root", "id -u", Some(&root)), "id -u");
    assert_eq!(wrap_for_user("root", "id -u", None), "id -u");
    assert_eq!(
        wrap_for_user("deploy", "id -u", Some(&root)),
        "sudo -n -H -u root -- sh -c 'id -u'"
    );
    assert_eq!(
        wrap_for_user("root", "echo 'x'", Some(&alice)),
        "sudo -n -H -u alice -- sh -c 'echo '\\''x'\\'''"
    );
    assert_eq!(wrap_for_user("deploy", "ls", None), "ls");
}

#[test]
fn become_root_as_root_runs_directly() {
    let sshd = Sshd::start();
    if sshd.user != "root" {
        return;
    }
    let mut t = sshd.connect();
    // Would fail with "sudo: not found" / a password prompt if it were wrapped.
    let out = t
        .exec("id -u", b"", Some(&Become { user: None }), LONG)
        .unwrap();
    assert_eq!(out.stdout, b"0\n");
}

#[test]
fn socket_has_tcp_nodelay() {
    let sshd = Sshd::start();
    let t = sshd.connect();
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            t.raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &mut val as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    assert_ne!(val, 0, "TCP_NODELAY not set");
}

#[test]
fn fingerprint_matches_ssh_keygen() {
    let sshd = Sshd::start();
    let text = std::fs::read_to_string(sshd.host_pub()).unwrap();
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().nth(1).unwrap())
        .unwrap();
    assert_eq!(
        fingerprint_sha256(&blob),
        keygen_fingerprint(&sshd.host_pub())
    );
}

#[test]
fn timing_loopback() {
    let sshd = Sshd::start();
    let target = sshd.target();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut connects = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let t = SshTransport::connect(&target).unwrap();
        connects.push(t0.elapsed());
        drop(t);
    }
    let mut t = SshTransport::connect(&target).unwrap();
    let mut execs = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let out = t.exec("true", b"", None, LONG).unwrap();
        execs.push(t0.elapsed());
        assert!(out.success());
    }
    println!(
        "TIMING loopback: connect+handshake+auth median {:?}; exec round trip median {:?}",
        median(connects),
        median(execs)
    );
}
