//! bootstrapctl's local lab: a fleet of real OpenSSH hosts on one machine and stand-ins for
//! the services a Kubernetes node runs, so that bootstrapctl can be tried and tested end to end
//! without VMs or a real cluster.
//!
//! Architecture in brief:
//! - **Hosts** (`fleet`, `hosts`, `namespace`, `sshd_config`, `keys`, `probe`, `procs`,
//!   `state`, `inventory`): `up` gives each host a real `/usr/sbin/sshd` on its own
//!   127.S.x.y address, in a private mount and UTS namespace with tmpfs over the paths
//!   playbooks touch; `lab.json` records what was started so `down`/`status`/`reboot` find it.
//!   `up` writes an Ansible inventory, known_hosts and a client key for the hosts.
//! - **Stand-ins**, one binary dispatched by argv[0] (`standin_main`), bind-mounted read-only
//!   into every host: `systemctl`/`journalctl` (`systemctl`, `units`, `service`,
//!   `journalctl`), `kube-apiserver` (`apiserver`), `kube-controller-manager` (`kcm`) and
//!   `kubelet` (`kubelet`), with `kube` (their API client), `pki`, `tokens`, `jws`, `flagparse` and
//!   `timefmt` shared among them. `seed` lays out the control plane of `cp-1`.
//! - The crate has no dependency on bootstrapctl, on purpose: the lab is what bootstrapctl is
//!   checked against, so it keeps its own rules (bootstrap tokens, JWS, PKI) written from the
//!   upstream docs, and a shared mistake could not pass unnoticed. It links no SSH client
//!   and so no OpenSSL, which keeps the stand-ins quick to start.
//!
//! The library prints nothing: it returns data and errors, its caller decides what to show.

#![warn(unreachable_pub)]

mod apiserver;
mod flagparse;
mod fleet;
mod hosts;
mod inventory;
mod journalctl;
mod jws;
mod kcm;
mod keys;
mod kube;
mod kubelet;
mod namespace;
mod pki;
mod probe;
mod procs;
mod seed;
mod service;
mod sshd_config;
mod state;
mod systemctl;
#[cfg(test)]
mod testutil;
mod timefmt;
mod tokens;
mod units;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Identifies this build of the lab; `lab up` mounts a `bootstrapctl-standin` only from the
/// same build (see `standin_binary`).
pub const BUILD_ID: &str = env!("BOOTSTRAPCTL_LAB_BUILD_ID");

/// Command-line tools die quietly on a closed pipe (`journalctl -u x | head`) instead of
/// panicking in println!: SIGPIPE back to its default. Only for short-lived commands that write
/// to stdout: a server keeps Rust's SIG_IGN, since rustls writes with writev(2), which raises
/// SIGPIPE when a client has gone (send(2) with MSG_NOSIGNAL would not), and that would kill it.
/// Call before any thread starts.
fn die_quietly_on_closed_pipe() {
    // SAFETY: changes a signal disposition while the process is still single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The stand-in an argv[0] names (`systemctl`, `journalctl`, `kube-apiserver`,
/// `kube-controller-manager`, `kubelet`), by basename; None for anything else (bootstrapctl).
pub fn invoked_as(argv0: &str) -> Option<&'static str> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    [
        "systemctl",
        "journalctl",
        "kube-apiserver",
        "kube-controller-manager",
        "kubelet",
    ]
    .into_iter()
    .find(|n| *n == base)
}

/// Runs the stand-in that `args[0]` names (systemctl, journalctl, kube-apiserver,
/// kube-controller-manager, kubelet); `None` when it names none of them.
pub fn standin_main(args: &[String]) -> Option<i32> {
    let argv0 = args.first()?;
    let rest = &args[1..];
    // systemctl and journalctl are commands (`journalctl -u x | head`); the kube-* stand-ins
    // are servers and clients of long-lived connections, which keep SIGPIPE ignored.
    match invoked_as(argv0)? {
        "systemctl" => {
            die_quietly_on_closed_pipe();
            Some(systemctl::systemctl_main(rest))
        }
        "journalctl" => {
            die_quietly_on_closed_pipe();
            Some(journalctl::journalctl_main(rest))
        }
        "kube-apiserver" => Some(apiserver::main(rest)),
        "kube-controller-manager" => Some(kcm::kcm_main(rest)),
        "kubelet" => Some(kubelet::kubelet_main(rest)),
        _ => None,
    }
}

