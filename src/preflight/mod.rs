//! The fleet-wide preflight before workers join: one batched read per targeted host (hosts in
//! parallel) plus one read of the control plane, then kubeadm's join checks per host and the
//! fleet-wide checks, as one table (host × check). `preflight` prints it; `apply`/`join
//! --preflight` leave the hosts with errors out of the run.

pub mod checks;
pub mod read;
pub mod render;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::engine::conn::Pool;
use crate::engine::executor::run_script;
use crate::inventory::{Host, Inventory};
use crate::transport::Become;
use checks::{Check, FleetHost, HostCx, Status};
use read::{HostParams, HostRead};

/// One host's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    pub host: String,
    /// Joined workers are left alone by the join: their join-only checks are skipped.
    pub joined: bool,
    /// Why it is joined, or why it must join.
    pub join_state: String,
    pub checks: Vec<Check>,
    /// SSH round trips the preflight made to the host (one: the batched read).
    pub round_trips: u64,
}

impl HostRow {
    /// The errors not ignored, by check name.
    pub fn errors(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Error && !c.ignored)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub hosts: Vec<HostRow>,
    /// The control-plane host read for the cluster-wide checks, if any.
    pub control_plane: Option<String>,
    /// What could not be read of the cluster.
    pub notes: Vec<String>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.checks)
            .filter(|c| c.status == status && !(status == Status::Error && c.ignored))
            .count()
    }
    pub fn ignored(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.checks)
            .filter(|c| c.ignored)
            .count()
    }
    /// Hosts with errors not ignored, each with the names of its failed checks.
    pub fn failing(&self) -> Vec<(String, Vec<String>)> {
        self.hosts
            .iter()
            .filter(|h| !h.errors().is_empty())
            .map(|h| {
                (
                    h.host.clone(),
                    h.errors().iter().map(|c| c.name.clone()).collect(),
                )
            })
            .collect()
    }
}

fn var(h: &Host, name: &str, default: &str) -> String {
    h.vars
        .get(name)
        .and_then(|v| v.as_str())
        .filter(|v| !crate::template::is_template(v))
        .unwrap_or(default)
        .to_string()
}

/// The runtime socket the kubelet is pointed at: `cri_socket`, else by `container_runtime`.
fn cri_socket(h: &Host) -> String {
    let default = match var(h, "container_runtime", "containerd").as_str() {
        "docker" => "/run/cri-dockerd.sock",
        _ => "/run/containerd/containerd.sock",
    };
    var(h, "cri_socket", default)
}

/// Runs `script` on `host` (as root), with the laptop's clock before and after.
fn read_host(
    pool: &Pool,
    host: &str,
    script: &str,
    timeout: Duration,
) -> Result<(String, i128, i128), String> {
    let slot = pool.get(host).ok_or("not in the inventory")?;
    let mut conn = slot.lock().map_err(|_| "connection poisoned")?;
    let t = conn.transport()?;
    let now = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128)
    };
    let t0 = now();
    let out =
        run_script(t, script, Some(&Become::default()), timeout).map_err(|e| e.to_string())?;
    let t1 = now();
    if out.stdout.is_empty() && !out.success() {
        return Err(format!(
            "the read failed (exit {}): {}",
            out.status,
            out.stderr_lossy().trim()
        ));
    }
    Ok((out.stdout_lossy(), t0, t1))
}

/// Offset of a clock read at the middle of [t0, t1], and the uncertainty (half the trip).
fn clock(time_ns: Option<i128>, t0: i128, t1: i128) -> Option<(i128, i128)> {
    time_ns.map(|t| (t - (t0 + t1) / 2, (t1 - t0) / 2))
}

pub struct Params<'a> {
    pub pool: &'a Pool,
    pub inventory: &'a Inventory,
    pub targets: &'a [String],
    pub control_plane: Option<&'a str>,
    pub timeout: Duration,
    pub ignore: &'a [String],
}

