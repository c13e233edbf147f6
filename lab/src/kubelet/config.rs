//! The kubelet's flags and KubeletConfiguration file, resolved into `Settings`. Flags win over
//! the file, as upstream; a `--config` file that cannot be read is fatal.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::super::flagparse;
use super::super::timefmt;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) bootstrap_kubeconfig: Option<PathBuf>,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) cert_dir: PathBuf,
    pub(crate) rotate: bool,
    /// `serverTLSBootstrap` (or the older `--rotate-server-certificates`): the serving
    /// certificate comes from a kubelet-serving CSR instead of being self-signed.
    pub(crate) server_tls_bootstrap: bool,
    pub(crate) fail_swap_on: bool,
    pub(crate) node_name: String,
    pub(crate) node_ips: Vec<String>,
    pub(crate) node_labels: Vec<(String, String)>,
    pub(crate) runtime_endpoint: String,
    pub(crate) status_every: Duration,
    /// How long one CSR is waited for before the kubelet logs a timeout and asks again.
    pub(crate) csr_wait: Duration,
    pub(crate) warnings: Vec<String>,
}

pub(crate) enum ConfigError {
    /// A flag error: `Error: failed to parse kubelet flag: ...`.
    Flag(String),
    /// Anything else that stops the kubelet: `"command failed" err=...`.
    Fatal(String),
}

const VALUE_FLAGS: &[&str] = &[
    "bootstrap-kubeconfig",
    "kubeconfig",
    "cert-dir",
    "config",
    "config-dir",
    "hostname-override",
    "node-ip",
    "v",
    "vmodule",
    "container-runtime-endpoint",
    "image-service-endpoint",
    "node-labels",
    "register-with-taints",
    "root-dir",
    "pod-infra-container-image",
    "feature-gates",
    "cgroup-driver",
    "runtime-request-timeout",
    "provider-id",
    "cloud-provider",
    "resolv-conf",
    "max-pods",
    "pod-manifest-path",
    "cluster-dns",
    "cluster-domain",
    "authorization-mode",
    "client-ca-file",
    "tls-cert-file",
    "tls-private-key-file",
    "address",
    "port",
    "read-only-port",
    "healthz-port",
    "healthz-bind-address",
    "node-status-update-frequency",
    "runtime-cgroups",
    "kubelet-cgroups",
    "system-reserved",
    "kube-reserved",
    "eviction-hard",
    "log-flush-frequency",
    "logging-format",
    "tls-cipher-suites",
    "tls-min-version",
    "image-gc-high-threshold",
    "image-gc-low-threshold",
    "seccomp-default",
    "lock-file",
];
const BOOL_FLAGS: &[&str] = &[
    "help",
    "h",
    "version",
    "rotate-certificates",
    "rotate-server-certificates",
    "fail-swap-on",
    "register-node",
    "anonymous-auth",
    "exit-on-lock-contention",
    "serialize-image-pulls",
    "enable-server",
    "cgroups-per-qos",
    "protect-kernel-defaults",
    "make-iptables-util-chains",
    "fail-cgroupv1",
];

pub(crate) const HELP: &str = "kubelet (bootstrapctl lab STAND-IN, not the real Kubernetes binary)

Does the TLS bootstrap of a real kubelet, registers its Node and keeps it Ready; runs no pods
and never contacts the container runtime.

Usage:
  kubelet [flags]

Flags honoured:
      --bootstrap-kubeconfig string   kubeconfig with a bootstrap token, used when --kubeconfig has no usable client certificate
      --kubeconfig string             kubeconfig written after bootstrap and used to reach the API server
      --cert-dir string               where kubelet-client-*.pem go (default /var/lib/kubelet/pki)
      --config string                 KubeletConfiguration file (rotateCertificates, serverTLSBootstrap, failSwapOn, nodeStatusUpdateFrequency)
      --rotate-certificates           renew the client certificate through a new CSR at 70-90% of its life
      --rotate-server-certificates    serverTLSBootstrap: the serving certificate from a kubelet-serving CSR
      --fail-swap-on                  fail when swap is on (default true)
      --hostname-override string      node name (default: the hostname)
      --node-ip string                comma-separated InternalIP addresses of the node
      --node-labels mapStringString   labels to register the node with
      --container-runtime-endpoint    accepted, not contacted
  Other current kubelet flags are accepted and ignored; removed ones (--network-plugin,
  --container-runtime, --dockershim-*, --experimental-*, ...) are unknown flags.
