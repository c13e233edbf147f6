//! Interrupted runs leave `.bootstrapctl.*` temp files (kill -9 between writing a temp file
//! and renaming it); the next run on the host removes them, only of its own kind, only in the
//! directories its tasks write into, and never while another run holds the host.

use crate::support::{command, json, run, tempdir, Lab};

const DIR: &str = "/etc/systemd/system";

fn temps(lab: &Lab, host: &str, dir: &str) -> String {
    lab.ssh(
        host,
        &format!("cd {dir} && ls -A | grep '^\\.bootstrapctl\\.' || true"),
    )
}

#[test]
fn the_next_run_removes_stale_temp_files_of_its_kind_in_the_dirs_it_manages() {
    let Some(lab) = Lab::up("stale", 1) else {
        return;
    };
    let out = tempdir("stale");
    let pb = out.join("pb.yaml");
    std::fs::write(
        &pb,
        format!("- hosts: workers\n  tasks:\n    - name: a unit\n      copy: {{content: \"[Unit]\\n\", dest: {DIR}/bsctl-demo.service}}\n"),
    )
    .unwrap();
    // What a kill -9 leaves, an older version's name too, and files that are not ours.
    lab.ssh(
        "worker-01",
        &format!(
            "printf 'token: x' > {DIR}/.bootstrapctl.r1234567890.0123456789abcdef && \
             printf x > {DIR}/.bootstrapctl.00ff00ff00ff00ff && \
             printf x > {DIR}/.bootstrapctlx && printf x > {DIR}/keep.bootstrapctl.1 && \
             mkdir -p /etc/bsctl-unmanaged && printf x > /etc/bsctl-unmanaged/.bootstrapctl.1"
        ),
    );
    let inv = lab.inventory().display().to_string();
    let report = out.join("r.json");
    let rep = report.display().to_string();

    // A preview changes nothing, stale files included.
    let r = run(["plan", "-i", &inv, &pb.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        temps(&lab, "worker-01", DIR),
        ".bootstrapctl.00ff00ff00ff00ff\n.bootstrapctl.r1234567890.0123456789abcdef\n"
    );

    let r = run([
        "apply",
        "-i",
        &inv,
        &pb.display().to_string(),
        "-v",
        "--output",
        "json",
        &rep,
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(temps(&lab, "worker-01", DIR), "");
    assert!(
        r.stdout.contains(&format!(
            "ok: [worker-01] remove temp files of interrupted runs (removed 2 temp file(s) an interrupted run left: {DIR}/.bootstrapctl."
        )),
        "{}",
        r.stdout
    );
    let removed: Vec<serde_json::Value> = json(&report)["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task"] == "remove temp files of interrupted runs")
        .cloned()
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["status"], "ok");
    assert_eq!(json(&report)["recap"]["worker-01"]["changed"], 1);
    // Not ours, or not in a directory this run writes into: left alone.
    assert_eq!(
        lab.ssh(
            "worker-01",
            &format!("cat {DIR}/.bootstrapctlx {DIR}/keep.bootstrapctl.1 /etc/bsctl-unmanaged/.bootstrapctl.1")
        ),
        "xxx"
    );

    // Nothing left to remove: nothing reported.
    let r = run(["apply", "-i", &inv, &pb.display().to_string(), "-v"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("interrupted"), "{}", r.stdout);
}

#[test]
fn stale_temp_files_stay_while_another_run_holds_the_host() {
    let Some(lab) = Lab::up("stale-lock", 1) else {
        return;
    };
    let out = tempdir("stale-lock");
    let slow = out.join("slow.yaml");
    std::fs::write(
        &slow,
        "- hosts: workers\n  tasks:\n    - name: slow\n      shell: sleep 3\n",
    )
    .unwrap();
    let quick = out.join("quick.yaml");
    std::fs::write(
        &quick,
        format!(
            "- hosts: workers\n  tasks:\n    - copy: {{content: x, dest: {DIR}/bsctl-quick}}\n"
        ),
    )
    .unwrap();
    let inv = lab.inventory().display().to_string();
    let first = command()
        .args(["apply", "-i", &inv, &slow.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the host (its lock file names its run), then leave a
    // temp file as if that run were writing it.
    let mut held = false;
    for _ in 0..100 {
        if !lab
            .ssh(
                "worker-01",
                "cat /run/bootstrapctl.lock 2>/dev/null || true",
            )
            .is_empty()
        {
            held = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(held, "the first run never took the lock");
    lab.ssh(
        "worker-01",
        &format!("printf x > {DIR}/.bootstrapctl.r0000000000.1"),
    );
    let second = run(["apply", "-i", &inv, &quick.display().to_string()]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second
            .stdout
            .contains("another bootstrapctl run is changing this host"),
        "{}",
        second.stdout
    );
    assert_eq!(
        temps(&lab, "worker-01", DIR),
        ".bootstrapctl.r0000000000.1\n"
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0));
    // Once the host is free, the next run cleans up.
    let third = run(["apply", "-i", &inv, &quick.display().to_string()]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert_eq!(temps(&lab, "worker-01", DIR), "");
}

#[test]
fn after_a_kill_9_mid_apply_the_next_run_leaves_no_temp_file() {
    let Some(lab) = Lab::up("stale-kill", 1) else {
        return;
    };
    let out = tempdir("stale-kill");
    let pb = out.join("pb.yaml");
    // Big consecutive writes, staged together (every temp file written, one sync, then the
    // renames), so that the run spends most of its time with temp files on disk.
    let big = "x".repeat(4 << 20);
    let mut text = String::from("- hosts: workers\n  tasks:\n");
    for i in 0..12 {
        text.push_str(&format!(
            "    - name: big {i}\n      copy: {{content: '{big}{i}', dest: {DIR}/bsctl-big-{i}}}\n"
        ));
    }
    std::fs::write(&pb, text).unwrap();
    let inv = lab.inventory().display().to_string();
    let args = ["apply", "-i", &inv, &pb.display().to_string()];

    let mut child = command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it the moment a temp file is on the host, as a kill -9 at a random moment may: a
    // watcher on the host returns as soon as it sees one (or when the run has written its last
    // file).
    let seen = lab.ssh(
        "worker-01",
        &format!(
            "until [ -e {DIR}/bsctl-big-11 ]; do for f in {DIR}/.bootstrapctl.*; do [ -e \"$f\" ] && {{ echo seen; exit 0; }}; done; done; echo none"
        ),
    );
    child.kill().unwrap();
    let _ = child.wait();
    // Once its client has vanished the remote shell ends (finishing or not); the next run
    // takes the host's lock when that connection is gone.
    let left = temps(&lab, "worker-01", DIR);
    eprintln!(
        "watcher: {}; temp files right after the kill: {left:?}",
        seen.trim()
    );

    let r = run(args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(temps(&lab, "worker-01", DIR), "");
    for i in 0..12 {
        assert_eq!(
            lab.ssh("worker-01", &format!("wc -c < {DIR}/bsctl-big-{i}"))
                .trim(),
            ((4 << 20) + i.to_string().len()).to_string()
        );
    }
}
