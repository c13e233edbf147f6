//! What a lab is, as the callers of `up`/`down`/`status`/`reboot` see it: the spec, what `up`
//! built, each host's status, and the errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Workers as fresh machines: no kubelet (nor any kube-* stand-in) mounted, and private,
    /// empty `/usr/local` and `/opt`, where the install path puts kubelet, the runtime and the
    /// CNI plugins.
    pub bare: bool,
    /// Hosts that get one and the same product_uuid (as cloned VMs do), for testing the
    /// fleet-wide preflight; empty: every host its own.
    pub shared_product_uuid: Vec<String>,
    /// `scripts/real-k8s path`: run real etcd, kube-apiserver and kube-controller-manager on
    /// the control plane and a real containerd and kubelet on the first worker (see `real`).
    pub real_components: Option<PathBuf>,
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
