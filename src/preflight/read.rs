//! The one script each preflight host runs (everything the checks need, builtins where a
//! shell has them) and the pure parser of what it prints; likewise the control plane's read.

use base64::Engine as _;

use crate::shell::quote as sh_quote;

/// Tools kubeadm's join checks look for: missing ones are errors.
pub const REQUIRED_TOOLS: &[&str] = &["ip", "iptables", "mount", "nsenter"];
/// Missing ones are warnings.
pub const OPTIONAL_TOOLS: &[&str] = &["ebtables", "ethtool", "socat", "tc", "touch"];

/// What a host's script needs to know of its variables.
pub struct HostParams {
    pub files: Vec<String>,
    pub kubelet_bin: String,
    pub kubelet_config: String,
    pub kubelet_cert: String,
    pub cri_socket: String,
}

/// What one host's read gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRead {
    pub uid: Option<u32>,
    pub hostname: String,
    /// The host's clock, nanoseconds since the epoch.
    pub time_ns: Option<i128>,
    pub existing_files: Vec<String>,
    pub ip_forward: Option<String>,
    pub swaps: usize,
    /// The kubelet configuration lets the kubelet run with swap on.
    pub swap_allowed: bool,
    /// (tool, path found on PATH).
    pub tools: Vec<(String, Option<String>)>,
    /// `kubelet --version`'s first line; `None`: no kubelet binary.
    pub kubelet_version: Option<String>,
    /// `absent`, `not-socket`, `noanswer`, `ok`, `unprobed` (no crictl nor curl).
    pub cri: String,
    /// Local addresses (hex, as /proc/net/tcp{,6} print them) listening on port 10250.
    pub port_10250: Vec<String>,
    pub product_uuid: Option<String>,
    /// (interface, MAC) of interfaces backed by a device.
    pub macs: Vec<(String, String)>,
    pub kubelet_cert: Option<Vec<u8>>,
}

/// 10250 in the hex /proc/net/tcp uses.
const PORT_HEX: &str = "280A";

pub fn host_script(p: &HostParams) -> String {
    let mut s = String::from("LC_ALL=C; export LC_ALL\necho '@@ preflight'\n");
    s.push_str("while read -r k v _; do [ \"$k\" = Uid: ] && { echo \"U $v\"; break; }; done < /proc/self/status\n");
    s.push_str("read -r h < /proc/sys/kernel/hostname; printf 'H %s\\n' \"$h\"\n");
    s.push_str("printf 'T %s\\n' \"$(date +%s%N)\"\n");
    for f in &p.files {
        let q = sh_quote(f);
        s.push_str(&format!("[ -e {q} ] && printf 'F %s\\n' {q}\n"));
    }
    s.push_str(
        "read -r v 2>/dev/null < /proc/sys/net/ipv4/ip_forward && printf 'P %s\\n' \"$v\"\n",
    );
    s.push_str("n=0; while read -r l; do n=$((n+1)); done < /proc/swaps 2>/dev/null; echo \"S $((n>0 ? n-1 : 0))\"\n");
    let conf = sh_quote(&p.kubelet_config);
    s.push_str(&format!(
        "[ -f {conf} ] && grep -qE '^[[:space:]]*failSwapOn:[[:space:]]*false' {conf} && echo 'W 1'\n"
    ));
    for t in REQUIRED_TOOLS.iter().chain(OPTIONAL_TOOLS) {
        s.push_str(&format!(
            "if p=$(command -v {t}); then printf 'X {t} %s\\n' \"$p\"; else echo 'X {t}'; fi\n"
        ));
    }
    let kubelet = sh_quote(&p.kubelet_bin);
    s.push_str(&format!(
        "if [ -x {kubelet} ]; then printf 'K %s\\n' \"$({kubelet} --version 2>&1 | head -n 1)\"; fi\n"
    ));
    let sock = sh_quote(&p.cri_socket);
    s.push_str(&format!(
        "if [ ! -e {sock} ]; then echo 'C absent'; elif [ ! -S {sock} ]; then echo 'C not-socket'; \
         elif command -v crictl >/dev/null; then \
           if crictl --runtime-endpoint unix://{sock} --timeout 2s version >/dev/null 2>&1; then echo 'C ok'; else echo 'C noanswer'; fi; \
         elif command -v curl >/dev/null; then curl -s -m 2 --unix-socket {sock} http://localhost/ -o /dev/null; \
           if [ $? = 7 ]; then echo 'C noanswer'; else echo 'C ok'; fi; \
         else echo 'C unprobed'; fi\n"
    ));
    s.push_str(&format!(
        "for f in /proc/net/tcp /proc/net/tcp6; do [ -r \"$f\" ] || continue; \
         while read -r _ l _ st _; do case \"$l\" in *:{PORT_HEX}) [ \"$st\" = 0A ] && echo \"L ${{l%:*}}\";; esac; done < \"$f\"; done\n"
    ));
    s.push_str(
        "read -r u 2>/dev/null < /sys/class/dmi/id/product_uuid && printf 'Q %s\\n' \"$u\"\n",
    );
    s.push_str("for d in /sys/class/net/*; do [ -e \"$d/device\" ] && read -r a < \"$d/address\" && printf 'M %s %s\\n' \"${d##*/}\" \"$a\"; done 2>/dev/null\n");
    let cert = sh_quote(&p.kubelet_cert);
    s.push_str(&format!(
        "[ -f {cert} ] && printf 'Z %s\\n' \"$(base64 -w0 < {cert})\"\n"
    ));
    s.push_str("echo '@@ end'\n");
    s
}

