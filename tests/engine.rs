//! Engine behaviour on local-connection hosts: serial batches, failure policy, handlers,
//! tags, loops, register, run_once, delegate_to. No root needed.

use crate::support::{json, results, run, tempdir};

fn setup(tag: &str, hosts: usize, playbook: &str) -> (std::path::PathBuf, String, String) {
    let d = tempdir(tag);
    let mut inv = String::from(
        "all:\n  vars:\n    ansible_connection: local\n  children:\n    nodes:\n      hosts:\n",
    );
    for i in 1..=hosts {
        inv.push_str(&format!("        h{i}:\n"));
    }
    std::fs::write(d.join("inv.yaml"), inv).unwrap();
    let pb = playbook.replace("DIR", &d.display().to_string());
    std::fs::write(d.join("pb.yaml"), pb).unwrap();
    let inv = d.join("inv.yaml").display().to_string();
    let pb = d.join("pb.yaml").display().to_string();
    (d, inv, pb)
}

#[test]
fn serial_batches_stop_after_a_batch_exceeds_max_fail_percentage() {
    let (d, inv, pb) = setup(
        "serial",
        6,
        "- hosts: nodes\n  gather_facts: false\n  serial: 2\n  max_fail_percentage: 0\n  tasks:\n    - name: fail on h3\n      shell: test {{ inventory_hostname }} != h3\n    - name: mark\n      copy: {content: x, dest: 'DIR/{{ inventory_hostname }}'}\n",
    );
    let report = d.join("r.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    let res = results(&json(&report));
    let hosts_that_ran: std::collections::BTreeSet<_> =
        res.iter().map(|(h, _, _)| h.clone()).collect();
    // Batches [h1,h2] then [h3,h4]: h3 fails, so [h5,h6] never start.
    assert_eq!(
        hosts_that_ran.into_iter().collect::<Vec<_>>(),
        ["h1", "h2", "h3", "h4"]
    );
    assert!(res.contains(&("h3".into(), "fail on h3".into(), "failed".into())));
    assert!(d.join("h4").exists() && !d.join("h3").exists() && !d.join("h5").exists());
}

#[test]
fn a_failed_host_does_not_stop_the_others_without_a_threshold() {
    let (d, inv, pb) = setup(
        "nothreshold",
        3,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - shell: test {{ inventory_hostname }} != h2\n    - copy: {content: x, dest: 'DIR/{{ inventory_hostname }}'}\n",
    );
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(d.join("h1").exists() && d.join("h3").exists() && !d.join("h2").exists());
    assert!(
        r.stdout
            .contains("h2   : ok=0    changed=0    unreachable=0    failed=1"),
        "{}",
        r.stdout
    );
}

#[test]
fn handlers_run_once_at_the_end_in_definition_order_only_where_notified() {
    let (d, inv, pb) = setup(
        "handlers",
        2,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: a\n      copy: {content: a, dest: 'DIR/{{ inventory_hostname }}-a'}\n      notify: [second, first]\n    - name: b\n      copy: {content: b, dest: 'DIR/{{ inventory_hostname }}-b'}\n      notify: first\n      when: inventory_hostname == 'h1'\n    - name: c\n      shell: echo task >> DIR/{{ inventory_hostname }}-log\n  handlers:\n    - name: first\n      shell: echo first >> DIR/{{ inventory_hostname }}-log\n    - name: second\n      shell: echo second >> DIR/{{ inventory_hostname }}-log\n",
    );
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 0, "{}", r.all());
    for h in ["h1", "h2"] {
        let log = std::fs::read_to_string(d.join(format!("{h}-log"))).unwrap();
        assert_eq!(log, "task\nfirst\nsecond\n", "{h}");
    }
    // Second run: nothing changes, so no handler runs.
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(d.join("h1-log")).unwrap(),
        "task\nfirst\nsecond\ntask\n"
    );
}

#[test]
fn one_notification_runs_the_handler_of_that_name_and_every_handler_listening_to_it() {
    let (d, inv, pb) = setup(
        "listen",
        1,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: a\n      copy: {content: a, dest: 'DIR/{{ inventory_hostname }}-a'}\n      notify: restart api\n  handlers:\n    - name: restart api\n      shell: echo restarted >> DIR/{{ inventory_hostname }}-log\n    - name: unrelated\n      shell: echo unrelated >> DIR/{{ inventory_hostname }}-log\n    - name: api answers again\n      shell: echo answers >> DIR/{{ inventory_hostname }}-log\n      listen: restart api\n",
    );
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 0, "{}", r.all());
    let log = std::fs::read_to_string(d.join("h1-log")).unwrap();
    assert_eq!(log, "restarted\nanswers\n");
}

