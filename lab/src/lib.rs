//! bootstrapctl's local lab: a fleet of real OpenSSH hosts on one machine and stand-ins for
//! the services a Kubernetes node runs, so that bootstrapctl can be tried and tested end to end
//! without VMs or a real cluster.
//!
//! Architecture in brief:
//! - **Hosts** (`fleet`, `hosts`, `namespace`, `sshd_config`, `keys`, `probe`, `procs`,
//!   `state`, `inventory`): `up` gives each host a real `/usr/sbin/sshd` on its own
//!   127.S.x.y address, in a private mount and UTS namespace with tmpfs over the paths
//!   playbooks touch; `lab.json` records what was started so `down`/`status`/`reboot` find
//!   it. `up` writes an Ansible inventory, known_hosts and a client key for the hosts. `spec`
//!   holds the types callers see.
//! - **Stand-ins**, one binary dispatched by argv[0] (`standin`), bind-mounted read-only into
//!   every host: `systemctl`/`journalctl` (`systemctl`, `units`, `service`, `journalctl`),
//!   `kube-apiserver` (`apiserver`), `kube-controller-manager` (`kcm`), `kubelet`
//!   (`kubelet`) and `containerd` (`containerd`, a socket only), sharing `kube` (their API
//!   client), `pki`, `tokens`, `jws`, `flagparse` and `timefmt`. `seed` lays out the control
//!   plane of `cp-1`. `sysctl`/`modprobe` (`kernel_standin`) change only the host's own kernel
//!   view (`kernel_view`: per-host files over /proc/sys, /sys/module and /sys/class), never the
//!   machine's kernel.
//! - The crate has no dependency on bootstrapctl, on purpose: the lab is what bootstrapctl is
//!   checked against, so it keeps its own rules (bootstrap tokens, JWS, PKI) written from the
//!   upstream docs, and a shared mistake could not pass unnoticed. It links no SSH client
//!   and so no OpenSSL, which keeps the stand-ins quick to start.
//!
//! The library prints nothing: it returns data and errors, its caller decides what to show.

#![warn(unreachable_pub)]

mod apiserver;
mod containerd;
mod flagparse;
mod fleet;
mod hosts;
mod inventory;
mod journalctl;
mod jws;
mod kcm;
mod kernel_standin;
mod kernel_view;
mod keys;
mod kube;
mod kubelet;
mod namespace;
mod pki;
mod probe;
mod procs;
mod real;
mod realnet;
mod seed;
mod service;
mod spec;
mod sshd_config;
mod standin;
mod state;
mod systemctl;
#[cfg(test)]
mod testutil;
mod timefmt;
mod tokens;
mod units;

use std::path::Path;

pub use spec::{HostStatus, LabError, LabInfo, LabSpec, DEFAULT_PORT};
pub use standin::{standin_binary, standin_main, BUILD_ID};

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
