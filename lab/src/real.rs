//! `lab up --real-components CACHE`: what changes when real Kubernetes components run in the lab
//! instead of the stand-ins. CACHE is `scripts/real-k8s path` (kube-apiserver,
//! kube-controller-manager and kubelet v1.20.2 built from Debian's source package); etcd,
//! containerd, runc and the CNI plugins are Debian's.
//!
//! - cp-1: the real kube-apiserver and kube-controller-manager are bind-mounted at
//!   `/usr/local/bin/kube-*`, so the seeded units (the same as with stand-ins) run them; a real
//!   etcd runs from its own unit on cp-1's address (see `seed`).
//! - The first worker: the real kubelet at `/usr/local/bin/kubelet` and the real containerd at
//!   `/usr/local/bin/containerd` (the lab's containerd.service runs that path), in the host's
//!   own network namespace (`realnet`), with private tmpfs over the paths they write, a bridge
//!   CNI config in its /etc, and host variables in the inventory for what this machine needs
//!   (kubelet 1.20's profile, cgroupfs, no QoS cgroups, containers no lower an OOM score than
//!   containerd's). Other workers keep the stand-ins.
//! - A real kubelet writes host sysctls at start (they are not namespaced): `up` saves them and
//!   `down` puts back each one that changed.

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::hosts::PlannedHost;
use super::LabError;

/// How many workers (the first ones) run the real kubelet and containerd.
pub(crate) const REAL_WORKERS: usize = 1;

/// The Debian binaries the real components need beside the cache's.
const SYSTEM_BINARIES: &[&str] = &[
    "/usr/bin/etcd",
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/runc",
    "/usr/lib/cni/bridge",
    "/usr/lib/cni/host-local",
    "/usr/lib/cni/loopback",
];

/// Paths a real kubelet or containerd writes outside the host's usual tmpfs: each gets a
/// private tmpfs in the real worker, so nothing lands on the machine.
pub(crate) const WORKER_TMPFS: &[&str] = &[
    "/var/lib/containerd",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
];
/// kube-controller-manager's `--flex-volume-plugin-dir` default, created at start.
pub(crate) const CONTROL_PLANE_TMPFS: &[&str] = &["/usr/libexec/kubernetes"];

/// The host sysctls kubelet 1.20 writes at start (`setupKernelTunables`): saved at `up`,
/// restored at `down`.
pub(crate) const KUBELET_SYSCTLS: &[&str] = &[
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];
const SAVED_SYSCTLS: &str = "host-sysctls.saved";

/// The pod subnet of the bridge CNI config (TEST-NET-3, RFC 5737: never routed; no pod runs
/// in the lab's join, so no packet uses it).
const POD_SUBNET: &str = "203.0.113.0/24";

pub(crate) fn validate(cache: &Path, control_planes: usize) -> Result<(), LabError> {
    let bad = |m: String| Err(LabError::Spec(format!("--real-components: {m}")));
    if !cache.join("COMPLETE").is_file() {
        return bad(format!(
            "{} holds no complete build (no COMPLETE; run scripts/real-k8s build and pass scripts/real-k8s path)",
            cache.display()
        ));
    }
    for b in ["kube-apiserver", "kube-controller-manager", "kubelet"] {
        if !cache.join("bin").join(b).is_file() {
            return bad(format!(
                "{} is missing",
                cache.join("bin").join(b).display()
            ));
        }
    }
    for b in SYSTEM_BINARIES {
        if !Path::new(b).is_file() {
            return bad(format!(
                "{b} is missing (scripts/real-k8s build installs it)"
            ));
        }
    }
    if control_planes != 1 {
        return bad(format!(
            "needs exactly one control plane (asked for {control_planes})"
        ));
    }
    Ok(())
}

/// Whether the `i`-th worker (0-based) is a real one.
pub(crate) fn is_real_worker(worker_index: usize) -> bool {
    worker_index < REAL_WORKERS
}

/// The node address of a real worker (TEST-NET-2, see `realnet`).
pub(crate) fn node_ip(worker_index: usize) -> String {
    format!("198.51.100.{}", worker_index + 1)
}

/// (real binary, path in the host) replacing the stand-ins on a real host.
pub(crate) fn control_plane_binaries(cache: &Path) -> Vec<(PathBuf, PathBuf)> {
    ["kube-apiserver", "kube-controller-manager"]
        .iter()
        .map(|b| {
            (
                cache.join("bin").join(b),
                Path::new("/usr/local/bin").join(b),
            )
        })
        .collect()
}

pub(crate) fn worker_binaries(cache: &Path) -> Vec<(PathBuf, PathBuf)> {
    vec![
        (
            cache.join("bin/kubelet"),
            PathBuf::from("/usr/local/bin/kubelet"),
        ),
        (
            PathBuf::from("/usr/bin/containerd"),
            PathBuf::from("/usr/local/bin/containerd"),
        ),
    ]
}

/// The bridge CNI config a network add-on would install, in the host's /etc upper layer.
pub(crate) fn write_cni_config(etc_upper: &Path) -> Result<(), LabError> {
    let dir = etc_upper.join("cni/net.d");
    fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let conf = format!(
        r#"{{"cniVersion": "0.4.0", "name": "lab", "plugins": [
  {{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{POD_SUBNET}"}}]], "routes": []}}}},
  {{"type": "loopback"}}
]}}
"#
    );
    let p = dir.join("10-lab-bridge.conflist");
    fs::write(&p, conf).map_err(LabError::io(format!("writing {}", p.display())))
}