/// Reads every target (in parallel, at most `forks` at once) and the control plane, and
/// makes the table.
pub fn run(p: &Params<'_>, forks: usize) -> Report {
    let cp = p.control_plane.and_then(|n| p.inventory.host(n));
    let cluster_read = cp.map(|h| {
        let script = read::cluster_script(
            &var(h, "kubectl", "kubectl"),
            &var(h, "admin_kubeconfig", "/etc/kubernetes/admin.kubeconfig"),
            &var(h, "cluster_ca_cert", "/etc/kubernetes/pki/ca.crt"),
        );
        read_host(p.pool, &h.name, &script, p.timeout)
    });
    let mut notes = Vec::new();
    let (cluster, cluster_clock) = match cluster_read {
        Some(Ok((out, t0, t1))) => {
            let c = read::parse_cluster(&out);
            notes.extend(c.errors.iter().map(|e| format!("control plane: {e}")));
            let clk = clock(c.time_ns, t0, t1);
            (Some(c), clk)
        }
        Some(Err(e)) => {
            notes.push(format!("control plane unreachable: {e}"));
            (None, None)
        }
        None => {
            notes.push("no control-plane host: cluster-wide checks skipped".into());
            (None, None)
        }
    };
    let node_names: Option<Vec<String>> = cluster.as_ref().map(|c| {
        c.nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    });

    struct Target<'h> {
        host: &'h Host,
        params: HostParams,
        result: Result<(HostRead, Option<(i128, i128)>), String>,
    }
    let mut targets: Vec<Target> = p
        .targets
        .iter()
        .filter_map(|n| p.inventory.host(n))
        .map(|h| {
            let dir = var(h, "kubelet_dir", "/var/lib/kubelet");
            Target {
                host: h,
                params: HostParams {
                    files: vec![
                        "/etc/kubernetes/kubelet.conf".into(),
                        "/etc/kubernetes/bootstrap-kubelet.conf".into(),
                        format!("{dir}/kubeconfig"),
                        format!("{dir}/bootstrap-kubeconfig"),
                    ],
                    kubelet_bin: var(h, "kubelet_bin", "/usr/local/bin/kubelet"),
                    kubelet_config: format!("{dir}/config.yaml"),
                    kubelet_cert: format!("{dir}/pki/kubelet-client-current.pem"),
                    cri_socket: cri_socket(h),
                },
                result: Err(String::new()),
            }
        })
        .collect();
    for chunk in targets.chunks_mut(forks.max(1)) {
        std::thread::scope(|s| {
            for t in chunk.iter_mut() {
                s.spawn(|| {
                    let script = read::host_script(&t.params);
                    t.result = read_host(p.pool, &t.host.name, &script, p.timeout).and_then(
                        |(out, t0, t1)| {
                            let r = read::parse_host(&out)?;
                            let clk = clock(r.time_ns, t0, t1);
                            Ok((r, clk))
                        },
                    );
                });
            }
        });
    }

    let ca = cluster.as_ref().and_then(|c| c.ca.clone());
    let mut rows = Vec::new();
    let mut fleet_in = Vec::new();
    for t in &targets {
        let (r, clk) = match &t.result {
            Ok(x) => x,
            Err(e) => {
                rows.push(HostRow {
                    host: t.host.name.clone(),
                    joined: false,
                    join_state: "unknown".into(),
                    checks: vec![Check {
                        name: "Reachable".into(),
                        status: Status::Error,
                        reason: e.clone(),
                        ignored: false,
                    }],
                    round_trips: p.pool.round_trips(&t.host.name),
                });
                continue;
            }
        };
        let joined = join_state(r, &t.host.name, ca.as_deref(), node_names.as_deref());
        let address = t.host.address().unwrap_or_else(|_| t.host.name.clone());
        let cx = HostCx {
            name: &t.host.name,
            address: &address,
            files: &t.params.files,
            kubelet_bin: &t.params.kubelet_bin,
            cri_socket: &t.params.cri_socket,
            joined: joined.clone(),
        };
        rows.push(HostRow {
            host: t.host.name.clone(),
            joined: joined.is_ok(),
            join_state: match &joined {
                Ok(w) | Err(w) => w.clone(),
            },
            checks: checks::host_checks(&cx, r),
            round_trips: p.pool.round_trips(&t.host.name),
        });
        fleet_in.push(FleetHost {
            name: &t.host.name,
            read: r,
            clock: *clk,
        });
    }
    let fleet = checks::fleet_checks(&fleet_in, cluster.as_ref(), cluster_clock);
    for row in &mut rows {
        if let Some(f) = fleet.get(&row.host) {
            row.checks.extend(f.iter().cloned());
        }
        checks::apply_ignores(&mut row.checks, p.ignore);
    }
    Report {
        hosts: rows,
        control_plane: cp.map(|h| h.name.clone()),
        notes,
    }
}

/// The workers play's own rule (`kubelet_join_state`): joined = a usable client certificate
/// for the node name signed by the cluster CA, and its Node registered.
fn join_state(
    r: &HostRead,
    node: &str,
    ca: Option<&[u8]>,
    nodes: Option<&[String]>,
) -> Result<String, String> {
    let Some(pem) = &r.kubelet_cert else {
        return Err("no kubelet client certificate".into());
    };
    let Some(ca) = ca else {
        return Err("no cluster CA to check the client certificate against".into());
    };
    crate::modules::kubelet_join_state::check_cert(pem, ca, node, SystemTime::now())?;
    match nodes {
        Some(n) if !n.iter().any(|x| x == node) => Err(format!("no Node {node} in the cluster")),
        Some(_) => Ok("client certificate valid, Node registered".into()),
        None => Err("the cluster's Nodes could not be read".into()),
    }
}
