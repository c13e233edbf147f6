//! The SSH transport against a real sshd per test: exec (stdin/stdout/stderr, exit status,
//! timeouts), host keys against known_hosts, connect errors and retries, become wrapping.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bootstrapctl::transport::ssh::{
    fingerprint_sha256, wrap_for_user, HostKeyPolicy, SshTarget, SshTransport,
};
use bootstrapctl::transport::{Become, Transport, TransportError};

use crate::support::sshd::{keygen_fingerprint, sh, CountingProxy, Sshd, SshdOpts, LONG};

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

/// A reader that says how far it was read: the stream must never run ahead of the channel.
struct Counting<'a> {
    data: &'a [u8],
    at: usize,
    read_ahead: std::rc::Rc<std::cell::Cell<usize>>,
}

impl std::io::Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        self.read_ahead.set(self.at);
        Ok(n)
    }
}

#[test]
fn exec_reader_streams_stdin_in_chunks_with_progress() {
    let sshd = Sshd::start();
    let mut t = sshd.connect();
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut input = Counting {
        data: &data,
        at: 0,
        read_ahead: read.clone(),
    };
    let mut reports: Vec<u64> = Vec::new();
    let mut max_ahead = 0usize;
    let out = t
        .exec_reader("wc -c", &mut input, None, LONG, &mut |sent| {
            max_ahead = max_ahead.max(read.get() - sent as usize);
            reports.push(sent)
        })
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), data.len().to_string());
    assert_eq!(reports.last(), Some(&(data.len() as u64)));
    assert!(
        reports.windows(2).all(|w| w[0] < w[1]),
        "progress only grows"
    );
    assert!(
        reports.len() > 8,
        "progress along the way: {}",
        reports.len()
    );
    // Never more than one chunk (32 KiB) read beyond what the channel took.
    assert!(max_ahead <= 32 * 1024, "read ahead {max_ahead} bytes");
    assert_eq!(t.round_trips(), 1);
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
    let (started, finished) = (sshd.dir.join("started"), sshd.dir.join("finished"));
    let err = t
        .exec(
            &format!(
                "touch {}; sleep 60; touch {}",
                started.display(),
                finished.display()
            ),
            b"",
            None,
            Duration::from_millis(500),
        )
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    // The command ran, and the call came back before it could have finished.
    assert!(started.exists());
    assert!(!finished.exists());
    let out = t.exec("echo still here", b"", None, LONG).unwrap();
    assert_eq!(out.stdout, b"still here\n");
}

#[test]
fn many_execs_on_one_session() {
    // sshd allows MaxSessions channels open at once on a connection; at 3x that, one
    // channel not closed after its exec would make a later exec fail. The count itself is
    // not the point (speed is for the benchmarks).
    const MAX_SESSIONS: u32 = 4;
    let sshd = Sshd::start_opts(SshdOpts {
        extra_cfg: format!("MaxSessions {MAX_SESSIONS}\n"),
        ..Default::default()
    });
    let mut t = sshd.connect();
    let n = 3 * MAX_SESSIONS;
    for i in 0..n {
        let out = t.exec(&format!("echo {i}"), b"", None, LONG).unwrap();
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    assert_eq!(t.round_trips(), u64::from(n));
    // Still one connection: sshd accepted one login.
    assert_eq!(sshd.log().matches("Accepted publickey").count(), 1);
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
    // Accepts TCP but never speaks SSH, and keeps the connection open: the call can only
    // come back through the connect timeout.
    let mute = CountingProxy::start(None, 0);
    let target = SshTarget {
        host: "mute".into(),
        address: mute.addr.clone(),
        port: mute.port,
        user: "root".into(),
        known_hosts: PathBuf::from("/nonexistent/known_hosts"),
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.is_unreachable(), "{err}");
    assert_eq!(mute.accepted(), 1);
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

// ---------------------------------------------------------------------------------------
// Retries.

#[test]
fn refused_is_transient_and_counted_in_the_error() {
    let mut sshd = Sshd::start();
    let target = sshd.target();
    sshd.stop();
    // Nothing listens: refused, a transient failure, tried once without retries.
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!err.to_string().contains("attempts"), "{err}");

    // Still refusing after every retry: the error says how many attempts were made.
    let mut t2 = target.clone();
    t2.port = {
        let l = std::net::TcpListener::bind((sshd.addr.as_str(), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    t2.connect_retries = 2;
    t2.retry_backoff = Duration::from_millis(50);
    let err = SshTransport::connect(&t2).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[test]
fn closed_before_banner_then_up_is_retried() {
    // The first two connections are closed before the SSH banner (a host whose sshd is not
    // up yet); the third reaches sshd. Three accepted connections and a working session
    // prove the two retries; one login proves the failed attempts sent no credentials.
    let sshd = Sshd::start();
    let proxy = CountingProxy::start(Some((sshd.addr.clone(), sshd.port)), 2);
    let mut target = proxy.target_for(&sshd);
    target.connect_retries = 3;
    target.retry_backoff = Duration::from_millis(50);
    let mut t = SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(
        t.exec("echo back", b"", None, LONG).unwrap().stdout,
        b"back\n"
    );
    assert_eq!(proxy.accepted(), 3);
    assert_eq!(sshd.log().matches("Accepted publickey").count(), 1);

    // With fewer retries than failures, the last failure is reported with the count.
    let proxy = CountingProxy::start(Some((sshd.addr.clone(), sshd.port)), 5);
    let mut target = proxy.target_for(&sshd);
    target.connect_retries = 1;
    target.retry_backoff = Duration::from_millis(50);
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
    assert_eq!(proxy.accepted(), 2);
}

#[test]
fn auth_and_host_key_failures_are_not_retried() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/stranger"));
    // Through a counting proxy: with three retries allowed, exactly one connection is made.
    let proxy = CountingProxy::start(Some((sshd.addr.clone(), sshd.port)), 0);
    let mut target = proxy.target_for(&sshd);
    target.connect_retries = 3;
    target.identity_files = vec![sshd.dir.join("stranger")];
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("attempts"), "{err}");
    assert_eq!(proxy.accepted(), 1);

    let proxy = CountingProxy::start(Some((sshd.addr.clone(), sshd.port)), 0);
    let empty = sshd.dir.join("empty_kh");
    std::fs::write(&empty, "").unwrap();
    let mut target = proxy.target_for(&sshd);
    target.known_hosts = empty;
    target.connect_retries = 3;
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(proxy.accepted(), 1);
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