#[test]
fn tags_loops_register_and_run_once() {
    let (d, inv, pb) = setup(
        "tags",
        3,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: once\n      shell: echo ran-on-{{ inventory_hostname }} >> DIR/once\n      run_once: true\n      register: o\n    - name: looped\n      copy: {content: '{{ item }}', dest: 'DIR/{{ inventory_hostname }}-{{ item }}'}\n      loop: [x, y]\n      tags: [files]\n    - name: untagged\n      copy: {content: u, dest: 'DIR/{{ inventory_hostname }}-u'}\n    - name: uses register\n      copy: {content: '{{ o.rc }}', dest: 'DIR/{{ inventory_hostname }}-rc'}\n      tags: [files]\n",
    );
    let r = run(["apply", "-i", &inv, &pb, "--skip-tags", "files"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(d.join("once"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert!(d.join("h2-u").exists() && !d.join("h2-x").exists());
    let r = run(["apply", "-i", &inv, &pb, "--tags", "files"]);
    assert_eq!(
        r.code,
        1,
        "`o` is undefined when `once` is skipped by tags: {}",
        r.all()
    );
    assert!(
        r.stdout.contains("undefined variable `o.rc`"),
        "{}",
        r.stdout
    );
    assert!(d.join("h2-x").exists() && d.join("h2-y").exists());
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(d.join("once"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_eq!(std::fs::read_to_string(d.join("h3-y")).unwrap(), "y");
    assert_eq!(std::fs::read_to_string(d.join("h3-rc")).unwrap(), "0");
}

#[test]
fn unreachable_host_is_reported_and_the_others_finish() {
    let d = tempdir("unreachable");
    std::fs::write(
        d.join("inv.yaml"),
        format!(
            "all:\n  hosts:\n    good:\n      ansible_connection: local\n    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      ansible_ssh_common_args: -o UserKnownHostsFile={}/kh\n",
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("pb.yaml"),
        format!("- hosts: all\n  tasks:\n    - copy: {{content: x, dest: '{}/{{{{ inventory_hostname }}}}'}}\n", d.display()),
    )
    .unwrap();
    let r = run([
        "apply",
        "-i",
        &d.join("inv.yaml").display().to_string(),
        &d.join("pb.yaml").display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("unreachable: [gone]"), "{}", r.stdout);
    assert!(
        r.stdout.contains("cannot connect to gone (127.0.0.1:1)"),
        "{}",
        r.stdout
    );
    assert!(d.join("good").exists());
}

#[test]
fn ctrl_c_lets_the_running_task_finish_starts_no_other_and_exits_130() {
    let (d, inv, pb) = setup(
        "interrupt",
        1,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: slow\n      shell: sleep 2 && echo done > DIR/slow\n    - name: next\n      copy: {content: x, dest: 'DIR/next'}\n",
    );
    let child = crate::support::command()
        .args(["apply", "-i", &inv, &pb])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert_eq!(std::fs::read_to_string(d.join("slow")).unwrap(), "done\n");
    assert!(!d.join("next").exists());
    assert!(stdout.contains("PLAY RECAP"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

#[test]
fn batched_changes_apply_in_order_and_stop_at_the_first_failure() {
    let (d, inv, pb) = setup(
        "batchfail",
        1,
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: one\n      copy: {content: '1', dest: 'DIR/one'}\n    - name: two\n      copy: {content: '2', dest: 'DIR/two'}\n    - name: three\n      copy: {content: '3', dest: 'DIR/three', owner: no-such-user-bsctl}\n    - name: four\n      copy: {content: '4', dest: 'DIR/four'}\n",
    );
    std::fs::write(d.join("three"), "old").unwrap();
    let report = d.join("r.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    let res = results(&json(&report));
    assert_eq!(
        res,
        [
            ("h1".into(), "one".into(), "changed".into()),
            ("h1".into(), "two".into(), "changed".into()),
            ("h1".into(), "three".into(), "failed".into()),
        ]
    );
    assert!(
        r.stdout
            .contains("failed: [h1] three: exit status 1: chown: invalid user"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(d.join("two")).unwrap(), "2");
    // The failed write left the old content and no temp file; the task after it never ran.
    assert_eq!(std::fs::read_to_string(d.join("three")).unwrap(), "old");
    assert!(!d.join("four").exists());
    let leftovers = std::fs::read_dir(&d).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".bootstrapctl")
    });
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn a_plays_batch_goes_out_with_the_next_plays_and_fails_there_as_in_its_own_play() {
    // Play "first" ends with its copies still batched; play "second" starts with a copy and a
    // skipped command (neither needs them applied), so both plays' copies go out in one script
    // before the shell task. On h2 the carried batch fails at "two": nothing after it runs.
    let (d, inv, pb) = setup(
        "carry",
        2,
        "- name: first\n  hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: one\n      copy: {content: '1', dest: 'DIR/{{ inventory_hostname }}-one'}\n    - name: two\n      copy: {content: '2', dest: 'DIR/{{ inventory_hostname }}-two'}\n      when: inventory_hostname == 'h1'\n    - name: two\n      copy: {content: '2', dest: 'DIR/{{ inventory_hostname }}-two', owner: no-such-user-bsctl}\n      when: inventory_hostname == 'h2'\n- name: second\n  hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: three\n      copy: {content: '3', dest: 'DIR/{{ inventory_hostname }}-three'}\n    - name: skipped command\n      command: touch DIR/{{ inventory_hostname }}-skipped\n      when: false\n    - name: four\n      shell: touch DIR/{{ inventory_hostname }}-four\n",
    );
    let report = d.join("r.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    let rep = json(&report);
    // The play of each result, in report order (hosts and tasks: `results` below).
    let plays: Vec<&str> = rep["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["play"].as_str().unwrap())
        .collect();
    // Each play's results under it, the first play's before the second's.
    assert_eq!(
        plays.iter().filter(|p| **p == "first").count(),
        6,
        "{plays:?}"
    );
    assert!(plays[..6].iter().all(|p| *p == "first"), "{plays:?}");
    let mut res = results(&rep);
    res.sort();
    assert_eq!(
        res,
        [
            ("h1".into(), "four".into(), "changed".into()),
            ("h1".into(), "one".into(), "changed".into()),
            ("h1".into(), "skipped command".into(), "skipped".into()),
            ("h1".into(), "three".into(), "changed".into()),
            ("h1".into(), "two".into(), "changed".into()),
            ("h1".into(), "two".into(), "skipped".into()),
            ("h2".into(), "one".into(), "changed".into()),
            ("h2".into(), "two".into(), "failed".into()),
            ("h2".into(), "two".into(), "skipped".into()),
        ]
    );
    // The live line of a result applied in a later play names its own play.
    assert!(
        r.stdout
            .contains("failed: [h2] two: exit status 1: chown: invalid user")
            && r.stdout.contains("(play [first])"),
        "{}",
        r.stdout
    );
    for f in ["h1-one", "h1-two", "h1-three", "h1-four", "h2-one"] {
        assert!(d.join(f).exists(), "{f}");
    }
    for f in ["h1-skipped", "h2-two", "h2-three", "h2-four", "h2-skipped"] {
        assert!(!d.join(f).exists(), "{f}");
    }
    // h1: the read, one script for both plays' copies, the shell task.
    assert_eq!(rep["recap"]["h1"]["round_trips"], 3, "{}", rep["recap"]);
    assert_eq!(rep["recap"]["h2"]["failed"], 1, "{}", rep["recap"]);
}

#[test]
fn a_batch_stays_in_its_play_before_a_play_that_could_rescue_it() {
    // A block in the next play could catch the failure as its own: the batch goes out first.
    let (d, inv, pb) = setup(
        "nocarry",
        1,
        "- name: first\n  hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: two\n      copy: {content: '2', dest: 'DIR/two', owner: no-such-user-bsctl}\n- name: second\n  hosts: nodes\n  gather_facts: false\n  tasks:\n    - block:\n        - name: three\n          copy: {content: '3', dest: 'DIR/three'}\n      rescue:\n        - name: rescued\n          copy: {content: 'r', dest: 'DIR/rescued'}\n",
    );
    let report = d.join("r.json");
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(
        results(&json(&report)),
        [("h1".into(), "two".into(), "failed".into())]
    );
    assert!(!d.join("three").exists() && !d.join("rescued").exists());
    assert!(!r.stdout.contains("(play ["), "{}", r.stdout);
}

#[test]
fn the_run_has_glibcs_thread_cache_off_and_what_it_starts_the_users_environment() {
    // The tunable is in the environment the running bootstrapctl started with (found from
    // the nearest bootstrapctl above the command's shell), and not in the command's.
    let (d, inv, pb) = setup(
        "tunables",
        1,
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - shell: |
        p=$$
        while [ "$p" -gt 1 ] && [ "$(cat /proc/$p/comm)" != bootstrapctl ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done
        tr '\0' '\n' < /proc/$p/environ | grep -c '^GLIBC_TUNABLES=glibc.malloc.tcache_count=0$' > DIR/out
        echo "command: ${GLIBC_TUNABLES-unset} ${BOOTSTRAPCTL_GLIBC_TUNABLES_WAS-unset}" >> DIR/out
"#,
    );
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 0, "{}", r.all());
    let out = std::fs::read_to_string(d.join("out")).unwrap();
    assert_eq!(out, "1\ncommand: unset unset\n");
}
