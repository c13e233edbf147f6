//! Test support: run the real binary, and a lab of real sshd hosts torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bootstrapctl")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The binary as a user who ran `cargo install` starts it: from a fresh empty directory
/// outside the checkout, so that nothing on disk beside the checkout's playbooks and templates
/// stands in for what must be embedded; and without the caller's ssh-agent.
pub fn command() -> Command {
    let mut c = Command::new(bin());
    c.current_dir(tempdir("cwd")).env_remove("SSH_AUTH_SOCK");
    c
}

fn command_in(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir).env_remove("SSH_AUTH_SOCK");
    c
}

/// Run the binary (see [`command`]) and collect its output.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let cwd = tempdir("cwd");
    let r = run_in(&cwd, args);
    let _ = std::fs::remove_dir_all(&cwd);
    r
}

/// Run the binary in `dir` (relative paths in `args` are relative to it).
pub fn run_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = command_in(dir)
        .args(args)
        .output()
        .expect("run bootstrapctl");
    collect(out)
}

fn collect(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn tempdir(tag: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_stale_tempdirs);
    let d = std::env::temp_dir().join(format!(
        "bootstrapctl-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes the temp dirs of earlier test runs whose process is gone, once per run: tests keep
/// their dirs for a look after a failure, so without this every run leaves its dirs behind. A
/// dir holding a lab (`lab.json`, kept with BSCTL_KEEP_LAB) stays until `lab down`.
fn sweep_stale_tempdirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("bootstrapctl-test-") else {
            continue;
        };
        // bootstrapctl-test-<tag>-<pid>-<nanos>; the tag may hold dashes.
        let Some(pid) = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let path = entry.path();
        let kept_lab = path.join("lab.json").exists() || path.join("lab/lab.json").exists();
        if Path::new(&format!("/proc/{pid}")).exists() || kept_lab {
            continue;
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Each lab of a test run gets its own 127.N.x.y subnet so tests can run in parallel.
static NEXT_SUBNET: AtomicU8 = AtomicU8::new(0);

/// First subnet of this test run's labs: `BSCTL_TEST_SUBNET_BASE` (default 40), so that two
/// checkouts can run their lab tests on one machine at once without sharing addresses.
pub fn subnet_base() -> u8 {
    std::env::var("BSCTL_TEST_SUBNET_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// A subnet for one lab of this run, never handed out twice in the run.
pub fn next_subnet() -> u8 {
    subnet_base() + NEXT_SUBNET.fetch_add(1, Ordering::SeqCst)
}

pub struct Lab {
    pub dir: PathBuf,
    pub hosts: Vec<(String, String)>,
    pub port: u16,
}

impl Lab {
    /// `None` when this machine cannot host a lab (not root, no sshd): the caller skips.
    pub fn up(tag: &str, workers: usize) -> Option<Lab> {
        Self::up_with(tag, 0, workers)
    }

    /// A lab with a seeded control plane `cp-1` (kube-apiserver and kube-controller-manager
    /// stand-ins running, without the bootstrap flags) and `workers` bare workers.
    pub fn cluster(tag: &str, workers: usize) -> Option<Lab> {
        Self::up_with(tag, 1, workers)
    }

    /// As `cluster`, with workers as fresh machines (`lab up --bare`): no kubelet mounted,
    /// empty /usr/local and /opt.
    pub fn bare_cluster(tag: &str, control_planes: usize, workers: usize) -> Option<Lab> {
        Self::up_with_args(tag, control_planes, workers, &["--bare".as_ref()])
    }

    fn up_with(tag: &str, control_planes: usize, workers: usize) -> Option<Lab> {
        Self::up_with_args(tag, control_planes, workers, &[])
    }

    /// A lab as `up_with` makes it, with more `lab up` arguments (`--same-product-uuid ...`,
    /// `--real-components DIR`).
    pub fn up_with_args(
        tag: &str,
        control_planes: usize,
        workers: usize,
        extra: &[&std::ffi::OsStr],
    ) -> Option<Lab> {
        if unsafe_geteuid() != 0 || !Path::new("/usr/sbin/sshd").exists() {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run the lab tests: need root and /usr/sbin/sshd");
            }
            eprintln!("skipping lab test {tag}: needs root and /usr/sbin/sshd");
            return None;
        }
        let dir = tempdir(tag).join("lab");
        let subnet = next_subnet();
        let port = 2222;
        let (w, c, p, sn) = (
            workers.to_string(),
            control_planes.to_string(),
            port.to_string(),
            subnet.to_string(),
        );
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "lab".as_ref(),
            "up".as_ref(),
            "--workers".as_ref(),
            w.as_ref(),
            "--control-planes".as_ref(),
            c.as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
            "--port".as_ref(),
            p.as_ref(),
            "--subnet".as_ref(),
            sn.as_ref(),
        ];
        args.extend_from_slice(extra);
        let r = run(args);
        assert_eq!(r.code, 0, "lab up failed: {}", r.all());
        let inv = std::fs::read_to_string(dir.join("inventory.yaml")).unwrap();
        let mut hosts = Vec::new();
        let mut name = None;
        for line in inv.lines() {
            let t = line.trim();
            if t.ends_with(':') && (t.starts_with("worker-") || t.starts_with("cp-")) {
                name = Some(t.trim_end_matches(':').to_string());
            } else if let (Some(n), Some(addr)) = (name.as_ref(), t.strip_prefix("ansible_host: "))
            {
                hosts.push((n.clone(), addr.trim().to_string()));
                name = None;
            }
        }
        assert_eq!(
            hosts.len(),
            workers + control_planes,
            "hosts in lab inventory:\n{inv}"
        );
        Some(Lab { dir, hosts, port })
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }

    /// The real kubectl on this machine against the lab's API server, as the admin.
    /// The names of the Nodes whose Ready condition is True, sorted.
    pub fn ready_nodes(&self) -> Vec<String> {
        let nodes: serde_json::Value =
            serde_json::from_str(&self.kubectl("get nodes -o json")).unwrap();
        let mut out: Vec<String> = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    }

    pub fn kubectl(&self, args: &str) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.join("admin.kubeconfig"))
            .args(shell_words_split(args))
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a shell command on a lab host over real OpenSSH.
    pub fn ssh(&self, host: &str, cmd: &str) -> String {
        let addr = &self.hosts.iter().find(|(n, _)| n == host).expect("host").1;
        let out = Command::new("ssh")
            .args(["-i"])
            .arg(self.dir.join("id_ed25519"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("root@{addr}"))
            .arg(cmd)
            .output()
            .expect("ssh");
        assert!(
            out.status.success(),
            "ssh {host} {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A digest of everything under the paths the playbooks touch, per host.
    pub fn tree_hash(&self, host: &str) -> String {
        self.ssh(
            host,
            "find /etc/kubernetes /etc/systemd/system /var/lib/kubelet /etc/containerd /etc/fstab /var/lib/bootstrapctl-lab /etc/bsctl-test \
             -exec stat -c '%n %a %U %G %s' {} \\; -type f -exec sha256sum {} \\; 2>/dev/null | sort",
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // BSCTL_KEEP_LAB=1: a failed test's lab stays up for a look (`lab down --dir` later).
        if std::env::var_os("BSCTL_KEEP_LAB").is_some() && std::thread::panicking() {
            eprintln!("kept lab {}", self.dir.display());
            return;
        }
        let r = run([
            "lab".as_ref(),
            "down".as_ref(),
            "--dir".as_ref(),
            self.dir.as_os_str(),
        ] as [&std::ffi::OsStr; 4]);
        if r.code != 0 {
            eprintln!("lab down: {}", r.all());
        }
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Parse a JSON report file.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (host, task) pairs that changed, from a JSON report.
pub fn changed_tasks(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "changed")
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["task"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

impl Lab {
    /// An inventory of this lab's hosts plus `extra` YAML host entries under `workers`.
    pub fn inventory_with(&self, extra: &str) -> PathBuf {
        let mut inv = format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_port: {}\n    ansible_ssh_private_key_file: {}\n    ansible_ssh_common_args: -o UserKnownHostsFile={}\n  children:\n    workers:\n      hosts:\n",
            self.port,
            self.dir.join("id_ed25519").display(),
            self.dir.join("known_hosts").display()
        );
        for (name, addr) in &self.hosts {
            inv.push_str(&format!(
                "        {name}:\n          ansible_host: {addr}\n"
            ));
        }
        inv.push_str(extra);
        let path = self.dir.join("inventory-extra.yaml");
        std::fs::write(&path, inv).unwrap();
        path
    }

    /// The pid of a host's sshd, from lab.json.
    pub fn sshd_pid(&self, host: &str) -> u32 {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("lab.json")).unwrap())
                .unwrap();
        state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .and_then(|h| h["pid"].as_u64())
            .expect("host in lab.json") as u32
    }

    /// Run a command inside a host's mount namespace, from the real machine (as root).
    pub fn nsenter(&self, host: &str, cmd: &str) {
        let st = Command::new("nsenter")
            .args([
                "-t",
                &self.sshd_pid(host).to_string(),
                "-m",
                "sh",
                "-c",
                cmd,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "nsenter {host} {cmd}");
    }

    /// Kill every process of a host (its sshd and all its sessions): the host is gone.
    pub fn kill_host(&self, host: &str) {
        let ns = std::fs::read_link(format!("/proc/{}/ns/mnt", self.sshd_pid(host))).unwrap();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Ok(pid) = name.parse::<i32>() {
                if std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
                {
                    // SAFETY: signalling a process of the lab host we own.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

fn shell_words_split(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// (host, task, status) of every result in a JSON report, in report order.
pub fn results(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["task"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub mod http;
pub mod sshd;

/// The pinned ansible-core venv that scripts/setup installs (`BSCTL_ANSIBLE_VENV` to point
/// elsewhere), when it holds `tool`. Absent: the caller skips, except under CI, which must run
/// the differential tests against the real Ansible.
pub fn ansible_venv(tool: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BSCTL_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/bootstrapctl-test/ansible-venv"));
    if dir.join("bin").join(tool).exists() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "no ansible-core venv at {} (scripts/setup installs it)",
            dir.display()
        );
    }
    eprintln!(
        "skipped: no ansible-core venv at {} (run scripts/setup)",
        dir.display()
    );
    None
}