pub fn parse_host(out: &str) -> Result<HostRead, String> {
    if !out.contains("@@ preflight") || !out.contains("@@ end") {
        return Err("the read ended early".into());
    }
    let mut r = HostRead::default();
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "U" => r.uid = rest.trim().parse().ok(),
            "H" => r.hostname = rest.to_string(),
            "T" => r.time_ns = rest.trim().parse().ok(),
            "F" => r.existing_files.push(rest.to_string()),
            "P" => r.ip_forward = Some(rest.trim().to_string()),
            "S" => r.swaps = rest.trim().parse().unwrap_or(0),
            "W" => r.swap_allowed = true,
            "X" => {
                let (t, p) = rest.split_once(' ').unwrap_or((rest, ""));
                r.tools
                    .push((t.to_string(), (!p.is_empty()).then(|| p.to_string())));
            }
            "K" => r.kubelet_version = Some(rest.trim().to_string()),
            "C" => r.cri = rest.trim().to_string(),
            "L" => r.port_10250.push(rest.trim().to_string()),
            "Q" => r.product_uuid = Some(rest.trim().to_string()).filter(|u| !u.is_empty()),
            "M" => {
                if let Some((i, m)) = rest.split_once(' ') {
                    r.macs.push((i.to_string(), m.trim().to_lowercase()));
                }
            }
            "Z" => {
                r.kubelet_cert = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .ok()
            }
            _ => {}
        }
    }
    Ok(r)
}

/// `0100007F` → 127.0.0.1; IPv6 addresses stay hex (only the wildcard and loopback matter).
pub fn listener_ip(hex: &str) -> String {
    if hex.len() == 8 {
        if let Ok(n) = u32::from_str_radix(hex, 16) {
            return std::net::Ipv4Addr::from(n.swap_bytes()).to_string();
        }
    }
    match hex {
        "00000000000000000000000000000000" => "::".into(),
        "00000000000000000000000001000000" => "::1".into(),
        _ => hex.to_string(),
    }
}

/// What the control plane's read gave.
#[derive(Debug, Clone, Default)]
pub struct ClusterRead {
    pub time_ns: Option<i128>,
    pub server_version: Option<String>,
    pub nodes: Vec<serde_json::Value>,
    pub ca: Option<Vec<u8>>,
    /// Why a part could not be read.
    pub errors: Vec<String>,
}

