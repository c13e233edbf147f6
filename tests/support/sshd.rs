//! Fixtures for the transport tests: a private `/usr/sbin/sshd` per test (own host keys,
//! client key and authorized_keys, on a fresh 127.0.0.x address, optionally inside a network
//! or mount namespace) and an `ssh-agent` on a private socket; both stopped on drop, by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bootstrapctl::transport::known_hosts;
use bootstrapctl::transport::ssh::{SshTarget, SshTransport};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A number no other fixture of this test run has, for names of temp files and addresses.
pub fn next_id() -> u32 {
    NEXT.fetch_add(1, Ordering::SeqCst)
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A private sshd on 127.0.0.x:port with its own host key(s), client key and authorized_keys.
pub struct Sshd {
    pub dir: PathBuf,
    pub child: Child,
    pub addr: String,
    pub port: u16,
    pub user: String,
    pub client_key: PathBuf,
}

/// How to start a fixture sshd (defaults: root namespace, a fresh 127.0.0.x address and port).
#[derive(Default)]
pub struct SshdOpts {
    pub rsa_host_key: bool,
    /// Listen here instead of a fresh 127.0.0.x:port.
    pub listen: Option<(String, u16)>,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// Command prefix that ends by exec'ing its arguments (e.g. a mount-namespace wrapper).
    pub wrapper: Vec<String>,
    /// Extra sshd_config lines.
    pub extra_cfg: String,
    /// Login user the fixture's target uses (default: whoever runs the tests).
    pub user: Option<String>,
}

impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with(false)
    }

    pub fn start_with(rsa_host_key: bool) -> Sshd {
        Self::start_opts(SshdOpts {
            rsa_host_key,
            ..Default::default()
        })
    }

    pub fn start_opts(o: SshdOpts) -> Sshd {
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
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    pub fn host_pub(&self) -> PathBuf {
        self.dir.join("host_key.pub")
    }

    /// `[addr]:port <type> <base64>` for the given public key file.
    pub fn known_line(&self, pub_file: &Path) -> String {
        let text = std::fs::read_to_string(pub_file).unwrap();
        let mut f = text.split_whitespace();
        let (t, k) = (f.next().unwrap(), f.next().unwrap());
        format!(
            "{} {t} {k}\n",
            known_hosts::host_pattern(&self.addr, self.port)
        )
    }

    /// A target whose known_hosts already trusts the ed25519 host key.
    pub fn target(&self) -> SshTarget {
        let kh = self.dir.join("known_hosts");
        if !kh.exists() {
            std::fs::write(&kh, self.known_line(&self.host_pub())).unwrap();
        }
        self.target_with(kh)
    }

    pub fn target_with(&self, known_hosts: PathBuf) -> SshTarget {
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

    pub fn connect(&self) -> SshTransport {
        SshTransport::connect(&self.target())
            .unwrap_or_else(|e| panic!("connect: {e}\nsshd log: {}", self.log()))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Generous per-command timeout for exec calls that should return at once.
pub const LONG: Duration = Duration::from_secs(30);

/// `SHA256:...` of a public key file, as `ssh-keygen -l` prints it.
pub fn keygen_fingerprint(pub_file: &Path) -> String {
    sh(&format!("ssh-keygen -lf {}", pub_file.display()))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// An `ssh-agent -D` on a private socket, holding the given keys; killed on drop.
pub struct Agent {
    pub child: Child,
    pub sock: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path, keys: &[&Path]) -> Agent {
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

/// A TCP listener on a fresh 127.0.0.x port that counts the connections it accepts, so a test
/// can tell how many connection attempts a client made without timing it. Each connection is
/// closed at once (the first `close_first`), forwarded to `upstream`, or, without one, held
/// open in silence (a host that accepts TCP but never speaks SSH). Stopped on drop.
pub struct CountingProxy {
    pub addr: String,
    pub port: u16,
    accepted: std::sync::Arc<AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingProxy {
    pub fn start(upstream: Option<(String, u16)>, close_first: u32) -> CountingProxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let addr = format!("127.0.0.{}", 2 + (std::process::id() + next_id() * 7) % 250);
        let listener = TcpListener::bind((addr.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("accept: {e}"),
                };
                client.set_nonblocking(false).unwrap();
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= close_first {
                    drop(client);
                    continue;
                }
                if let Some((host, p)) = &upstream {
                    let server = TcpStream::connect((host.as_str(), *p)).unwrap();
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server.try_clone().unwrap(), client.try_clone().unwrap()),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Write);
                        });
                    }
                    open.push(server);
                }
                open.push(client);
            }
            // Ends the copy threads too: each of their reads then sees the end.
            for s in open {
                let _ = s.shutdown(Shutdown::Both);
            }
        });
        CountingProxy {
            addr,
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `sshd`'s target, reached through this proxy (its host key trusted under the proxy's
    /// address, where the client sees it).
    pub fn target_for(&self, sshd: &Sshd) -> SshTarget {
        let kh = sshd.dir.join(format!("proxy_known_hosts_{}", self.port));
        let text = std::fs::read_to_string(sshd.host_pub()).unwrap();
        let mut f = text.split_whitespace();
        let (t, k) = (f.next().unwrap(), f.next().unwrap());
        std::fs::write(
            &kh,
            format!(
                "{} {t} {k}\n",
                known_hosts::host_pattern(&self.addr, self.port)
            ),
        )
        .unwrap();
        let mut target = sshd.target_with(kh);
        target.address = self.addr.clone();
        target.port = self.port;
        target
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
