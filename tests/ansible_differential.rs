//! Differential: playbooks of `tests/fixtures/playbooks/ansible-*/` run by the real
//! ansible-playbook (the venv `scripts/setup` installs) and by `bootstrapctl apply` on a
//! local-connection host: the files they leave have the same content and mode.

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
