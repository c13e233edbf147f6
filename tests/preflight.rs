//! `preflight` and the kernel prerequisites on lab workers: the fleet table with the errors a
//! bare-ish lab host has (ip_forward off in the host's own kernel view, no container runtime,
//! two hosts with one product_uuid, the tools this machine lacks), `--ignore-preflight-errors`,
//! `apply --preflight` leaving failing workers out, then `kernel.yaml` setting modules and
//! sysctls per host with an exact `--check`, a second apply changing nothing, and the
//! machine's own kernel settings untouched.

use std::path::Path;

use crate::support::{changed_tasks, json, run, tempdir, Lab};

fn on_path(tool: &str) -> bool {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .any(|d| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(Path::new(d).join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn status<'a>(report: &'a serde_json::Value, host: &str, check: &str) -> &'a serde_json::Value {
    let h = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("no host {host} in {report}"));
    h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("no check {check} for {host}"))
}

fn machine(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn preflight_table_then_kernel_prerequisites_per_host() {
    let Some(lab) = Lab::up_with_args(
        "preflight",
        1,
        2,
        &[
            "--same-product-uuid".as_ref(),
            "worker-01,worker-02".as_ref(),
        ],
    ) else {
        return;
    };
    let inv = lab.inventory().display().to_string();
    let forward_before = machine("/proc/sys/net/ipv4/ip_forward");
    let bridge_before = machine("/proc/sys/net/bridge/bridge-nf-call-iptables");

    // The table: one row per host and check, and exit 1.
    let r = run(["preflight", "-i", &inv]);
    assert_eq!(r.code, 1, "{}", r.all());
    for w in ["worker-01", "worker-02"] {
        let row = |check: &str, st: &str| {
            r.stdout.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 3 && f[0] == w && f[1] == check && f[2] == st
            })
        };
        assert!(
            row("FileContent--proc-sys-net-ipv4-ip_forward", "error"),
            "{}",
            r.stdout
        );
        assert!(row("CRI", "error"), "{}", r.stdout);
        assert!(row("DuplicateProductUUID", "error"), "{}", r.stdout);
        assert!(row("IsPrivilegedUser", "ok"), "{}", r.stdout);
        assert!(
            row("FileAvailable--var-lib-kubelet-bootstrap-kubeconfig", "ok"),
            "{}",
            r.stdout
        );
        assert!(row("ClockSkew", "ok"), "{}", r.stdout);
        for t in ["ip", "iptables", "mount", "nsenter"] {
            let want = if on_path(t) { "ok" } else { "error" };
            assert!(row(&format!("FileExisting-{t}"), want), "{t}: {}", r.stdout);
        }
        for t in ["ebtables", "ethtool", "socat", "tc", "touch"] {
            let want = if on_path(t) { "ok" } else { "warning" };
            assert!(row(&format!("FileExisting-{t}"), want), "{t}: {}", r.stdout);
        }
    }
    assert!(r.stdout.contains("is also worker-02's"), "{}", r.stdout);
    assert!(
        r.stdout.contains("preflight: 2 host(s) (0 joined)"),
        "{}",
        r.stdout
    );

    // JSON carries the table.
    let j = run(["preflight", "-i", &inv, "--output", "json"]);
    assert_eq!(j.code, 1, "{}", j.all());
    let report: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(status(&report, "worker-01", "CRI")["status"], "error");
    assert_eq!(status(&report, "worker-02", "DuplicateMAC")["status"], "ok");
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["round_trips"], 1, "one batched read per host: {h}");
    }
    let failing = report["summary"]["failing"].as_array().unwrap();
    assert_eq!(failing.len(), 2, "{report}");

    // Ignoring by name (any case), then all.
    let mut names = vec![
        "cri".to_string(),
        "FileContent--proc-sys-net-ipv4-ip_forward".into(),
        "DuplicateProductUUID".into(),
    ];
    names.extend(
        ["ip", "iptables", "mount", "nsenter"]
            .iter()
            .filter(|t| !on_path(t))
            .map(|t| format!("FileExisting-{t}")),
    );
    let ignore = format!("--ignore-preflight-errors={}", names.join(","));
    let r = run(["preflight", "-i", &inv, &ignore]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("worker-01  CRI"), "{}", r.stdout);
    assert!(r
        .stdout
        .lines()
        .any(|l| l.contains("CRI") && l.contains("ignored")));
    let r = run(["preflight", "-i", &inv, "--ignore-preflight-errors=CRI"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let r = run(["preflight", "-i", &inv, "--ignore-preflight-errors=all"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // The kernel play, previewed: nothing changes on any host.
    let kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/kernel.yaml");
    let kernel = kernel.display().to_string();
    let out = tempdir("preflight-json");
    let before: Vec<String> = ["worker-01", "worker-02"]
        .iter()
        .map(|h| lab.tree_hash(h))
        .collect();
    let plan_json = out.join("plan.json");
    let plan = run([
        "plan",
        "-i",
        &inv,
        &kernel,
        "--output",
        "json",
        &plan_json.display().to_string(),
    ]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let after: Vec<String> = ["worker-01", "worker-02"]
        .iter()
        .map(|h| lab.tree_hash(h))
        .collect();
    assert_eq!(before, after, "plan changed a host");
    assert_eq!(
        lab.ssh("worker-01", "cat /proc/sys/net/ipv4/ip_forward")
            .trim(),
        "0"
    );

    // apply --preflight: every worker has errors, so none is changed.
    let gated = run(["apply", "-i", &inv, &kernel, "--preflight"]);
    assert_eq!(gated.code, 1, "{}", gated.all());
    assert!(
        gated
            .stdout
            .contains("preflight: worker-01 left out of the run"),
        "{}",
        gated.all()
    );
    assert_eq!(
        lab.ssh("worker-02", "cat /proc/sys/net/ipv4/ip_forward")
            .trim(),
        "0"
    );

    // One worker first: the other keeps its own kernel state.
    let r = run(["apply", "-i", &inv, &kernel, "--limit", "worker-01"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        lab.ssh("worker-01", "cat /proc/sys/net/ipv4/ip_forward")
            .trim(),
        "1"
    );
    assert_eq!(
        lab.ssh("worker-02", "cat /proc/sys/net/ipv4/ip_forward")
            .trim(),
        "0"
    );
    assert_eq!(lab.ssh("worker-02", "ls /sys/module").trim(), "");

    // Then all: exactly the changes the preview listed for worker-02.
    let apply_json = out.join("apply.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &kernel,
        "--output",
        "json",
        &apply_json.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let planned: Vec<_> = changed_tasks(&json(&plan_json))
        .into_iter()
        .filter(|(h, _)| h == "worker-02")
        .collect();
    let applied = changed_tasks(&json(&apply_json));
    assert_eq!(
        planned, applied,
        "the preview of worker-02 is what the apply did"
    );
    assert_eq!(applied.len(), 5, "{applied:?}");
    for w in ["worker-01", "worker-02"] {
        assert_eq!(lab.ssh(w, "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
        assert_eq!(
            lab.ssh(w, "ls /sys/module | sort | tr '\\n' ' '").trim(),
            "br_netfilter overlay"
        );
        assert_eq!(
            lab.ssh(w, "cat /etc/sysctl.d/99-kubernetes.conf"),
            "net.bridge.bridge-nf-call-iptables=1\nnet.bridge.bridge-nf-call-ip6tables=1\nnet.ipv4.ip_forward=1\n"
        );
        assert_eq!(
            lab.ssh(w, "cat /etc/modules-load.d/br_netfilter.conf"),
            "br_netfilter\n"
        );
        if Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            assert_eq!(
                lab.ssh(w, "sysctl -n net.bridge.bridge-nf-call-iptables")
                    .trim(),
                "1"
            );
        }
    }

    // A second apply changes nothing; the preflight now finds forwarding on.
    let again = out.join("again.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &kernel,
        "--output",
        "json",
        &again.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(changed_tasks(&json(&again)), Vec::<(String, String)>::new());
    let j = run(["preflight", "-i", &inv, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(
        status(
            &report,
            "worker-02",
            "FileContent--proc-sys-net-ipv4-ip_forward"
        )["status"],
        "ok"
    );

    // worker-01 joins (the shipped site playbook): its join checks are skipped, and worker-02,
    // a clone of it, is told its product_uuid is registered as Node worker-01.
    let r = run(["apply", "-i", &inv, "--limit", "cp-1,worker-01"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(lab.ready_nodes(), ["worker-01"]);
    let j = run(["preflight", "-i", &inv, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let w1 = &report["hosts"].as_array().unwrap()[0];
    assert_eq!(
        (w1["host"].as_str(), w1["joined"].as_bool()),
        (Some("worker-01"), Some(true)),
        "{w1}"
    );
    assert_eq!(
        status(&report, "worker-01", "Port-10250")["status"],
        "skipped"
    );
    assert_eq!(
        status(
            &report,
            "worker-01",
            "FileAvailable--var-lib-kubelet-kubeconfig"
        )["status"],
        "skipped"
    );
    // Something else listening on worker-02's address at 10250, where its kubelet would.
    let w2_addr = lab
        .hosts
        .iter()
        .find(|(n, _)| n == "worker-02")
        .unwrap()
        .1
        .clone();
    let _listener = std::net::TcpListener::bind((w2_addr.as_str(), 10250)).unwrap();
    let j = run([
        "preflight",
        "-i",
        &inv,
        "--limit",
        "worker-02",
        "--output",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let dup = status(&report, "worker-02", "DuplicateProductUUID");
    assert_eq!(dup["status"], "error", "{report}");
    assert!(
        dup["reason"]
            .as_str()
            .unwrap()
            .ends_with("is registered as Node worker-01"),
        "{dup}"
    );
    let port = status(&report, "worker-02", "Port-10250");
    assert_eq!(port["status"], "error", "{report}");
    assert!(
        port["reason"].as_str().unwrap().contains(&w2_addr),
        "{port}"
    );

    // The machine's own settings are what they were.
    assert_eq!(machine("/proc/sys/net/ipv4/ip_forward"), forward_before);
    assert_eq!(
        machine("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        bridge_before
    );
}