";

fn yaml_bool(v: &Value, key: &str) -> Result<Option<bool>, String> {
    match &v[key] {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(format!("json: cannot unmarshal {other} into Go struct field KubeletConfiguration.{key} of type bool")),
    }
}

/// Without `--node-ip` a real kubelet takes the address of its hostname or of the interface
/// of the default route. Lab hosts share the machine's network namespace, where neither
/// names the host, so the lab writes each host's own 127.x address into its state dir and
/// that stands for the default-route address.
fn lab_host_address() -> Vec<String> {
    let path = std::path::Path::new(crate::namespace::STATE_MOUNT).join(LAB_ADDRESS_FILE);
    std::fs::read_to_string(path)
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The file under a lab host's state dir that holds the host's address.
pub(crate) const LAB_ADDRESS_FILE: &str = "address";

pub(crate) fn settings(args: &[String]) -> Result<Option<Settings>, ConfigError> {
    let f = flagparse::parse(args, &|n| flagparse::kind_in(n, VALUE_FLAGS, BOOL_FLAGS))
        .map_err(ConfigError::Flag)?;
    if f.answered_help_or_version(HELP) {
        return Ok(None);
    }
    for b in BOOL_FLAGS {
        f.bool(b).map_err(ConfigError::Flag)?;
    }
    let mut warnings = Vec::new();
    let mut file = Value::Null;
    if let Some(path) = f.last("config") {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let os = e.to_string();
            let os = os.split(" (os error").next().unwrap_or(&os).to_lowercase();
            ConfigError::Fatal(format!("failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, error failed to read kubelet config file \"{path}\", error: open {path}: {os}"))
        })?;
        file = serde_yaml::from_str(&text).map_err(|e| {
            ConfigError::Fatal(format!(
                "failed to load kubelet config file, path: {path}, error: failed to decode: {e}"
            ))
        })?;
        if file["kind"].as_str() != Some("KubeletConfiguration") {
            return Err(ConfigError::Fatal(format!("failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file {path}, error failed to decode: Object 'Kind' is missing or not KubeletConfiguration")));
        }
        let api = file["apiVersion"].as_str().unwrap_or("");
        if api != "kubelet.config.k8s.io/v1beta1" && api != "kubelet.config.k8s.io/v1" {
            return Err(ConfigError::Fatal(format!("failed to load kubelet config file, path: {path}, error: no kind \"KubeletConfiguration\" is registered for version \"{api}\"")));
        }
    }
    let fatal = |e: String| ConfigError::Fatal(e);
    let rotate = match f.bool("rotate-certificates").map_err(ConfigError::Flag)? {
        Some(b) => b,
        None => yaml_bool(&file, "rotateCertificates")
            .map_err(fatal)?
            .unwrap_or(false),
    };
    let server_tls_bootstrap = match f
        .bool("rotate-server-certificates")
        .map_err(ConfigError::Flag)?
    {
        Some(b) => b,
        None => yaml_bool(&file, "serverTLSBootstrap")
            .map_err(fatal)?
            .unwrap_or(false),
    };
    let fail_swap_on = match f.bool("fail-swap-on").map_err(ConfigError::Flag)? {
        Some(b) => b,
        None => yaml_bool(&file, "failSwapOn")
            .map_err(fatal)?
            .unwrap_or(true),
    };
    let freq = f
        .last("node-status-update-frequency")
        .map(str::to_string)
        .or_else(|| {
            file["nodeStatusUpdateFrequency"]
                .as_str()
                .map(str::to_string)
        });
    let mut status_every = Duration::from_secs(4);
    if let Some(fr) = freq {
        let d = timefmt::parse_duration(&fr).ok_or_else(|| {
            ConfigError::Fatal(format!("invalid nodeStatusUpdateFrequency \"{fr}\""))
        })?;
        // Never slower than 4 s in the lab, so Ready stays fresh for tests.
        status_every = d.min(status_every).max(Duration::from_secs(1));
    }
    let node_name = f
        .last("hostname-override")
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(super::hostname);
    let node_ips = f
        .last("node-ip")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(lab_host_address);
    let mut node_labels = Vec::new();
    for l in f.all("node-labels") {
        for kv in l.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            node_labels.push((k.to_string(), v.to_string()));
        }
    }
    let kubeconfig = f.last("kubeconfig").unwrap_or("").to_string();
    if kubeconfig.is_empty() {
        warnings.push(
            "\"No --kubeconfig given: the lab stand-in needs one to reach the API server\"".into(),
        );
    }
    let csr_wait = std::env::var("BOOTSTRAPCTL_LAB_CSR_WAIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    Ok(Some(Settings {
        bootstrap_kubeconfig: f
            .last("bootstrap-kubeconfig")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        kubeconfig: PathBuf::from(kubeconfig),
        cert_dir: PathBuf::from(f.last("cert-dir").unwrap_or("/var/lib/kubelet/pki")),
        rotate,
        server_tls_bootstrap,
        fail_swap_on,
        node_name,
        node_ips,
        node_labels,
        runtime_endpoint: f
            .last("container-runtime-endpoint")
            .unwrap_or("unix:///run/containerd/containerd.sock")
            .to_string(),
        status_every,
        csr_wait,
        warnings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn flag_err(args: &str) -> String {
        match settings(&a(args)) {
            Err(ConfigError::Flag(e)) => e,
            _ => panic!("{args}: expected a flag error"),
        }
    }

    #[test]
    fn removed_flags_are_unknown() {
        for f in [
            "--network-plugin=cni",
            "--cni-bin-dir=/opt/cni/bin",
            "--dockershim-root-directory=/x",
            "--container-runtime=remote",
            "--experimental-check-node-capabilities-before-mount",
            "--logtostderr",
            "--docker-endpoint=unix:///var/run/docker.sock",
        ] {
            let name = f.trim_start_matches("--").split('=').next().unwrap();
            assert_eq!(flag_err(f), format!("unknown flag: --{name}"));
        }
    }

    #[test]
    fn flags_and_config_file() {
        let tmp = crate::testutil::TempDir::new("kubelet-config");
        let cfg = tmp.0.join("config.yaml");
        std::fs::write(&cfg, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nrotateCertificates: true\nfailSwapOn: false\nnodeStatusUpdateFrequency: 2s\n").unwrap();
        let s = settings(&a(&format!("--config={} --kubeconfig=/etc/kubernetes/kubelet.conf --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --hostname-override=Worker-01 --node-ip=127.10.0.2 --container-runtime-endpoint=unix:///run/containerd/containerd.sock --v=2", cfg.display()))).ok().flatten().unwrap();
        assert!(s.rotate);
        assert!(!s.fail_swap_on);
        assert_eq!(s.node_name, "worker-01");
        assert_eq!(s.node_ips, ["127.10.0.2"]);
        assert_eq!(s.status_every, Duration::from_secs(2));
        assert_eq!(s.cert_dir, PathBuf::from("/var/lib/kubelet/pki"));
        let s = settings(&a(&format!(
            "--config={} --rotate-certificates=false --fail-swap-on",
            cfg.display()
        )))
        .ok()
        .flatten()
        .unwrap();
        assert!(!s.rotate && s.fail_swap_on, "flags win over the file");

        match settings(&a("--config=/nonexistent/config.yaml")) {
            Err(ConfigError::Fatal(e)) => assert!(
                e.ends_with("error: open /nonexistent/config.yaml: no such file or directory"),
                "{e}"
            ),
            _ => panic!("a missing config file is fatal"),
        }
        std::fs::write(&cfg, "kind: Other\n").unwrap();
        assert!(matches!(
            settings(&a(&format!("--config={}", cfg.display()))),
            Err(ConfigError::Fatal(_))
        ));
        assert!(matches!(
            settings(&a("--fail-swap-on=maybe")),
            Err(ConfigError::Flag(_))
        ));
    }
}
