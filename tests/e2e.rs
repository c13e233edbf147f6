//! The user's main job on the lab: a seeded control plane (kube-apiserver and
//! kube-controller-manager stand-ins without bootstrap configuration) and bare workers;
//! `apply` of the shipped site playbook leaves every worker joined, checked with the real kubectl.

use crate::support::{changed_tasks, json, run, tempdir, Lab};

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

/// Whether the running process of `unit` on `host` (its pid file in the host's state dir)
/// ignores SIGPIPE, from /proc/PID/status.
fn sigpipe_ignored(lab: &Lab, host: &str, unit: &str) -> bool {
    let pid_file = lab
        .dir
        .join("hosts")
        .join(host)
        .join("state")
        .join(format!("{unit}.service.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    ignored & (1 << (libc::SIGPIPE - 1)) != 0
}

fn token_ids(lab: &Lab) -> Vec<String> {
    lab.kubectl(
        "get secrets -n kube-system --field-selector type=bootstrap.kubernetes.io/token -o name",
    )
    .lines()
    .map(|l| l.trim_start_matches("secret/bootstrap-token-").to_string())
    .collect()
}

#[test]
fn site_playbook_joins_every_worker_then_changes_nothing() {
    let Some(lab) = Lab::cluster("e2e", 3) else {
        return;
    };
    let out = tempdir("e2e");

    // A preview of the fresh lab: flag changes, RBAC, the unit and a redacted kubeconfig.
    let plan = run([
        "plan",
        "-i",
        &lab.inventory().display().to_string(),
        "--detailed-exitcode",
    ]);
    assert_eq!(plan.code, 3, "{}", plan.all());
    for want in [
        "+  --enable-bootstrap-token-auth=true",
        "+  --controllers=*,bootstrapsigner,tokencleaner",
        "ClusterRoleBinding auto-approve-csrs-for-group",
        "Role kube-public/bootstrap-signer-clusterinfo",
        "+++ /etc/systemd/system/kubelet.service (after)",
        "token: <redacted>",
        "token-secret: \"<redacted>\"",
    ] {
        assert!(
            plan.stdout.contains(want),
            "plan lacks {want:?}:\n{}",
            plan.stdout
        );
    }
    assert!(token_ids(&lab).is_empty(), "plan created a token");
    assert!(lab.ready_nodes().is_empty());
    assert!(!lab
        .ssh("cp-1", "cat /etc/systemd/system/kube-apiserver.service")
        .contains("bootstrap-token"));

    let first = apply(&lab, &out.join("1.json"), &[]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02", "worker-03"]);
    let csrs = lab.kubectl("get csr");
    // A client and a serving certificate per worker.
    assert_eq!(csrs.matches("Approved,Issued").count(), 6, "{csrs}");
    // The join token lived only for the join: cluster-info was signed for it (the workers
    // found the cluster through it), then it was deleted.
    assert!(token_ids(&lab).is_empty(), "a join token was left behind");
    let signed = crate::support::results(&json(&out.join("1.json")));
    assert!(
        signed.iter().any(|(h, t, s)| h == "worker-01"
            && t == "cluster-info signed for the join token"
            && s == "ok"),
        "{signed:?}"
    );
    // The long-running stand-ins keep SIGPIPE ignored: rustls writes with writev(2), so a
    // client hanging up mid-response would otherwise kill the server (seen as a lab API
    // server vanishing without a word and nodes never Ready when the machine was busy).
    for (host, unit) in [
        ("cp-1", "kube-apiserver"),
        ("cp-1", "kube-controller-manager"),
        ("worker-01", "kubelet"),
    ] {
        assert!(sigpipe_ignored(&lab, host, unit), "{unit} on {host}");
    }
    let kubeconfig = lab.ssh(
        "worker-01",
        "stat -c %a /var/lib/kubelet/bootstrap-kubeconfig",
    );
    assert_eq!(kubeconfig.trim(), "600");
    // Every kubeconfig written loads in the real kubectl.
    for path in [
        "/var/lib/kubelet/bootstrap-kubeconfig",
        "/var/lib/kubelet/kubeconfig",
    ] {
        let view = lab.ssh("worker-02", &format!("kubectl config view --kubeconfig {path} -o jsonpath='{{.clusters[0].cluster.server}}'"));
        assert!(view.starts_with("https://"), "{path}: {view}");
    }

    let second = apply(&lab, &out.join("2.json"), &[]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        changed_tasks(&json(&out.join("2.json"))),
        Vec::<(String, String)>::new(),
        "{}",
        second.stdout
    );
    assert!(token_ids(&lab).is_empty(), "the second run made a token");
}

#[test]
fn join_onboards_only_the_limited_worker_with_a_token_for_that_run_only() {
    let Some(lab) = Lab::cluster("join", 3) else {
        return;
    };
    let out = tempdir("join");
    let inv = lab.inventory().display().to_string();
    let r = run(["apply", "-i", &inv, "--limit", "cp-1,worker-01,worker-02"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02"]);
    let before = token_ids(&lab);
    let before_w1 = lab.tree_hash("worker-01");

    let report = out.join("join.json");
    let r = run([
        "join",
        "-i",
        &inv,
        "--limit",
        "worker-03",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02", "worker-03"]);
    let touched: std::collections::BTreeSet<String> = changed_tasks(&json(&report))
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    // The token is made and deleted through cp-1 for worker-03, and reported there.
    assert_eq!(touched.into_iter().collect::<Vec<_>>(), ["worker-03"]);
    assert_eq!(lab.tree_hash("worker-01"), before_w1);
    // The join's own token is gone, as after the apply.
    assert_eq!(token_ids(&lab), before);
    assert!(before.is_empty(), "{before:?}");
}

#[test]
fn site_joins_every_worker_with_fewer_forks_than_workers() {
    // With --forks below the number of workers, some workers start a play only when others
    // have finished it, while the run_once readiness check of the first ones waits for every
    // node: every kubelet must have been started before that play begins.
    let Some(lab) = Lab::cluster("forks", 3) else {
        return;
    };
    let inv = lab.inventory().display().to_string();
    let r = run(["apply", "-i", &inv, "--forks", "2", "-e", "join_timeout=30"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02", "worker-03"]);
    let report = tempdir("forks").join("2.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        "--forks",
        "2",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        changed_tasks(&json(&report)),
        Vec::<(String, String)>::new(),
        "{}",
        r.stdout
    );
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    let Some(lab) = Lab::cluster("verify", 1) else {
        return;
    };
    let r = run(["apply", "-i", &lab.inventory().display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = tempdir("verify");
    for (host, unit) in [
        ("worker-01", "kubelet.service"),
        ("cp-1", "kube-apiserver.service"),
        ("cp-1", "kube-controller-manager.service"),
    ] {
        let text = lab.ssh(host, &format!("cat /etc/systemd/system/{unit}"));
        // verify needs the ExecStart binary: the same unit pointed at an existing one.
        let text = text
            .replace("/usr/local/bin/kubelet", "/bin/true")
            .replace("/usr/local/bin/kube-apiserver", "/bin/true")
            .replace("/usr/local/bin/kube-controller-manager", "/bin/true")
            .replace("Requires=containerd.service", "")
            .replace("After=containerd.service", "");
        let path = d.join(unit);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(unit)).collect();
        assert!(ours.is_empty(), "{unit}: {stderr}");
    }
}

fn token_of(lab: &Lab, id: &str) -> String {
    let s: serde_json::Value = serde_json::from_str(&lab.kubectl(&format!(
        "get secret -n kube-system bootstrap-token-{id} -o json"
    )))
    .unwrap();
    let secret = s["data"]["token-secret"].as_str().unwrap();
    use base64::Engine as _;
    let secret = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap(),
    )
    .unwrap();
    format!("{id}.{secret}")
}

#[test]
fn token_commands_and_discovery_against_the_lab_cluster() {
    let Some(lab) = Lab::cluster("tokens", 1) else {
        return;
    };
    let inv = lab.inventory().display().to_string();
    let r = run(["apply", "-i", &inv]);
    assert_eq!(r.code, 0, "{}", r.all());
    // The site's join token lived only for its join.
    let site = token_ids(&lab);
    assert!(site.is_empty(), "{site:?}");

    let created = run([
        "token",
        "create",
        "-i",
        &inv,
        "--ttl",
        "2h",
        "--groups",
        "system:bootstrappers:worker",
        "--print-join-command",
    ]);
    assert_eq!(created.code, 0, "{}", created.all());
    let new = created
        .stdout
        .lines()
        .find(|l| l.len() == 23 && l.as_bytes()[6] == b'.')
        .expect("token printed")
        .to_string();
    let pin = run([
        "pki",
        "ca-hash",
        &lab.dir.join("ca.crt").display().to_string(),
    ]);
    assert_eq!(pin.code, 0);
    let pin = pin.stdout.trim().to_string();
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");
    assert!(
        created.stdout.contains(&format!(
            "--token {new} --discovery-token-ca-cert-hash {pin}"
        )),
        "{}",
        created.stdout
    );

    let list = run(["token", "list", "-i", &inv]);
    assert_eq!(list.code, 0, "{}", list.all());
    assert!(list.stdout.starts_with("TOKEN "), "{}", list.stdout);
    assert!(
        list.stdout.contains(&format!("{}.<redacted>", &new[..6])),
        "{}",
        list.stdout
    );
    assert!(
        !list.stdout.contains(&new[7..]),
        "secret shown: {}",
        list.stdout
    );

    // Discovery as kubeadm does it, from a file and from the server, with the standing token
    // once bootstrapsigner has signed cluster-info for it.
    let jws = format!("jws-kubeconfig-{}", &new[..6]);
    for _ in 0..120 {
        if lab
            .kubectl("get configmap cluster-info -n kube-public -o yaml")
            .contains(&jws)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let cm = lab.dir.join("cluster-info.yaml");
    std::fs::write(
        &cm,
        lab.kubectl("get configmap cluster-info -n kube-public -o yaml"),
    )
    .unwrap();
    let site_token = token_of(&lab, &new[..6]);
    assert_eq!(site_token, new);
    let cp = &lab.hosts.iter().find(|(n, _)| n == "cp-1").unwrap().1;
    let ok = run([
        "discovery",
        "verify",
        "--token",
        &site_token,
        "--cluster-info",
        &cm.display().to_string(),
        "--ca-cert-hash",
        &pin,
    ]);
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert!(
        ok.stdout
            .starts_with(&format!("verified: https://{cp}:6443")),
        "{}",
        ok.stdout
    );
    let url = format!("https://{cp}:6443");
    let ok = run([
        "discovery",
        "verify",
        "--token",
        &site_token,
        "--server",
        &url,
        "--ca-cert-hash",
        &pin,
    ]);
    assert_eq!(ok.code, 0, "{}", ok.all());
    let bad_pin = run([
        "discovery",
        "verify",
        "--token",
        &site_token,
        "--cluster-info",
        &cm.display().to_string(),
        "--ca-cert-hash",
        &format!("sha256:{}", "0".repeat(64)),
    ]);
    assert_eq!(bad_pin.code, 1);
    assert!(
        bad_pin.stdout.contains("is not pinned"),
        "{}",
        bad_pin.stdout
    );
    let wrong = format!("{}.{}", &new[..6], "0000000000000000");
    let bad_sig = run([
        "discovery",
        "verify",
        "--token",
        &wrong,
        "--cluster-info",
        &cm.display().to_string(),
        "--ca-cert-hash",
        &pin,
    ]);
    assert_eq!(bad_sig.code, 1);
    assert!(
        bad_sig.stdout.contains("failed to verify JWS signature"),
        "{}",
        bad_sig.stdout
    );

    let del = run(["token", "delete", "-i", &inv, &new[..6]]);
    assert_eq!(del.code, 0, "{}", del.all());
    assert_eq!(token_ids(&lab), site);
}