pub fn cluster_script(kubectl: &str, kubeconfig: &str, ca: &str) -> String {
    let k = format!(
        "{} --kubeconfig {}",
        sh_quote(kubectl),
        sh_quote(kubeconfig)
    );
    let ca = sh_quote(ca);
    format!(
        "LC_ALL=C; export LC_ALL\necho '@@ cluster'\nprintf 'T %s\\n' \"$(date +%s%N)\"\n\
         if o=$({k} version -o json 2>&1); then printf 'V %s\\n' \"$(printf '%s' \"$o\" | base64 -w0)\"; else printf 'E version %s\\n' \"$(printf '%s' \"$o\" | base64 -w0)\"; fi\n\
         if o=$({k} get nodes -o json 2>&1); then printf 'N %s\\n' \"$(printf '%s' \"$o\" | base64 -w0)\"; else printf 'E nodes %s\\n' \"$(printf '%s' \"$o\" | base64 -w0)\"; fi\n\
         [ -f {ca} ] && printf 'A %s\\n' \"$(base64 -w0 < {ca})\"\necho '@@ end'\n"
    )
}

pub fn parse_cluster(out: &str) -> ClusterRead {
    let mut c = ClusterRead::default();
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .unwrap_or_default()
    };
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "T" => c.time_ns = rest.trim().parse().ok(),
            "V" => {
                let v: serde_json::Value = serde_json::from_slice(&b64(rest)).unwrap_or_default();
                c.server_version = v["serverVersion"]["gitVersion"]
                    .as_str()
                    .map(str::to_string);
                if c.server_version.is_none() {
                    c.errors
                        .push("kubectl version gave no serverVersion".into());
                }
            }
            "N" => {
                let v: serde_json::Value = serde_json::from_slice(&b64(rest)).unwrap_or_default();
                c.nodes = v["items"].as_array().cloned().unwrap_or_default();
            }
            "A" => c.ca = Some(b64(rest)),
            "E" => {
                let (what, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                c.errors.push(format!(
                    "kubectl {what}: {}",
                    String::from_utf8_lossy(&b64(msg)).trim()
                ));
            }
            _ => {}
        }
    }
    if !out.contains("@@ end") {
        c.errors.push("the control plane's read ended early".into());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_script_runs_here_and_parses() {
        let p = HostParams {
            files: vec!["/etc/passwd".into(), "/nonexistent-bsctl".into()],
            kubelet_bin: "/nonexistent-bsctl/kubelet".into(),
            kubelet_config: "/nonexistent-bsctl/config.yaml".into(),
            kubelet_cert: "/nonexistent-bsctl/cert.pem".into(),
            cri_socket: "/nonexistent-bsctl/containerd.sock".into(),
        };
        // A listener of our own on 10250 when the port is free here (labs bind their own
        // 127.x addresses, so loopback's is usually free).
        let listener = std::net::TcpListener::bind("127.0.0.1:10250").ok();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(host_script(&p))
            .output()
            .unwrap();
        let r = parse_host(&String::from_utf8_lossy(&out.stdout)).unwrap();
        if listener.is_some() {
            assert!(
                r.port_10250.iter().any(|l| listener_ip(l) == "127.0.0.1"),
                "{r:?}"
            );
        }
        assert_eq!(r.existing_files, ["/etc/passwd"]);
        assert_eq!(r.cri, "absent");
        assert_eq!(r.kubelet_version, None);
        assert!(r.time_ns.is_some() && r.uid.is_some() && !r.hostname.is_empty());
        assert_eq!(r.tools.len(), REQUIRED_TOOLS.len() + OPTIONAL_TOOLS.len());
        let sh = r.tools.iter().find(|(t, _)| t == "mount").unwrap();
        assert_eq!(
            sh.1.is_some(),
            std::path::Path::new("/usr/bin/mount").exists()
                || std::path::Path::new("/bin/mount").exists()
        );
    }

    #[test]
    fn listener_addresses() {
        assert_eq!(listener_ip("0100007F"), "127.0.0.1");
        assert_eq!(listener_ip("00000000"), "0.0.0.0");
        assert_eq!(listener_ip("0250507F"), "127.80.80.2");
    }
}
