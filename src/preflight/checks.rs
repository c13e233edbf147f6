//! The checks, pure: each host's own (kubeadm's join checks, by kubeadm's names) from its read,
//! then the fleet-wide ones no single host can make (duplicate hostnames, product_uuids and
//! MACs across the targeted hosts and the registered Nodes, kubelet version skew and clock
//! skew against the control plane).

use std::collections::BTreeMap;

use serde::Serialize;

use super::read::{listener_ip, ClusterRead, HostRead, OPTIONAL_TOOLS, REQUIRED_TOOLS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub reason: String,
    /// An error the operator chose to ignore (`--ignore-preflight-errors`): shown, not counted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

fn check(name: &str, status: Status, reason: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        status,
        reason: reason.into(),
        ignored: false,
    }
}

/// What the checks of one host need besides its read.
pub struct HostCx<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub files: &'a [String],
    pub kubelet_bin: &'a str,
    pub cri_socket: &'a str,
    /// `Ok(reason)`: joined, left alone; `Err(reason)`: must join.
    pub joined: Result<String, String>,
}

/// kubeadm names a file check after the path: `/etc/kubernetes/kubelet.conf` →
/// `FileAvailable--etc-kubernetes-kubelet.conf`.
pub fn file_check_name(kind: &str, path: &str) -> String {
    format!("{kind}{}", path.replace('/', "-"))
}

pub fn host_checks(cx: &HostCx<'_>, r: &HostRead) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match r.uid {
        Some(0) => check("IsPrivilegedUser", Status::Ok, "root"),
        Some(u) => check(
            "IsPrivilegedUser",
            Status::Error,
            format!("running as uid {u}, not root (set become)"),
        ),
        None => check("IsPrivilegedUser", Status::Error, "could not tell the user"),
    });
    for f in cx.files {
        let name = file_check_name("FileAvailable-", f);
        let exists = r.existing_files.contains(f);
        out.push(match (&cx.joined, exists) {
            (Ok(why), _) => check(&name, Status::Skipped, format!("already joined ({why})")),
            (Err(_), false) => check(&name, Status::Ok, "absent"),
            (Err(why), true) => check(
                &name,
                Status::Warning,
                format!(
                    "{f} exists from an earlier join, which is void ({why}); the join replaces it"
                ),
            ),
        });
    }
    let ipf = "FileContent--proc-sys-net-ipv4-ip_forward";
    out.push(match r.ip_forward.as_deref() {
        Some("1") => check(ipf, Status::Ok, "1"),
        Some(v) => check(
            ipf,
            Status::Error,
            format!("/proc/sys/net/ipv4/ip_forward contents are not set to 1 ({v}; kernel.yaml sets it)"),
        ),
        None => check(ipf, Status::Error, "/proc/sys/net/ipv4/ip_forward does not exist"),
    });
    out.push(match r.cri.as_str() {
        "ok" => check("CRI", Status::Ok, format!("{} answers", cx.cri_socket)),
        "unprobed" => check(
            "CRI",
            Status::Warning,
            format!(
                "{} is a socket; not probed (neither crictl nor curl on the host)",
                cx.cri_socket
            ),
        ),
        "noanswer" => check(
            "CRI",
            Status::Error,
            format!(
                "container runtime is not running: {} does not answer",
                cx.cri_socket
            ),
        ),
        "not-socket" => check(
            "CRI",
            Status::Error,
            format!("{} is not a socket", cx.cri_socket),
        ),
        _ => check(
            "CRI",
            Status::Error,
            format!("container runtime is not running: no {}", cx.cri_socket),
        ),
    });
    out.push(match (r.swaps, r.swap_allowed) {
        (0, _) => check("Swap", Status::Ok, "no active swap"),
        (n, true) => check(
            "Swap",
            Status::Ok,
            format!("{n} swap device(s) on; the kubelet config has failSwapOn: false"),
        ),
        (n, false) => check(
            "Swap",
            Status::Warning,
            format!("{n} swap device(s) on; the kubelet fails unless failSwapOn is false (the workers play turns swap off)"),
        ),
    });
    for (tool, path) in &r.tools {
        let required = REQUIRED_TOOLS.contains(&tool.as_str());
        if !required && !OPTIONAL_TOOLS.contains(&tool.as_str()) {
            continue;
        }
        let name = format!("FileExisting-{tool}");
        out.push(match path {
            Some(p) => check(&name, Status::Ok, p.clone()),
            None if required => check(
                &name,
                Status::Error,
                format!("{tool} not found in system path"),
            ),
            None => check(
                &name,
                Status::Warning,
                format!("{tool} not found in system path"),
            ),
        });
    }
    out.push(hostname_check(cx.name, &r.hostname));
    out.push(match (&cx.joined, &r.kubelet_version) {
        (_, None) => check(
            "KubeletVersion",
            Status::Error,
            format!("no kubelet at {}", cx.kubelet_bin),
        ),
        (_, Some(v)) => match parse_version(v) {
            Some(_) => check("KubeletVersion", Status::Ok, v.clone()),
            None => check(
                "KubeletVersion",
                Status::Error,
                format!("{} --version printed {v:?}", cx.kubelet_bin),
            ),
        },
    });
    let mine = |ip: &str| ["0.0.0.0", "::", "127.0.0.1", "::1", cx.address].contains(&ip);
    let busy: Vec<String> = r
        .port_10250
        .iter()
        .map(|h| listener_ip(h))
        .filter(|ip| mine(ip))
        .collect();
    out.push(match (&cx.joined, busy.is_empty()) {
        // The join starts no kubelet on a joined worker: its own kubelet may hold the port.
        (Ok(why), _) => check(
            "Port-10250",
            Status::Skipped,
            format!("already joined ({why})"),
        ),
        (_, true) => check("Port-10250", Status::Ok, "free"),
        (Err(_), false) => check(
            "Port-10250",
            Status::Error,
            format!("port 10250 is in use ({})", busy.join(", ")),
        ),
    });
    out
}

