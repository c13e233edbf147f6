//! kubelet STAND-IN for the lab (the stand-in binary run as `kubelet`). It reads the real
//! kubelet's flags (removed ones such as `--network-plugin` or `--container-runtime` are unknown
//! flags, exit 1) and the KubeletConfiguration file, then does what the real kubelet does for
//! TLS bootstrapping: client certificate from `--kubeconfig`, or bootstrap through
//! `--bootstrap-kubeconfig` (new key, CSR, wait for approval and the certificate, write
//! kubelet-client-<ts>.pem + kubelet-client-current.pem + the kubeconfig), fail on active swap
//! with failSwapOn, file its serving CSR with serverTLSBootstrap (else a self-signed serving
//! pair), register its Node, keep its Ready condition fresh, and rotate the client certificate
//! at 70-90% of its life when rotation is on. It runs no pods and never contacts the container
//! runtime.

mod bootstrap;
mod config;
mod serving;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::kube::{klog, Api, ApiError};
use super::timefmt;

pub(crate) use config::{Settings, LAB_ADDRESS_FILE};

fn fail(msg: &str) -> i32 {
    klog(
        'E',
        "run.go:72",
        &format!("\"command failed\" err=\"{}\"", msg.replace('"', "\\\"")),
    );
    1
}

pub(crate) fn kubelet_main(args: &[String]) -> i32 {
    let s = match config::settings(args) {
        Ok(Some(s)) => s,
        Ok(None) => return 0,
        Err(config::ConfigError::Flag(e)) => {
            eprintln!("Error: failed to parse kubelet flag: {e}");
            return 1;
        }
        Err(config::ConfigError::Fatal(e)) => return fail(&e),
    };
    klog('I', "server.go:484", "\"Kubelet version\" kubeletVersion=\"v1.32.0-bootstrapctl-lab-stand-in\" note=\"bootstrapctl lab STAND-IN for the kubelet: TLS bootstrap, node registration and heartbeats only; runs no pods\"");
    for w in &s.warnings {
        klog('W', "server.go:223", w);
    }
    let mut client = match bootstrap::client_certificate(&s) {
        Ok(c) => c,
        Err(e) => return fail(&format!("failed to run Kubelet: {e}")),
    };
    if s.fail_swap_on {
        if let Some(swaps) = active_swap() {
            return fail(&format!("failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false. /proc/swaps contained: [{swaps}]"));
        }
    }
    klog(
        'I',
        "kubelet.go:2440",
        &format!(
            "\"Container runtime not contacted by the lab stand-in\" endpoint=\"{}\"",
            s.runtime_endpoint
        ),
    );
    if let Err(e) = serving::start(&s, &client.kubeconfig) {
        return fail(&format!("failed to run Kubelet: serving certificate: {e}"));
    }
    run_node(&s, &mut client)
}

/// Lines of /proc/swaps after its header, when there are any.
fn active_swap() -> Option<String> {
    let t = std::fs::read_to_string("/proc/swaps").ok()?;
    let lines: Vec<&str> = t.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).to_lowercase()
}

fn node_object(s: &Settings) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), s.node_name.clone().into());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert(
        "kubernetes.io/arch".into(),
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64")
            .into(),
    );
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    for (k, v) in &s.node_labels {
        labels.insert(k.clone(), v.clone().into());
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": s.node_name, "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "bootstrapctl.lab/stand-in": "kubelet"}},
        "spec": {},
        "status": status(s, &Value::Null),
    })
}

fn status(s: &Settings, old: &Value) -> Value {
    let now = timefmt::now_rfc3339();
    let mut addresses = Vec::new();
    for ip in &s.node_ips {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    addresses.push(json!({"type": "Hostname", "address": s.node_name}));
    let cond = |t: &str, st: &str, reason: &str, msg: &str| {
        // lastTransitionTime moves only when the status changes, as upstream.
        let since = old["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == st))
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone());
        json!({"type": t, "status": st, "reason": reason, "message": msg,
               "lastHeartbeatTime": now, "lastTransitionTime": since})
    };
    json!({
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (bootstrapctl lab stand-in: runs no pods)"),
        ],
        "addresses": addresses,
        "nodeInfo": {"kubeletVersion": crate::flagparse::VERSION, "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "none://lab-stand-in",
            "kubeProxyVersion": "", "osImage": "bootstrapctl lab host", "kernelVersion": "",
            "machineID": "", "systemUUID": system_uuid(), "bootID": ""},
        "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
    })
}

/// The node's DMI product_uuid, as the real kubelet reports it (empty when unreadable); in
/// the lab, the host's own kernel view.
fn system_uuid() -> String {
    std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
        .map(|u| u.trim().to_string())
        .unwrap_or_default()
}

fn describe(e: &ApiError) -> String {
    e.to_string()
}

/// Registers the node (retrying), then heartbeats; rotates the client certificate when due.
fn run_node(s: &Settings, client: &mut bootstrap::NodeClient) -> i32 {
    let nodes = "/api/v1/nodes";
    loop {
        klog(
            'I',
            "kubelet_node_status.go:75",
            &format!("\"Attempting to register node\" node=\"{}\"", s.node_name),
        );
        match client.api.post(nodes, &node_object(s)) {
            Ok(_) => {
                klog(
                    'I',
                    "kubelet_node_status.go:78",
                    &format!("\"Successfully registered node\" node=\"{}\"", s.node_name),
                );
                break;
            }
            Err(e) if e.code == 409 => {
                klog(
                    'I',
                    "kubelet_node_status.go:110",
                    &format!(
                        "\"Node was previously registered\" node=\"{}\"",
                        s.node_name
                    ),
                );
                break;
            }
            Err(e) => {
                klog(
                    'E',
                    "kubelet_node_status.go:97",
                    &format!(
                        "\"Unable to register node with API server\" err=\"{}\" node=\"{}\"",
                        describe(&e),
                        s.node_name
                    ),
                );
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
    let path = format!("{nodes}/{}", s.node_name);
    let mut failing = false;
    loop {
        let res = client.api.get(&path).and_then(|mut n| {
            n["status"] = status(s, &n["status"]);
            client.api.put(&format!("{path}/status"), &n)
        });
        match res {
            Ok(_) if failing => {
                klog(
                    'I',
                    "kubelet_node_status.go:540",
                    "\"Node status updated again after errors\"",
                );
                failing = false;
            }
            Ok(_) => {}
            Err(e) => {
                klog('E', "kubelet_node_status.go:535", &format!("\"Error updating node status, will retry\" err=\"error getting node \\\"{}\\\": {}\"", s.node_name, describe(&e)));
                failing = true;
            }
        }
        if s.rotate {
            if let Err(e) = client.rotate_if_due(s) {
                klog('E', "certificate_manager.go:562", &format!("\"Failed while requesting a signed certificate from the control plane\" err=\"{e}\" logger=\"kubernetes.io/kube-apiserver-client-kubelet\""));
            }
        }
        std::thread::sleep(s.status_every);
    }
}

/// Where the kubelet's files go, under the cert dir.
pub(crate) fn current_pem(cert_dir: &Path) -> PathBuf {
    cert_dir.join("kubelet-client-current.pem")
}

pub(crate) fn now() -> i64 {
    timefmt::unix(SystemTime::now())
}
