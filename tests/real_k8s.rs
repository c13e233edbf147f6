//! The real tier: the shipped site playbook against real Kubernetes components (v1.20.2 built by
//! `scripts/real-k8s`) in a lab made with `lab up --real-components`: real etcd, kube-apiserver
//! and kube-controller-manager on cp-1, a real containerd and kubelet on worker-01 (in its own
//! network namespace). No stand-in worker sits beside it here: the stand-in kubelet files the
//! client CSR of a current kubelet (no `key encipherment` usage for its ECDSA key), which the
//! 1.20 csrapproving controller does not approve (see the differential table).
//!
//! It runs only when `BSCTL_REAL_K8S` names the component cache (`.ci/run` sets it to
//! `scripts/real-k8s path` after the build), so that `cargo test` alone stays fast; without it
//! the test prints one line and passes.

use std::path::PathBuf;
use std::time::Instant;

use crate::support::{changed_tasks, json, run, tempdir, Lab};

/// The cache of real components, or None (with the one-line skip message).
pub fn real_cache(test: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("BSCTL_REAL_K8S").map(PathBuf::from) else {
        eprintln!(
            "skipping {test}: real tier off (BSCTL_REAL_K8S=$(scripts/real-k8s path) turns it on)"
        );
        return None;
    };
    assert!(
        dir.join("COMPLETE").is_file(),
        "BSCTL_REAL_K8S={} holds no complete build (run scripts/real-k8s build)",
        dir.display()
    );
    Some(dir)
}

/// A lab with the real components of `cache`: cp-1 + `workers` (worker-01 real).
pub fn real_lab(tag: &str, workers: usize, cache: &std::path::Path) -> Lab {
    Lab::up_with_args(
        tag,
        1,
        workers,
        &["--real-components".as_ref(), cache.as_os_str()],
    )
    .expect("the real tier needs root and sshd")
}

/// RSS (VmRSS) in MiB of the process of `unit` inside `host` (the pid the systemctl stand-in
/// recorded, so never a process of another lab).
fn rss_mib(lab: &Lab, host: &str, unit: &str) -> String {
    lab.ssh(
        host,
        &format!(
            "awk '/^VmRSS/{{printf \"%.0f\", $2/1024}}' /proc/$(cat /var/lib/bootstrapctl-lab/{unit}.service.pid)/status"
        ),
    )
    .trim()
    .to_string()
}

fn apply(lab: &Lab, report: &std::path::Path) -> crate::support::Run {
    run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "--output",
        "json",
        &report.display().to_string(),
    ])
}

#[test]
fn shipped_site_playbook_joins_a_real_kubelet_to_a_real_control_plane() {
    let Some(cache) =
        real_cache("shipped_site_playbook_joins_a_real_kubelet_to_a_real_control_plane")
    else {
        return;
    };
    let t0 = Instant::now();
    let lab = real_lab("real-site", 1, &cache);
    let up_secs = t0.elapsed().as_secs_f64();
    // The API server and the kubelet are the real v1.20.2 ones, not the stand-ins.
    let version: serde_json::Value = serde_json::from_str(&lab.kubectl("version -o json")).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.20.2",
        "{version}"
    );

    let out = tempdir("real-site");
    let t1 = Instant::now();
    let first = apply(&lab, &out.join("1.json"));
    let apply_secs = t1.elapsed().as_secs_f64();
    assert_eq!(first.code, 0, "{}", first.all());

    let nodes: serde_json::Value = serde_json::from_str(&lab.kubectl("get nodes -o json")).unwrap();
    let node = |name: &str| {
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Node {name} in {nodes}"))
            .clone()
    };
    let real = node("worker-01");
    assert_eq!(
        real["status"]["nodeInfo"]["kubeletVersion"], "v1.20.2",
        "{real}"
    );
    assert!(
        real["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{real}"
    );
    assert_eq!(lab.ready_nodes(), ["worker-01"]);
    assert_eq!(
        real["status"]["addresses"][0]["address"], "198.51.100.1",
        "{real}"
    );

    // Its client CSR: made by the real kubelet with the run's bootstrap token, approved by the
    // real csrapproving controller and signed by the real csrsigning controller.
    let csrs: serde_json::Value = serde_json::from_str(&lab.kubectl("get csr -o json")).unwrap();
    let items = csrs["items"].as_array().unwrap();
    let client: Vec<&serde_json::Value> = items
        .iter()
        .filter(|c| {
            c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                && c["spec"]["username"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("system:bootstrap:"))
        })
        .collect();
    assert_eq!(client.len(), 1, "one client CSR: {csrs}");
    for c in &client {
        let conds = c["status"]["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .any(|k| k["type"] == "Approved" && k["reason"] == "AutoApproved"),
            "{c}"
        );
        assert!(
            c["status"]["certificate"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{c}"
        );
    }
    // The real kubelet's serving CSR, approved by the playbook's checks and signed.
    let serving: Vec<&serde_json::Value> = items
        .iter()
        .filter(|c| {
            c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                && c["spec"]["username"] == "system:node:worker-01"
        })
        .collect();
    assert!(
        !serving.is_empty(),
        "no serving CSR of the real kubelet: {csrs}"
    );
    assert!(
        serving.iter().any(|c| c["status"]["certificate"]
            .as_str()
            .is_some_and(|s| !s.is_empty())),
        "{csrs}"
    );
    // Approved by bootstrapctl itself, through the tunnel to the real API server.
    assert!(
        serving.iter().any(|c| c["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["type"] == "Approved" && k["reason"] == "BootstrapctlApprove")),
        "{csrs}"
    );
    // The kubelet serves 10250 with that certificate inside its own network namespace.
    let pem = lab.ssh(
        "worker-01",
        "ls /var/lib/kubelet/pki/kubelet-server-current.pem && openssl x509 -noout -issuer -ext subjectAltName -in /var/lib/kubelet/pki/kubelet-server-current.pem",
    );
    assert!(pem.contains("IP Address:198.51.100.1"), "{pem}");
    // No bootstrap token is left.
    assert!(!lab
        .kubectl("-n kube-system get secrets -o name")
        .contains("bootstrap-token-"));

    let second = apply(&lab, &out.join("2.json"));
    assert_eq!(second.code, 0, "{}", second.all());
    let changed = changed_tasks(&json(&out.join("2.json")));
    assert!(changed.is_empty(), "second apply changed: {changed:?}");

    let ready = lab.ssh(
        "worker-01",
        "awk '/Successfully registered node|Node became not ready|NodeReady/' /var/log/lab/kubelet.log | head -3",
    );
    eprintln!(
        "real tier: lab up {up_secs:.1}s (real etcd + apiserver ready), first apply to every Node Ready {apply_secs:.1}s, total {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("real kubelet log: {}", ready.trim());
    for (host, unit) in [
        ("cp-1", "etcd"),
        ("cp-1", "kube-apiserver"),
        ("cp-1", "kube-controller-manager"),
        ("worker-01", "containerd"),
        ("worker-01", "kubelet"),
    ] {
        eprintln!("RSS {unit:<24} {:>5} MiB", rss_mib(&lab, host, unit));
    }
}