/// Host variables of a real worker: what the shipped playbooks need to write a configuration
/// this machine's real kubelet 1.20 and containerd 1.6 run with.
pub(crate) fn worker_vars(worker_index: usize) -> Vec<(&'static str, Value)> {
    let extra: Mapping = [
        // No systemd here: no QoS or node-allocatable cgroups, kubelet and containerd on the
        // cgroupfs driver (cgroup_driver, below).
        ("cgroupsPerQOS", Value::Bool(false)),
        ("enforceNodeAllocatable", Value::Sequence(vec![])),
        // Its iptables chains would go into the worker's own network namespace; not needed.
        ("makeIPTablesUtilChains", Value::Bool(false)),
    ]
    .into_iter()
    .map(|(k, v)| (Value::from(k), v))
    .collect();
    let ip = node_ip(worker_index);
    vec![
        ("kubernetes_version", Value::from("1.20")),
        ("cgroup_driver", Value::from("cgroupfs")),
        ("kubelet_node_ip", Value::from(ip.clone())),
        (
            "kubelet_node_addresses",
            Value::Sequence(vec![Value::from(ip)]),
        ),
        ("cni_bin_dir", Value::from("/usr/lib/cni")),
        // This machine forbids lowering oom_score_adj (runc's -998 for sandboxes).
        ("containerd_restrict_oom_score_adj", Value::Bool(true)),
        ("kubelet_config_extra", Value::Mapping(extra)),
    ]
}

/// Adds `worker_vars` to the real workers of a rendered lab inventory.
pub(crate) fn add_inventory_vars(text: &str, hosts: &[PlannedHost]) -> Result<String, LabError> {
    let mut doc: Value = serde_yaml::from_str(text)
        .map_err(|e| LabError::Spec(format!("re-reading the lab inventory: {e}")))?;
    let workers = hosts
        .iter()
        .filter(|h| h.group == super::hosts::GROUP_WORKERS)
        .enumerate();
    for (i, h) in workers {
        if !is_real_worker(i) {
            continue;
        }
        let Some(Value::Mapping(vars)) = doc
            .get_mut("all")
            .and_then(|a| a.get_mut("children"))
            .and_then(|c| c.get_mut(super::hosts::GROUP_WORKERS))
            .and_then(|g| g.get_mut("hosts"))
            .and_then(|hs| hs.get_mut(h.name.as_str()))
        else {
            continue;
        };
        for (k, v) in worker_vars(i) {
            vars.insert(Value::from(k), v);
        }
    }
    serde_yaml::to_string(&doc)
        .map_err(|e| LabError::Spec(format!("writing the lab inventory: {e}")))
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// Saves KUBELET_SYSCTLS into the lab dir, unless a save is there already (a lab that did not
/// come down cleanly keeps the values from before it).
pub(crate) fn save_sysctls(dir: &Path) -> Result<(), LabError> {
    let file = dir.join(SAVED_SYSCTLS);
    if file.exists() {
        return Ok(());
    }
    let mut text = String::new();
    for k in KUBELET_SYSCTLS {
        let p = sysctl_path(k);
        let v = fs::read_to_string(&p).map_err(LabError::io(format!("reading {}", p.display())))?;
        text.push_str(&format!("{k} = {}\n", v.trim()));
    }
    fs::write(&file, text).map_err(LabError::io(format!("writing {}", file.display())))
}

/// Puts back every saved sysctl whose value changed; returns (key, found, restored) for each.
pub(crate) fn restore_sysctls(dir: &Path) -> Result<Vec<(String, String, String)>, LabError> {
    let file = dir.join(SAVED_SYSCTLS);
    let Ok(text) = fs::read_to_string(&file) else {
        return Ok(Vec::new());
    };
    let mut restored = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(" = ") else {
            continue;
        };
        let p = sysctl_path(k);
        let now = fs::read_to_string(&p)
            .unwrap_or_default()
            .trim()
            .to_string();
        if now != v {
            fs::write(&p, v).map_err(LabError::io(format!("restoring {} to {v}", p.display())))?;
            restored.push((k.to_string(), now, v.to_string()));
        }
    }
    fs::remove_file(&file).map_err(LabError::io(format!("removing {}", file.display())))?;
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_worker_gets_the_real_vars() {
        let hosts = super::super::hosts::plan(10, 1, 2);
        let inv = super::super::inventory::render(&hosts, 2222, Path::new("/k"), Path::new("/kh"));
        let out = add_inventory_vars(&inv, &hosts).unwrap();
        let doc: Value = serde_yaml::from_str(&out).unwrap();
        let w = &doc["all"]["children"]["workers"]["hosts"];
        assert_eq!(w["worker-01"]["kubernetes_version"], Value::from("1.20"));
        assert_eq!(
            w["worker-01"]["kubelet_node_ip"],
            Value::from("198.51.100.1")
        );
        assert_eq!(w["worker-01"]["ansible_host"], Value::from("127.10.0.2"));
        assert!(w["worker-02"].get("kubernetes_version").is_none());
    }
}
