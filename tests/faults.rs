//! Faults on one host of several: the host is reported UNREACHABLE or FAILED with its cause,
//! the others finish, the exit code is 1, files hold their old or new content, never a part.

use std::io::Read;

use crate::support::{json, results, run, tempdir, Lab};

fn recap(report: &std::path::Path, host: &str, field: &str) -> u64 {
    json(report)["recap"][host][field].as_u64().unwrap()
}

#[test]
fn a_port_that_never_speaks_ssh_is_unreachable_after_one_connect_timeout() {
    let Some(lab) = Lab::up("silent", 2) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept, read what the client sends and say nothing until it gives up. The listener
        // stays open, so a retry would be accepted again and cost another whole timeout.
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 256];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let inv = lab.inventory_with(&format!(
        "        silent:\n          ansible_host: 127.0.0.1\n          ansible_port: {port}\n"
    ));
    let out = tempdir("silent");
    let report = out.join("r.json");
    let pb = out.join("pb.yaml");
    std::fs::write(
        &pb,
        "- hosts: workers\n  tasks:\n    - copy: {content: x, dest: /etc/bsctl-fault}\n",
    )
    .unwrap();
    let r = run([
        "apply",
        "-i",
        &inv.display().to_string(),
        &pb.display().to_string(),
        "--connect-timeout",
        "1",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(recap(&report, "silent", "unreachable"), 1);
    assert!(r.stdout.contains("unreachable: [silent]"), "{}", r.stdout);
    // One attempt: the host already cost a whole timeout, a retry would cost another.
    assert!(
        r.stdout.contains(
            "SSH handshake timed out after 1s (not retried: the attempt already waited out the connect timeout)"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("attempts)"), "{}", r.stdout);
    assert_eq!(recap(&report, "worker-01", "changed"), 1);
    assert_eq!(recap(&report, "worker-02", "changed"), 1);
    // The accepting thread ends with the test process.
    drop(held);
}

#[test]
fn a_host_whose_sshd_dies_mid_run_is_reported_and_the_others_finish() {
    let Some(lab) = Lab::up("killed", 3) else {
        return;
    };
    let out = tempdir("killed");
    let report = out.join("r.json");
    let pb = out.join("pb.yaml");
    std::fs::write(
        &pb,
        "- hosts: workers\n  tasks:\n    - name: slow\n      shell: sleep 2\n    - name: after\n      copy: {content: done, dest: /etc/bsctl-after}\n",
    )
    .unwrap();
    let child = crate::support::command()
        .args([
            "apply",
            "-i",
            &lab.inventory().display().to_string(),
            &pb.display().to_string(),
            "--output",
            "json",
            &report.display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    lab.kill_host("worker-02");
    let outp = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&outp.stdout);
    assert_eq!(outp.status.code(), Some(1), "{stdout}");
    let st = results(&json(&report));
    assert!(
        st.iter().any(|(h, t, s)| h == "worker-02"
            && t == "slow"
            && (s == "unreachable" || s == "failed")),
        "{st:?}"
    );
    assert!(
        !st.iter().any(|(h, t, _)| h == "worker-02" && t == "after"),
        "{st:?}"
    );
    for h in ["worker-01", "worker-03"] {
        assert_eq!(lab.ssh(h, "cat /etc/bsctl-after"), "done");
    }
}

#[test]
fn disk_full_during_a_write_keeps_the_old_file_and_a_rerun_converges() {
    let Some(lab) = Lab::up("diskfull", 2) else {
        return;
    };
    for (h, _) in &lab.hosts {
        lab.nsenter(h, "mkdir -p /etc/bsctl-tiny");
    }
    lab.nsenter(
        "worker-02",
        "mount -t tmpfs -o size=16k tmpfs /etc/bsctl-tiny && printf old > /etc/bsctl-tiny/big",
    );
    let out = tempdir("diskfull");
    let report = out.join("r.json");
    let pb = out.join("pb.yaml");
    let big = "x".repeat(64 * 1024);
    std::fs::write(&pb, format!("- hosts: workers\n  tasks:\n    - name: big file\n      copy: {{content: '{big}', dest: /etc/bsctl-tiny/big}}\n")).unwrap();
    let args = [
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        &pb.display().to_string(),
        "--output",
        "json",
        &report.display().to_string(),
    ];
    let r = run(args);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("failed: [worker-02] big file"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "writing /etc/bsctl-tiny/big failed (disk full or I/O error); the old file is kept"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(lab.ssh("worker-02", "cat /etc/bsctl-tiny/big"), "old");
    assert_eq!(
        lab.ssh("worker-02", "ls -A /etc/bsctl-tiny"),
        "big\n",
        "temp file left behind"
    );
    assert_eq!(
        lab.ssh("worker-01", "wc -c < /etc/bsctl-tiny/big").trim(),
        "65536"
    );
    // The fault goes away: the rerun converges.
    lab.nsenter("worker-02", "umount /etc/bsctl-tiny");
    let r = run(args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(recap(&report, "worker-01", "changed"), 0);
    assert_eq!(recap(&report, "worker-02", "changed"), 1);
}

#[test]
fn a_command_that_hangs_past_its_timeout_fails_only_its_host() {
    let Some(lab) = Lab::up("hang", 2) else {
        return;
    };
    let out = tempdir("hang");
    let report = out.join("r.json");
    let pb = out.join("pb.yaml");
    std::fs::write(
        &pb,
        "- hosts: workers\n  tasks:\n    - name: maybe hang\n      shell: \"{{ 'sleep 30 && touch /etc/bsctl-hang-waited' if inventory_hostname == 'worker-02' else 'true' }}\"\n    - copy: {content: ok, dest: /etc/bsctl-hang}\n",
    )
    .unwrap();
    let r = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        &pb.display().to_string(),
        "--timeout",
        "2",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    // Had the run waited for the hung command, the command would have got to its `touch`.
    assert_eq!(
        lab.ssh(
            "worker-02",
            "test -e /etc/bsctl-hang-waited && echo waited || echo gave-up"
        ),
        "gave-up\n",
        "the run waited for the hung command"
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("[worker-02] maybe hang: command timed out after 2s"),
        "{}",
        r.stdout
    );
    assert_eq!(lab.ssh("worker-01", "cat /etc/bsctl-hang"), "ok");
    assert_eq!(recap(&report, "worker-02", "failed"), 1);
}

#[test]
fn a_second_concurrent_apply_on_the_same_host_fails_with_a_clear_message() {
    let Some(lab) = Lab::up("lock", 2) else {
        return;
    };
    let out = tempdir("lock");
    let slow = out.join("slow.yaml");
    std::fs::write(&slow, "- hosts: worker-01\n  tasks:\n    - name: slow\n      shell: sleep 3 && echo one >> /etc/bsctl-lock-log\n").unwrap();
    let fast = out.join("fast.yaml");
    std::fs::write(&fast, "- hosts: workers\n  tasks:\n    - name: quick\n      shell: echo two >> /etc/bsctl-lock-log\n").unwrap();
    let inv = lab.inventory().display().to_string();
    let first = crate::support::command()
        .args(["apply", "-i", &inv, &slow.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let second = run(["apply", "-i", &inv, &fast.display().to_string()]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second
            .stdout
            .contains("failed: [worker-01] quick: another bootstrapctl run is changing this host"),
        "{}",
        second.stdout
    );
    // The other host is free.
    assert_eq!(lab.ssh("worker-02", "cat /etc/bsctl-lock-log"), "two\n");
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    // Nothing interleaved, and once the first run is over the host takes runs again.
    assert_eq!(lab.ssh("worker-01", "cat /etc/bsctl-lock-log"), "one\n");
    let third = run(["apply", "-i", &inv, &fast.display().to_string()]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert_eq!(
        lab.ssh("worker-01", "cat /etc/bsctl-lock-log"),
        "one\ntwo\n"
    );
}

#[test]
fn a_failed_sysctl_between_rewrites_of_one_sysctl_file_leaves_it_as_the_tasks_before_made_it() {
    let Some(lab) = Lab::up("sysctl-file", 1) else {
        return;
    };
    let out = tempdir("sysctl-file");
    let file = "/etc/sysctl.d/99-bsctl-test.conf";
    let task = |name: &str| {
        format!("    - name: {name}\n      sysctl: {{name: {name}, value: \"1\", sysctl_file: {file}}}\n")
    };
    // Each task rewrites the same file: one rename of it when all succeed; the third one's key
    // is in no kernel (the lab's sysctl refuses it), so its run stops there.
    let pb = |keys: &[&str], last: &str| {
        let mut text = String::from("- hosts: workers\n  tasks:\n");
        for k in keys {
            text.push_str(&task(k));
        }
        text.push_str(&format!(
            "    - name: after\n      copy: {{content: x, dest: {last}}}\n"
        ));
        let p = out.join(format!("pb-{}.yaml", keys.len()));
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let inv = lab.inventory().display().to_string();
    let report = out.join("r.json");
    let report_arg = report.display().to_string();
    let failing = pb(
        &[
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
            "net.bsctl.no_such_key",
        ],
        "/etc/bsctl-after-fail",
    );
    let r = run([
        "apply",
        "-i",
        &inv,
        &failing,
        "--output",
        "json",
        &report_arg,
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(
        lab.ssh("worker-01", &format!("cat {file}")),
        "net.ipv4.ip_forward=1\nnet.bridge.bridge-nf-call-iptables=1\n"
    );
    let st = results(&json(&report));
    let status = |t: &str| {
        st.iter()
            .find(|(_, task, _)| task == t)
            .map(|(_, _, s)| s.clone())
    };
    assert_eq!(status("net.ipv4.ip_forward").as_deref(), Some("changed"));
    assert_eq!(
        status("net.bridge.bridge-nf-call-iptables").as_deref(),
        Some("changed")
    );
    assert_eq!(status("net.bsctl.no_such_key").as_deref(), Some("failed"));
    assert_eq!(status("after"), None, "{st:?}");
    assert_eq!(
        lab.ssh(
            "worker-01",
            "ls -A /etc/sysctl.d | grep -c '^.bootstrapctl' || true; [ -e /etc/bsctl-after-fail ] && echo after || true"
        ),
        "0\n"
    );
    // All of them: the file with every line, its mode, the live values, nothing left over.
    let ok = pb(
        &[
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
        ],
        "/etc/bsctl-after-ok",
    );
    let r = run(["apply", "-i", &inv, &ok]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        lab.ssh("worker-01", &format!("cat {file}; stat -c %a {file}; cat /proc/sys/net/bridge/bridge-nf-call-ip6tables /etc/bsctl-after-ok; ls -A /etc/sysctl.d | grep -c '^.bootstrapctl' || true")),
        "net.ipv4.ip_forward=1\nnet.bridge.bridge-nf-call-iptables=1\nnet.bridge.bridge-nf-call-ip6tables=1\n644\n1\nx0\n"
    );
}
