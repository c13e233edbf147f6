//! `reset --limit HOSTS`: the Node is cordoned and deleted, kubelet stopped and disabled, its
//! certificates and kubeconfigs removed; `--check` changes nothing; the next apply joins the
//! host again; control-plane hosts are refused unless asked for.

use crate::support::{json, run, tempdir, Lab};

fn recap(report: &std::path::Path, host: &str) -> u64 {
    json(report)["recap"][host]["changed"].as_u64().unwrap()
}

fn nodes(lab: &Lab) -> String {
    lab.kubectl("get nodes -o name")
}

/// The host's tree without root's ~/.kube, where any kubectl call caches discovery.
fn tree(lab: &Lab, host: &str) -> String {
    lab.tree_hash(host)
        .lines()
        .filter(|l| !l.contains("/root/.kube"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kubelet_files(lab: &Lab, host: &str) -> String {
    lab.ssh(
        host,
        "cd /var/lib/kubelet && for f in pki kubeconfig bootstrap-kubeconfig; do [ -e $f ] && echo $f; done; true",
    )
}

#[test]
fn reset_takes_a_worker_out_and_the_next_apply_joins_it_again() {
    let Some(lab) = Lab::cluster("reset", 2) else {
        return;
    };
    let out = tempdir("reset");
    let report = out.join("r.json");
    let inv = lab.inventory().display().to_string();
    let rep = report.display().to_string();
    let r = run(["apply", "-i", &inv]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(nodes(&lab), "node/worker-01\nnode/worker-02\n");
    assert_eq!(
        kubelet_files(&lab, "worker-02"),
        "pki\nkubeconfig\nbootstrap-kubeconfig\n"
    );

    // The preview lists the whole reset and changes nothing.
    let before = lab.tree_hash("worker-02");
    let r = run([
        "reset",
        "-i",
        &inv,
        "--limit",
        "worker-02",
        "--check",
        "--diff",
        "--output",
        "json",
        &rep,
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    for task in [
        "changed: [worker-02] cordon the Node",
        "changed: [worker-02] kubelet stopped and disabled",
        "changed: [worker-02] delete the Node",
        "changed: [worker-02] kubelet certificates removed",
        "changed: [worker-02] bootstrap-kubeconfig removed",
    ] {
        assert!(r.stdout.contains(task), "{task}:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("unschedulable: true"), "{}", r.stdout);
    assert_eq!(lab.tree_hash("worker-02"), before);
    assert_eq!(nodes(&lab), "node/worker-01\nnode/worker-02\n");
    assert_eq!(
        lab.kubectl("get node worker-02 -o jsonpath={.spec.unschedulable}"),
        ""
    );

    let r = run([
        "reset",
        "-i",
        &inv,
        "--limit",
        "worker-02",
        "--output",
        "json",
        &rep,
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(nodes(&lab), "node/worker-01\n");
    assert_eq!(kubelet_files(&lab, "worker-02"), "");
    assert_eq!(
        lab.ssh(
            "worker-02",
            "systemctl is-active kubelet; systemctl is-enabled kubelet; true"
        ),
        "inactive\ndisabled\n"
    );
    // Reset again: nothing left to do.
    let r = run([
        "reset",
        "-i",
        &inv,
        "--limit",
        "worker-02",
        "--output",
        "json",
        &rep,
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(recap(&report, "worker-02"), 0, "{}", r.stdout);

    // The next apply joins it again; the other worker is left alone.
    let r = run(["apply", "-i", &inv, "--output", "json", &rep]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(recap(&report, "worker-01"), 0, "{}", r.stdout);
    assert!(recap(&report, "worker-02") > 0, "{}", r.stdout);
    assert_eq!(nodes(&lab), "node/worker-01\nnode/worker-02\n");
    assert_eq!(
        lab.kubectl(
            "get node worker-02 -o jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
}

#[test]
fn reset_refuses_a_control_plane_host_unless_asked() {
    let Some(lab) = Lab::cluster("reset-cp", 0) else {
        return;
    };
    let inv = lab.inventory().display().to_string();
    let before = tree(&lab, "cp-1");
    let r = run(["reset", "-i", &inv, "--limit", "cp-1"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        "error: refusing to reset control-plane host(s) cp-1: resetting one takes its kubelet out of the cluster; pass --allow-control-plane to do it anyway\n"
    );
    assert_eq!(tree(&lab, "cp-1"), before);
    // Asked for explicitly, it runs (here a preview: this control plane runs no kubelet).
    let r = run([
        "reset",
        "-i",
        &inv,
        "--limit",
        "cp-1",
        "--allow-control-plane",
        "--check",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("PLAY [Reset nodes (leave the cluster)] on 1 host(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(tree(&lab, "cp-1"), before);
    let r = run(["reset", "-i", &inv]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("reset needs --limit"), "{}", r.stderr);
}
