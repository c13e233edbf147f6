//! Differential: playbooks of `tests/fixtures/playbooks/ansible-*/` run by the real
//! ansible-playbook (the venv `scripts/setup` installs) and by `bootstrapctl apply` on a
//! local-connection host: the files they leave have the same content, mode and owner, and a
//! role-based node-preparation playbook converges (a second run changes nothing) under both.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{bin, fixture, tempdir};

fn venv() -> Option<PathBuf> {
    crate::support::ansible_venv("ansible-playbook")
}

/// Content and mode of every file and directory under `root`, by relative path.
fn state(root: &Path, names: &[&str]) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    for name in names {
        let p = root.join(name);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let content = if meta.is_dir() {
            "<dir>".to_string()
        } else {
            std::fs::read_to_string(&p).unwrap()
        };
        out.push((
            name.to_string(),
            content,
            meta.permissions().mode() & 0o7777,
        ));
    }
    out
}

fn check(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `playbooks/<case>/site.yaml` with both tools: (their out dir, ours).
fn run_both(venv: &Path, case: &str) -> (PathBuf, PathBuf) {
    let d = tempdir(case);
    let pb = fixture(&format!("playbooks/{case}/site.yaml"));
    std::fs::write(
        d.join("hosts"),
        format!(
            "[local]\nlocal-1 ansible_connection=local ansible_python_interpreter={}\n",
            venv.join("bin/python3").display()
        ),
    )
    .unwrap();
    let (ours, theirs) = (d.join("ours"), d.join("theirs"));
    for dir in [&ours, &theirs] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let run = Command::new(bin())
        .args(["apply", "-i"])
        .arg(d.join("hosts"))
        .arg(&pb)
        .arg("-e")
        .arg(format!("out={}", ours.display()))
        .current_dir(&d)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    check(&run, "bootstrapctl apply");
    std::fs::write(d.join("ansible.cfg"), "").unwrap();
    let run = Command::new(venv.join("bin/ansible-playbook"))
        .arg("-i")
        .arg(d.join("hosts"))
        .arg(&pb)
        .arg("-e")
        .arg(format!("out={}", theirs.display()))
        .current_dir(&d)
        .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
        .env("ANSIBLE_LOCAL_TEMP", d.join("ansible-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap();
    check(&run, "ansible-playbook");
    (theirs, ours)
}

#[test]
fn yes_no_booleans_end_in_the_same_files_as_ansible() {
    let Some(venv) = venv() else {
        return;
    };
    let (theirs, ours) = run_both(&venv, "ansible-booleans");
    let names = ["a.txt", "c.txt", "dir"];
    let want = state(&theirs, &names);
    assert_eq!(state(&ours, &names), want);
    // The file `force: no` left alone, and the modes given.
    assert_eq!(want[0], ("a.txt".into(), "a\n".into(), 0o640));
    assert_eq!(want[2].2, 0o750);
}

#[test]
fn block_tags_render_with_ansibles_jinja_defaults() {
    let Some(venv) = venv() else {
        return;
    };
    let (theirs, ours) = run_both(&venv, "ansible-templates");
    let want = state(&theirs, &["blocks.conf"]);
    assert_eq!(state(&ours, &["blocks.conf"]), want);
    // trim_blocks: no blank line where a block tag stood; lstrip_blocks off.
    assert!(
        want[0].1.contains("enabled = true\nport = 80\n"),
        "{}",
        want[0].1
    );
}

#[test]
fn flush_handlers_runs_the_notified_handlers_there_as_ansible_does() {
    let Some(venv) = venv() else {
        return;
    };
    let (theirs, ours) = run_both(&venv, "ansible-flush-handlers");
    let names = ["a.txt", "one.txt", "log"];
    let want = state(&theirs, &names);
    assert_eq!(state(&ours, &names), want);
    // Ansible's order: the first flush ran both handlers (listed order), the task after it saw
    // their file, the second flush ran the one notified since, and the handler notified again
    // ran again at the play's end.
    assert_eq!(
        want[2].1,
        "task a\nhandler two\ntask b saw one.txt: True\nshell c\nhandler three\ntask d\n"
    );
    assert_eq!(want[1].1, "again\n");
}

#[test]
fn undefined_chains_are_as_ansible_has_them() {
    let Some(venv) = venv() else {
        return;
    };
    let (theirs, ours) = run_both(&venv, "ansible-undefined-chains");
    // Both made the same files, and no other (the skipped and the failed tasks wrote none).
    assert_eq!(tree(&ours), tree(&theirs));
    let names = ["defaults.txt", "registered.txt", "failed.txt"];
    let want = state(&theirs, &names);
    assert_eq!(want[0].1, "fallback 7\n");
    assert_eq!(want[1].1, "none\n");
    assert_eq!(want[2].1, "printed True, truth True\n");
}

#[test]
fn free_form_scripts_keep_their_lines_as_ansible_joins_them() {
    let Some(venv) = venv() else {
        return;
    };
    let (theirs, ours) = run_both(&venv, "ansible-free-form");
    assert_eq!(tree(&ours), tree(&theirs));
    let want = state(&theirs, &["script.txt", "where.txt"]);
    assert_eq!(want[0].1, "x1\ny1\nkeep three spaces\n");
    assert_eq!(want[1].1, "sub\n  two  spaces\n");
}

/// Content, mode and owner of every path under `root`, sorted.
fn tree(root: &Path) -> Vec<(String, String, u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let content = if meta.is_dir() {
                stack.push(p.clone());
                "<dir>".to_string()
            } else {
                std::fs::read_to_string(&p).unwrap()
            };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.push((rel, content, meta.mode() & 0o7777, meta.uid()));
        }
    }
    out.sort();
    out
}

/// The `changed=N` of a recap line (either tool's).
fn changed(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.split("changed=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn a_role_based_node_prep_playbook_ends_in_the_same_files_and_converges_under_both() {
    let Some(venv) = venv() else {
        return;
    };
    let d = tempdir("ansible-role");
    let pb = fixture("playbooks/ansible-role/site.yaml");
    std::fs::write(
        d.join("hosts"),
        format!(
            "[local]\nlocal-1 ansible_connection=local ansible_python_interpreter={}\n",
            venv.join("bin/python3").display()
        ),
    )
    .unwrap();
    std::fs::write(d.join("ansible.cfg"), "").unwrap();
    let (ours, theirs) = (d.join("ours"), d.join("theirs"));
    for dir in [&ours, &theirs] {
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/fstab"),
            "UUID=1 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n",
        )
        .unwrap();
    }
    let bootstrapctl = || {
        let out = Command::new(bin())
            .args(["apply", "-i"])
            .arg(d.join("hosts"))
            .arg(&pb)
            .arg("-e")
            .arg(format!("out={}", ours.display()))
            .current_dir(&d)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        check(&out, "bootstrapctl apply");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ansible = || {
        let out = Command::new(venv.join("bin/ansible-playbook"))
            .arg("-i")
            .arg(d.join("hosts"))
            .arg(&pb)
            .arg("-e")
            .arg(format!("out={}", theirs.display()))
            .current_dir(&d)
            .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
            .env("ANSIBLE_LOCAL_TEMP", d.join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .unwrap();
        check(&out, "ansible-playbook");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (first_ours, first_theirs) = (bootstrapctl(), ansible());
    let want = tree(&theirs);
    assert_eq!(tree(&ours), want);
    // What the role did, as Ansible did it: the rescue ran, the handler ran, swap is gone.
    let get = |name: &str| {
        want.iter()
            .find(|(n, ..)| n == name)
            .unwrap_or_else(|| panic!("{name} in {want:?}"))
            .1
            .clone()
    };
    assert_eq!(
        get("etc/node/rescued.txt"),
        "A check that fails on purpose\n"
    );
    assert_eq!(get("etc/node/restarted"), "restarted\n");
    assert!(!get("etc/fstab").contains("swap"));
    assert!(get("etc/node/config.yaml").contains("address: 0.0.0.0:10250\n"));
    assert_eq!(changed(&first_ours), changed(&first_theirs));
    // A second run changes nothing, under both.
    let (again_ours, again_theirs) = (bootstrapctl(), ansible());
    assert_eq!(changed(&again_theirs), vec![0], "{again_theirs}");
    assert_eq!(changed(&again_ours), vec![0], "{again_ours}");
    assert_eq!(tree(&ours), tree(&theirs));
}

#[test]
fn list_tasks_and_hosts_and_syntax_check_print_as_ansible_playbook() {
    let Some(venv) = venv() else {
        return;
    };
    let d = tempdir("ansible-list");
    std::fs::write(
        d.join("hosts"),
        "[local]\nlocal-1 ansible_connection=local\n",
    )
    .unwrap();
    std::fs::write(d.join("ansible.cfg"), "").unwrap();
    let pb = fixture("playbooks/ansible-role/site.yaml");
    for flags in [
        &["--list-tasks", "--list-hosts"][..],
        &["--list-tasks"],
        &["--syntax-check"],
    ] {
        let ours = Command::new(bin())
            .args(["apply", "-i"])
            .arg(d.join("hosts"))
            .arg(&pb)
            .args(flags)
            .output()
            .unwrap();
        check(&ours, "bootstrapctl apply");
        let theirs = Command::new(venv.join("bin/ansible-playbook"))
            .arg("-i")
            .arg(d.join("hosts"))
            .arg(&pb)
            .args(flags)
            .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
            .env("ANSIBLE_LOCAL_TEMP", d.join("ansible-tmp"))
            .output()
            .unwrap();
        check(&theirs, "ansible-playbook");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout).trim_end(),
            String::from_utf8_lossy(&theirs.stdout).trim_end(),
            "{flags:?}"
        );
    }
}
