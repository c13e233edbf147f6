//! Day two on the lab: a fleet re-applied for months. Joined workers are left alone, a
//! bootstrap token exists only while a join needs it, a failed control plane stops the run
//! before the workers, and a worker that lost its client certificate joins again alone.

use std::collections::BTreeSet;

use crate::support::{changed_tasks, json, results, run, tempdir, Lab};

fn apply(lab: &Lab, report: &std::path::Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "apply".to_string(),
        "-i".into(),
        lab.inventory().display().to_string(),
        "--output".into(),
        "json".into(),
        report.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run(args)
}

/// Every bootstrap token Secret in the cluster, as `kubectl -n kube-system get secrets` sees.
fn token_secrets(lab: &Lab) -> Vec<String> {
    lab.kubectl("-n kube-system get secrets -o name")
        .lines()
        .filter(|l| l.starts_with("secret/bootstrap-token-"))
        .map(str::to_string)
        .collect()
}

fn changed_hosts(report: &std::path::Path) -> Vec<String> {
    let hosts: BTreeSet<String> = changed_tasks(&json(report))
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    hosts.into_iter().collect()
}

const CERT_WAIT: &str = "the kubelet of a rejoining worker holds its new client certificate";

/// (host, status) of every result of `task` in the report, by host.
fn statuses(report: &std::path::Path, task: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = results(&json(report))
        .into_iter()
        .filter(|(_, t, _)| t == task)
        .map(|(host, _, status)| (host, status))
        .collect();
    out.sort();
    out
}

fn recap_changed(report: &std::path::Path) -> Vec<(String, u64)> {
    let r = json(report);
    let mut out: Vec<(String, u64)> = r["recap"]
        .as_object()
        .expect("recap")
        .iter()
        .map(|(h, v)| (h.clone(), v["changed"].as_u64().unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_failed_control_plane_stops_the_run_before_the_workers() {
    let Some(lab) = Lab::cluster("failfast", 1) else {
        return;
    };
    let out = tempdir("failfast");
    let report = out.join("r.json");
    let r = apply(
        &lab,
        &report,
        &[
            "-e",
            "apiserver_config=/etc/systemd/system/no-such-apiserver.service",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains(
            "stopped: play \"Control plane flags for bootstrap tokens and CSR signing\" failed on cp-1 (any_errors_fatal): not started: \"The cluster CA\", \"RBAC and cluster-info for bootstrapping kubelets\", \"Kernel prerequisites\", \"Binaries\""
        ),
        "{}",
        r.stdout
    );
    let results = json(&report);
    let worker_tasks: Vec<&serde_json::Value> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["host"] == "worker-01")
        .collect();
    assert!(worker_tasks.is_empty(), "workers ran: {worker_tasks:?}");
    assert!(token_secrets(&lab).is_empty());
}

#[test]
fn joined_workers_are_left_alone_and_tokens_live_only_for_a_join() {
    let Some(lab) = Lab::cluster("daytwo", 2) else {
        return;
    };
    let out = tempdir("daytwo");
    let inv = lab.inventory().display().to_string();

    // The preview names the token it would make, and makes none.
    let plan = run(["plan", "-i", &inv]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout
            .contains("(a join token for 2 workers (worker-01, worker-02)) (after)"),
        "{}",
        plan.stdout
    );
    assert!(token_secrets(&lab).is_empty(), "plan created a token");

    // First apply: both join, and no token is left behind.
    let first = out.join("first.json");
    let r = apply(&lab, &first, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02"]);
    assert_eq!(token_secrets(&lab), Vec::<String>::new());
    let made: Vec<(String, String)> = changed_tasks(&json(&first))
        .into_iter()
        .filter(|(_, t)| t.contains("join token"))
        .collect();
    assert_eq!(
        made,
        [
            (
                "worker-01".to_string(),
                "a join token for the workers that must join".to_string()
            ),
            (
                "worker-01".to_string(),
                "the join token is deleted (the joins are over, done or failed)".to_string()
            )
        ]
    );

    // Fresh workers were not registered: the wait for Ready covered them, and none looked
    // for its client certificate.
    assert_eq!(
        statuses(&first, CERT_WAIT),
        [
            ("worker-01".to_string(), "skipped".to_string()),
            ("worker-02".to_string(), "skipped".to_string())
        ]
    );

    // Again: nothing changes anywhere.
    let second = out.join("second.json");
    let r = apply(&lab, &second, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        recap_changed(&second),
        [
            ("cp-1".into(), 0),
            ("worker-01".into(), 0),
            ("worker-02".into(), 0)
        ],
        "{}",
        r.stdout
    );
    assert!(token_secrets(&lab).is_empty());

    // A standing token (as `token create` makes) is neither used nor deleted; with every
    // token gone, still nothing changes and no token is made.
    let t = run(["token", "create", "-i", &inv, "--ttl", "2h"]);
    assert_eq!(t.code, 0, "{}", t.all());
    let standing = token_secrets(&lab);
    assert_eq!(standing.len(), 1);
    let third = out.join("third.json");
    let r = apply(&lab, &third, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(changed_hosts(&third).is_empty(), "{}", r.stdout);
    assert_eq!(token_secrets(&lab), standing);
    lab.kubectl(&format!("-n kube-system delete {}", standing[0]));
    let fourth = out.join("fourth.json");
    let r = apply(&lab, &fourth, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(changed_hosts(&fourth).is_empty(), "{}", r.stdout);
    assert!(token_secrets(&lab).is_empty());

    // Drift check: nothing pending.
    let p = run(["plan", "-i", &inv, "--detailed-exitcode"]);
    assert_eq!(p.code, 0, "{}", p.all());

    // worker-02 loses its client certificate: it alone must join, and joins again.
    lab.ssh(
        "worker-02",
        "rm -f /var/lib/kubelet/pki/kubelet-client-current.pem",
    );
    let w1_before = lab.tree_hash("worker-01");
    let plan = run(["plan", "-i", &inv]);
    assert!(
        plan.stdout
            .contains("(a join token for 1 worker (worker-02)) (after)"),
        "{}",
        plan.stdout
    );
    let fifth = out.join("fifth.json");
    let r = apply(&lab, &fifth, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(changed_hosts(&fifth), ["worker-02"], "{}", r.stdout);
    let w2: Vec<String> = changed_tasks(&json(&fifth))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(
        w2.contains(
            &"bootstrap-kubeconfig (server, CA, token), only on a worker that must join"
                .to_string()
        ) && w2.contains(&"restart kubelet".to_string()),
        "{w2:?}"
    );
    assert_eq!(lab.tree_hash("worker-01"), w1_before);
    // Its Node was registered (and may have looked Ready from before): its join waited for
    // the kubelet's new client certificate.
    assert_eq!(
        statuses(&fifth, CERT_WAIT),
        [
            ("worker-01".to_string(), "skipped".to_string()),
            ("worker-02".to_string(), "ok".to_string())
        ]
    );
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02"]);
    assert!(token_secrets(&lab).is_empty());
    lab.ssh(
        "worker-02",
        "test -s /var/lib/kubelet/pki/kubelet-client-current.pem",
    );

    // `join --limit` is the same flow: a joined worker is left alone.
    let sixth = out.join("sixth.json");
    let r = run([
        "join",
        "-i",
        &inv,
        "--limit",
        "worker-01",
        "--output",
        "json",
        &sixth.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(changed_hosts(&sixth).is_empty(), "{}", r.stdout);
    assert!(token_secrets(&lab).is_empty());
}