/// kubeadm's Hostname check: the name must be a valid DNS-1123 subdomain (the Node name);
/// a hostname other than the inventory name only warns, since the shipped kubelet unit
/// registers the inventory name (`--hostname-override`).
fn hostname_check(inventory_name: &str, hostname: &str) -> Check {
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    if !valid(inventory_name) {
        check(
            "Hostname",
            Status::Error,
            format!("{inventory_name:?} is not a valid node name (lower case RFC 1123 subdomain)"),
        )
    } else if hostname != inventory_name {
        check(
            "Hostname",
            Status::Warning,
            format!("hostname {hostname:?} differs from the node name {inventory_name:?}"),
        )
    } else {
        check("Hostname", Status::Ok, hostname)
    }
}

/// `Kubernetes v1.30.2` / `v1.32.0-bootstrapctl-lab-stand-in` → (1, 30).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.split_whitespace().find(|w| w.starts_with('v'))?;
    let mut it = v[1..].split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Minor versions a kubelet may be older than the API server: three since 1.28, two before.
pub fn supported_skew(api_minor: u32) -> u32 {
    if api_minor >= 28 {
        3
    } else {
        2
    }
}

/// Clock offset beyond which a warning, and beyond which an error: the controller-manager
/// backdates signed certificates by five minutes, so a clock further ahead of the control
/// plane than that sees its new client certificate as not yet valid.
const CLOCK_WARN_NS: i128 = 2_000_000_000;
const CLOCK_ERROR_NS: i128 = 300_000_000_000;

/// One targeted host as the fleet checks see it.
pub struct FleetHost<'a> {
    pub name: &'a str,
    pub read: &'a HostRead,
    /// Host clock minus the laptop's at the middle of the read, and half the read's round trip.
    pub clock: Option<(i128, i128)>,
}