/// The binary to bind-mount as the stand-ins: `bootstrapctl-standin` beside `self_exe` when it
/// comes from the same build (it says so by its build id), else `self_exe` itself, which holds
/// the same stand-ins. A stand-in from another build is never used: its state format or flags
/// could differ from what this build's tests and playbooks expect.
pub fn standin_binary(self_exe: &Path) -> PathBuf {
    let standin = self_exe.with_file_name("bootstrapctl-standin");
    let same_build = std::process::Command::new(&standin)
        .arg("--bootstrapctl-build-id")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == BUILD_ID.as_bytes());
    if same_build {
        standin
    } else {
        self_exe.to_path_buf()
    }
}

/// What `lab up` should build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Directory holding everything of the lab (keys, configs, per-host state, lab.json).
    pub dir: PathBuf,
    pub workers: usize,
    pub control_planes: usize,
    /// The stand-in binary (see `standin_binary`), bind-mounted read-only over `systemctl`,
    /// `journalctl` and the kube-* binaries in every host.
    pub standin_exe: PathBuf,
    /// Port every host's sshd listens on (on its own address). Usually 2222.
    pub port: u16,
    /// Second octet of the hosts' addresses (127.SUBNET.x.y), so several labs can run at once.
    pub subnet: u8,
}

/// Default SSH port of lab hosts: not 22, so a real sshd on 0.0.0.0:22 never collides.
pub const DEFAULT_PORT: u16 = 2222;

/// One host as `status` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub name: String,
    /// `control_plane` or `workers`.
    pub group: String,
    pub address: String,
    pub port: u16,
    /// Pid of the host's sshd (the process that owns the host's namespaces).
    pub pid: u32,
    /// The pid is alive and the port answered with an `SSH-2.0` banner.
    pub alive: bool,
}

/// What `up` built: the files a user (or a test) needs to reach the hosts.
#[derive(Debug, Clone)]
pub struct LabInfo {
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    pub key: PathBuf,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab already up in {0} (run lab down first)")]
    AlreadyUp(PathBuf),
    #[error("no lab is up in {0} (no lab.json there; run lab up first)")]
    NotUp(PathBuf),
    #[error("the lab needs root: it creates mount and UTS namespaces and mounts tmpfs")]
    NotRoot,
    #[error("invalid lab spec: {0}")]
    Spec(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{addr} is already in use (another lab, or another sshd?), needed by {host}")]
    AddressInUse { host: String, addr: String },
    #[error("lab hosts did not come up within {secs}s: {}", .failures.join("; "))]
    HostsDown { secs: u64, failures: Vec<String> },
    #[error("reading lab state {path}: {reason}")]
    State { path: PathBuf, reason: String },
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }
}

/// Builds and starts the lab described by `spec`; errors if one is already up in `spec.dir`.
pub fn up(spec: &LabSpec) -> Result<LabInfo, LabError> {
    fleet::up(spec)
}

/// Stops every process of the lab in `dir`; returns how many processes were stopped.
pub fn down(dir: &Path) -> Result<usize, LabError> {
    fleet::down(dir)
}

/// Reboots one lab host as far as its services go: stops its running units, forgets their
/// active state, reloads unit files and starts the enabled ones again (systemctl stand-in's
/// `reboot`, run inside the host).
pub fn reboot(dir: &Path, host: &str) -> Result<(), LabError> {
    fleet::reboot(dir, host)
}

/// Reports every host of the lab in `dir`, probing each one's SSH port.
pub fn status(dir: &Path) -> Result<Vec<HostStatus>, LabError> {
    fleet::status(dir)
}
