//! "From a laptop": only an ssh_config file says how to reach the fleet — a bastion, the
//! keys, the user, the known_hosts — and the inventory just names the hosts.
//!
//! Topology (namespaces and addresses this test creates; nothing leaves the machine):
//!
//! ```text
//!  root ns (bootstrapctl)        ns B: bastion                    ns T: the fleet
//!  veth 198.18.N.1/30 ───────── veth b0 198.18.N.2/30
//!                               veth b1 198.19.N.1/30 ─────────── veth t0 198.19.N.2/30
//!                               sshd bastion 198.18.N.2:22        sshd node-1 :2201, node-2 :2202
//! ```
//!
//! The root namespace has no route to 198.19.N.0/30 and ns B does not forward, so the
//! nodes are reachable only through the bastion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tempdir;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Fleet {
    dir: PathBuf,
    sshds: Vec<Child>,
    ns: [String; 2],
    veth: String,
    n: u32,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.sshds {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fleet {
    fn up() -> Option<Fleet> {
        if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/sshd").exists() {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run the ssh tests: need root and /usr/sbin/sshd");
            }
            eprintln!("skipping: needs root and /usr/sbin/sshd");
            return None;
        }
        // 251..=254 never collide with the unit tests' range (1..=250).
        let n = 251 + std::process::id() % 4;
        let dir = tempdir("laptop");
        let ns = [format!("bslb{n}"), format!("bslt{n}")];
        let veth = format!("bslr{n}");
        for x in &ns {
            let _ = Command::new("ip").args(["netns", "del", x]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        let mut fleet = Fleet {
            dir: dir.clone(),
            sshds: Vec::new(),
            ns: ns.clone(),
            veth: veth.clone(),
            n,
        };
        let (b, t) = (&ns[0], &ns[1]);
        sh(&format!(
            "set -e; ip netns add {b}; ip netns add {t}; \
             ip link add {veth} type veth peer name b0 netns {b}; \
             ip addr add 198.18.{n}.1/30 dev {veth}; ip link set {veth} up; \
             ip -n {b} addr add 198.18.{n}.2/30 dev b0; ip -n {b} link set b0 up; \
             ip -n {b} link set lo up; \
             ip -n {b} link add b1 type veth peer name t0 netns {t}; \
             ip -n {b} addr add 198.19.{n}.1/30 dev b1; ip -n {b} link set b1 up; \
             ip -n {t} addr add 198.19.{n}.2/30 dev t0; ip -n {t} link set t0 up"
        ));
        let d = dir.display();
        // Keys: one for the bastion, one for the fleet; each sshd trusts only its own.
        sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {d}/id_bastion && \
             ssh-keygen -q -t ed25519 -N '' -f {d}/id_fleet"
        ));
        let mut kh = String::new();
        for (name, ns, addr, port, key) in [
            ("bastion", b, format!("198.18.{n}.2"), 22u16, "id_bastion"),
            ("node-1", t, format!("198.19.{n}.2"), 2201, "id_fleet"),
            ("node-2", t, format!("198.19.{n}.2"), 2202, "id_fleet"),
        ] {
            sh(&format!(
                "ssh-keygen -q -t ed25519 -N '' -f {d}/{name}_host && cp {d}/{key}.pub {d}/{name}_auth"
            ));
            std::fs::write(
                dir.join(format!("{name}_sshd_config")),
                format!(
                    "ListenAddress {addr}:{port}\nHostKey {d}/{name}_host\n\
                     AuthorizedKeysFile {d}/{name}_auth\nPidFile none\nStrictModes no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nLogLevel INFO\n"
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
            fleet.sshds.push(
                Command::new("ip")
                    .args(["netns", "exec", ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
                    .arg(dir.join(format!("{name}_sshd_config")))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            );
            let hostkey = std::fs::read_to_string(dir.join(format!("{name}_host.pub"))).unwrap();
            let hostkey: Vec<&str> = hostkey.split_whitespace().take(2).collect();
            let pattern = if port == 22 {
                addr.clone()
            } else {
                format!("[{addr}]:{port}")
            };
            kh.push_str(&format!("{pattern} {}\n", hostkey.join(" ")));
        }
        std::fs::write(dir.join("known_hosts"), kh).unwrap();
        sh(&format!("ssh-keygen -H -f {d}/known_hosts 2>/dev/null"));
        let t0 = Instant::now();
        for name in ["bastion", "node-1", "node-2"] {
            while !std::fs::read_to_string(dir.join(format!("{name}.log")))
                .unwrap_or_default()
                .contains("Server listening")
            {
                assert!(t0.elapsed() < Duration::from_secs(10), "{name} sshd");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(fleet)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> crate::support::Run {
    let mut c = crate::support::command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    // No controlling terminal (as in CI), so --ask-become-pass can never block on a prompt.
    use std::os::unix::process::CommandExt;
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn only_ssh_config_describes_the_fleet() {
    let Some(fleet) = Fleet::up() else { return };
    let d = fleet.dir.display();
    let n = fleet.n;
    // Include (relative to ~/.ssh, so here an absolute glob), Host patterns, first value wins.
    std::fs::create_dir_all(fleet.dir.join("config.d")).unwrap();
    std::fs::write(
        fleet.dir.join("config.d/nodes.conf"),
        format!(
            "Host node-1\n  HostName 198.19.{n}.2\n  Port 2201\n\
             Host node-2\n  HostName 198.19.{n}.2\n  Port 2202\n"
        ),
    )
    .unwrap();
    let config = fleet.dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Include {d}/config.d/*.conf\n\
             Host bastion\n  HostName 198.18.{n}.2\n  User root\n  IdentityFile {d}/id_bastion\n\
               IdentitiesOnly yes\n\
             Host node-* !node-9\n  ProxyJump bastion\n  User root\n  IdentityFile %d/unused-%r\n\
               IdentityFile {d}/id_fleet\n  IdentitiesOnly yes\n  ConnectTimeout 5\n\
             Host *\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  User nobody\n"
        ),
    )
    .unwrap();
    let inv = fleet.dir.join("inventory.yaml");
    std::fs::write(&inv, "all:\n  hosts:\n    node-1:\n    node-2:\n").unwrap();
    let pb = fleet.dir.join("site.yaml");
    std::fs::write(
        &pb,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: where am I\n      \
         command: cat /proc/sys/kernel/hostname\n",
    )
    .unwrap();
    let out = fleet.dir.join("report.json");
    let (inv_s, pb_s, cfg_s, out_s) = (
        inv.display().to_string(),
        pb.display().to_string(),
        config.display().to_string(),
        out.display().to_string(),
    );
    let r = run_env(
        &[
            "apply",
            "-i",
            &inv_s,
            &pb_s,
            "--ssh-config",
            &cfg_s,
            "--output",
            "json",
            &out_s,
        ],
        &[],
    );
    assert_eq!(
        r.code,
        0,
        "{}\nbastion log:\n{}",
        r.all(),
        fleet.log("bastion")
    );
    let report = crate::support::json(&out);
    let hosts: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect();
    assert!(hosts.contains(&"node-1".to_string()) && hosts.contains(&"node-2".to_string()));
    // One bastion connection for the whole fleet.
    assert_eq!(
        fleet.log("bastion").matches("Accepted publickey").count(),
        1,
        "{}",
        fleet.log("bastion")
    );

    // Inventory beats ssh_config: a wrong ansible_port is used (and fails) though the
    // config gives the right one.
    std::fs::write(
        &inv,
        "all:\n  hosts:\n    node-1:\n      ansible_port: 2299\n",
    )
    .unwrap();
    let r = run_env(
        &[
            "apply",
            "-i",
            &inv_s,
            &pb_s,
            "--ssh-config",
            &cfg_s,
            "--connect-retries",
            "0",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("2299"), "{}", r.all());

    // `bastion` inventory variable naming an inventory host, no ProxyJump anywhere.
    std::fs::write(
        &inv,
        format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_common_args: -o UserKnownHostsFile={d}/known_hosts\n  \
             hosts:\n    jumpbox:\n      ansible_host: 198.18.{n}.2\n      ansible_ssh_private_key_file: {d}/id_bastion\n    \
             node-1:\n      ansible_host: 198.19.{n}.2\n      ansible_port: 2201\n      bastion: jumpbox\n      \
             ansible_ssh_private_key_file: {d}/id_fleet\n"
        ),
    )
    .unwrap();
    let r = run_env(
        &[
            "apply",
            "-i",
            &inv_s,
            &pb_s,
            "--ssh-config",
            "none",
            "--limit",
            "node-1",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());

    // `-J` in ansible_ssh_common_args, with the password of become registered as a secret.
    std::fs::write(
        &inv,
        format!(
            "all:\n  hosts:\n    node-2:\n      ansible_host: 198.19.{n}.2\n      ansible_port: 2202\n      \
             ansible_user: root\n      ansible_ssh_private_key_file: {d}/id_fleet\n      \
             ansible_ssh_common_args: -J root@198.18.{n}.2:22 -o UserKnownHostsFile={d}/known_hosts\n"
        ),
    )
    .unwrap();
    // Plain failing command whose stderr contains the become password: shown redacted.
    std::fs::write(
        &pb,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: leaky\n      \
         shell: echo hunter2-become-pw >&2; exit 3\n",
    )
    .unwrap();
    let cfg_bastion_key = fleet.dir.join("bastion_key_only");
    std::fs::write(
        &cfg_bastion_key,
        format!("Host 198.18.{n}.2\n  IdentityFile {d}/id_bastion\n"),
    )
    .unwrap();
    let cbk = cfg_bastion_key.display().to_string();
    let r = run_env(
        &["apply", "-i", &inv_s, &pb_s, "--ssh-config", &cbk],
        &[("BOOTSTRAPCTL_BECOME_PASSWORD", "hunter2-become-pw")],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.all().contains("hunter2-become-pw"), "{}", r.all());
    assert!(r.all().contains("<redacted>"), "{}", r.all());
}

#[test]
fn ask_become_pass_without_a_terminal_is_a_usage_error() {
    let r = run_env(
        &[
            "plan",
            "-i",
            "/nonexistent/inventory.yaml",
            "--ask-become-pass",
            "--ssh-config",
            "none",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.all()
            .contains("--ask-become-pass: cannot read the password from the terminal"),
        "{}",
        r.all()
    );
}

#[test]
fn explicit_ssh_config_that_does_not_exist_is_a_usage_error() {
    let r = run_env(
        &[
            "plan",
            "-i",
            "/nonexistent/inventory.yaml",
            "--ssh-config",
            "/nonexistent/ssh_config",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.all().contains("/nonexistent/ssh_config"), "{}", r.all());
}