/// The fleet-wide checks for every host, by host.
pub fn fleet_checks(
    hosts: &[FleetHost<'_>],
    cluster: Option<&ClusterRead>,
    cluster_clock: Option<(i128, i128)>,
) -> BTreeMap<String, Vec<Check>> {
    let mut out: BTreeMap<String, Vec<Check>> = BTreeMap::new();
    let group = |key: &dyn Fn(&FleetHost) -> Vec<String>| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in hosts {
            for k in key(h) {
                m.entry(k).or_default().push(h.name.to_string());
            }
        }
        m
    };
    let hostnames = group(&|h| vec![h.read.hostname.clone()]);
    let uuids = group(&|h| {
        h.read
            .product_uuid
            .iter()
            .map(|u| u.to_lowercase())
            .collect()
    });
    let macs = group(&|h| h.read.macs.iter().map(|(_, m)| m.clone()).collect());
    let nodes: Vec<(String, String)> = cluster
        .map(|c| {
            c.nodes
                .iter()
                .map(|n| {
                    (
                        n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        n["status"]["nodeInfo"]["systemUUID"]
                            .as_str()
                            .unwrap_or("")
                            .to_lowercase(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let api = cluster.and_then(|c| c.server_version.clone());
    for h in hosts {
        let mut checks = Vec::new();
        let others = |m: &BTreeMap<String, Vec<String>>, k: &str| -> Vec<String> {
            m.get(k)
                .map(|v| v.iter().filter(|n| *n != h.name).cloned().collect())
                .unwrap_or_default()
        };
        let dup = others(&hostnames, &h.read.hostname);
        checks.push(if dup.is_empty() {
            check("DuplicateHostname", Status::Ok, "unique")
        } else {
            check(
                "DuplicateHostname",
                Status::Warning,
                format!(
                    "hostname {:?} is also {}'s (Nodes register their inventory names)",
                    h.read.hostname,
                    dup.join(", ")
                ),
            )
        });
        checks.push(match &h.read.product_uuid {
            None => check(
                "DuplicateProductUUID",
                Status::Warning,
                "no /sys/class/dmi/id/product_uuid",
            ),
            Some(u) => {
                let lu = u.to_lowercase();
                let dup = others(&uuids, &lu);
                let node = nodes
                    .iter()
                    .find(|(n, id)| !id.is_empty() && *id == lu && n != h.name);
                if !dup.is_empty() {
                    check(
                        "DuplicateProductUUID",
                        Status::Error,
                        format!(
                            "product_uuid {u} is also {}'s (cloned machines?)",
                            dup.join(", ")
                        ),
                    )
                } else if let Some((n, _)) = node {
                    check(
                        "DuplicateProductUUID",
                        Status::Error,
                        format!("product_uuid {u} is registered as Node {n}"),
                    )
                } else {
                    check("DuplicateProductUUID", Status::Ok, u.clone())
                }
            }
        });
        let mut mac_dups = Vec::new();
        for (iface, m) in &h.read.macs {
            let d = others(&macs, m);
            if !d.is_empty() {
                mac_dups.push(format!("{iface} {m} is also {}'s", d.join(", ")));
            }
        }
        checks.push(if mac_dups.is_empty() {
            check(
                "DuplicateMAC",
                Status::Ok,
                format!("{} interface(s), unique", h.read.macs.len()),
            )
        } else {
            check("DuplicateMAC", Status::Error, mac_dups.join("; "))
        });
        let kubelet = h.read.kubelet_version.as_deref().and_then(parse_version);
        checks.push(match (kubelet, api.as_deref().and_then(parse_version)) {
            (None, _) => check("KubeletVersionSkew", Status::Skipped, "no kubelet version"),
            (_, None) => check("KubeletVersionSkew", Status::Skipped, "no API server version"),
            (Some(k), Some(a)) => {
                let api = api.clone().unwrap_or_default();
                if k > a {
                    check(
                        "KubeletVersionSkew",
                        Status::Error,
                        format!("kubelet v{}.{} is newer than the API server {api}", k.0, k.1),
                    )
                } else if k.0 != a.0 || a.1 - k.1 > supported_skew(a.1) {
                    check(
                        "KubeletVersionSkew",
                        Status::Error,
                        format!(
                            "kubelet v{}.{} is more than {} minor versions older than the API server {api}",
                            k.0, k.1, supported_skew(a.1)
                        ),
                    )
                } else {
                    check("KubeletVersionSkew", Status::Ok, format!("v{}.{} against {api}", k.0, k.1))
                }
            }
        });
        checks.push(match (h.clock, cluster_clock) {
            (Some((ho, hu)), Some((co, cu))) => {
                let skew = ho - co;
                let beyond = skew.abs() - hu - cu;
                let secs = skew as f64 / 1e9;
                if beyond > CLOCK_ERROR_NS {
                    check("ClockSkew", Status::Error, format!("{secs:+.1} s against the control plane (certificates it is issued are not valid yet or too soon expired)"))
                } else if beyond > CLOCK_WARN_NS {
                    check("ClockSkew", Status::Warning, format!("{secs:+.1} s against the control plane"))
                } else {
                    check("ClockSkew", Status::Ok, format!("{secs:+.3} s against the control plane"))
                }
            }
            _ => check("ClockSkew", Status::Skipped, "no control plane clock to compare with"),
        });
        out.insert(h.name.to_string(), checks);
    }
    out
}

/// Marks the errors named in `ignore` (kubeadm's `--ignore-preflight-errors`, names compared
/// case-insensitively; `all` ignores every error) as ignored: still shown, not counted.
pub fn apply_ignores(checks: &mut [Check], ignore: &[String]) {
    let all = ignore.iter().any(|i| i.eq_ignore_ascii_case("all"));
    for c in checks {
        if c.status == Status::Error
            && (all || ignore.iter().any(|i| i.eq_ignore_ascii_case(&c.name)))
        {
            c.ignored = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, uuid: &str, mac: &str) -> HostRead {
        HostRead {
            hostname: name.into(),
            product_uuid: Some(uuid.into()),
            macs: vec![("eth0".into(), mac.into())],
            kubelet_version: Some("Kubernetes v1.29.3".into()),
            ..Default::default()
        }
    }

    #[test]
    fn duplicates_and_skew_across_the_fleet() {
        let a = read("w1", "U-1", "02:00:00:00:00:01");
        let mut b = read("w2", "u-1", "02:00:00:00:00:01");
        b.kubelet_version = Some("Kubernetes v1.28.3".into());
        let mut c = read("w3", "U-3", "02:00:00:00:00:03");
        c.kubelet_version = Some("Kubernetes v1.33.0".into());
        let cluster = ClusterRead {
            server_version: Some("v1.32.0".into()),
            nodes: vec![
                serde_json::json!({"metadata": {"name": "old"}, "status": {"nodeInfo": {"systemUUID": "U-3"}}}),
            ],
            ..Default::default()
        };
        let hosts = [
            FleetHost {
                name: "w1",
                read: &a,
                clock: Some((0, 0)),
            },
            FleetHost {
                name: "w2",
                read: &b,
                clock: Some((400_000_000_000, 1_000_000)),
            },
            FleetHost {
                name: "w3",
                read: &c,
                clock: None,
            },
        ];
        let out = fleet_checks(&hosts, Some(&cluster), Some((0, 0)));
        let get = |h: &str, n: &str| out[h].iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(get("w1", "DuplicateProductUUID").status, Status::Error);
        assert!(get("w1", "DuplicateProductUUID").reason.contains("w2"));
        assert_eq!(
            get("w3", "DuplicateProductUUID").reason,
            "product_uuid U-3 is registered as Node old"
        );
        assert_eq!(get("w2", "DuplicateMAC").status, Status::Error);
        assert_eq!(get("w3", "DuplicateMAC").status, Status::Ok);
        assert_eq!(get("w1", "KubeletVersionSkew").status, Status::Ok);
        assert!(get("w2", "KubeletVersionSkew")
            .reason
            .contains("more than 3 minor versions older"));
        assert_eq!(get("w3", "KubeletVersionSkew").status, Status::Error);
        assert_eq!(get("w2", "ClockSkew").status, Status::Error);
        assert_eq!(get("w1", "ClockSkew").status, Status::Ok);
        assert_eq!(get("w3", "ClockSkew").status, Status::Skipped);
    }

    #[test]
    fn skew_limits_follow_the_version_policy() {
        assert_eq!(parse_version("Kubernetes v1.20.2"), Some((1, 20)));
        assert_eq!(
            parse_version("v1.32.0-bootstrapctl-lab-stand-in"),
            Some((1, 32))
        );
        assert_eq!(supported_skew(27), 2);
        assert_eq!(supported_skew(28), 3);
    }

    #[test]
    fn ignores_are_by_name_or_all() {
        let mut c = vec![
            check("CRI", Status::Error, "x"),
            check("Swap", Status::Warning, "y"),
            check("Port-10250", Status::Error, "z"),
        ];
        apply_ignores(&mut c, &["cri".into()]);
        assert!(c[0].ignored && !c[1].ignored && !c[2].ignored);
        apply_ignores(&mut c, &["all".into()]);
        assert!(c[2].ignored && !c[1].ignored);
    }
}
