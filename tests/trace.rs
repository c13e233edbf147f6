//! `-vvv` prints what is sent to a host: one script for a task's ops, as it is run.

use crate::support::{run, tempdir, Lab};

/// The `<host> apply:` sections of `-vvv` output, each up to the next section or result line.
fn apply_sections<'a>(out: &'a str, host: &str) -> Vec<&'a str> {
    let head = format!("<{host}> apply:\n");
    out.match_indices(&head)
        .map(|(at, _)| {
            let body = &out[at + head.len()..];
            let end = body
                .find("\n<")
                .into_iter()
                .chain(body.find("\nchanged: "))
                .chain(body.find("\nok: "))
                .chain(body.find("\nfailed: "))
                .min()
                .unwrap_or(body.len());
            &body[..end]
        })
        .collect()
}

#[test]
fn a_delegated_task_with_several_ops_is_traced_as_the_one_script_it_runs() {
    let Some(lab) = Lab::up("trace", 2) else {
        return;
    };
    let d = tempdir("trace");
    let pb = d.join("pb.yaml");
    // Delegated, so its ops run when the task runs (not in the host's batch): restart and
    // enable are two ops of one task, sent as one script.
    std::fs::write(
        &pb,
        "- hosts: worker-01\n  gather_facts: false\n  tasks:\n    - name: containerd on worker-02\n      systemd: {name: containerd, enabled: true, state: restarted}\n      delegate_to: worker-02\n",
    )
    .unwrap();
    let inv = lab.inventory().display().to_string();
    let r = run(["apply", "-i", &inv, &pb.display().to_string(), "-vvv"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = r.all();
    let sections = apply_sections(&out, "worker-02");
    assert_eq!(sections.len(), 1, "one script, as sent:\n{out}");
    let script = sections[0];
    let enable = script.find("systemctl enable containerd.service");
    let restart = script.find("systemctl restart containerd.service");
    assert!(
        matches!((enable, restart), (Some(a), Some(b)) if a < b),
        "both ops, in order, in the one script:\n{script}"
    );
    assert!(script.starts_with("set -e\n"), "{script}");
    // It ran: the unit is enabled on worker-02 and not on worker-01.
    let state = |h: &str| lab.ssh(h, "systemctl is-enabled containerd.service || true");
    assert_eq!(state("worker-02").trim(), "enabled");
    assert_ne!(state("worker-01").trim(), "enabled");
}
