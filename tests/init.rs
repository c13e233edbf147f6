//! `init DIR`: the shipped playbooks, templates and example inventory written out for
//! customising; files that exist are kept unless --force; DIR's edited files win over the
//! embedded ones.

use crate::support::{run, run_in, tempdir, Lab};

const WRITTEN: &[&str] = &[
    "site.yaml",
    "control-plane.yaml",
    "kernel.yaml",
    "binaries.yaml",
    "workers.yaml",
    "reset.yaml",
    "templates/kubelet.service.j2",
    "templates/kubelet-config.yaml.j2",
    "templates/bootstrap-kubeconfig.j2",
    "templates/rbac-bootstrap.yaml.j2",
    "templates/cluster-info.yaml.j2",
    "inventory.yaml",
];

#[test]
fn init_writes_the_shipped_files_and_keeps_existing_ones_unless_forced() {
    let dir = tempdir("init").join("mine");
    let r = run(["init", &dir.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    for f in WRITTEN {
        assert!(dir.join(f).is_file(), "{f} not written: {}", r.stdout);
    }
    let shipped = std::fs::read_to_string(dir.join("workers.yaml")).unwrap();
    assert!(shipped.contains("Workers join through TLS bootstrapping"));

    // A user's edit is never overwritten by accident, and nothing else is written either.
    std::fs::write(dir.join("workers.yaml"), "# mine\n").unwrap();
    std::fs::remove_file(dir.join("site.yaml")).unwrap();
    let r = run(["init", &dir.display().to_string()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("already holds control-plane.yaml, kernel.yaml, binaries.yaml, workers.yaml, reset.yaml")
            && r.stderr
                .contains("nothing was written (--force overwrites them)"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("workers.yaml")).unwrap(),
        "# mine\n"
    );
    assert!(!dir.join("site.yaml").exists());

    let r = run(["init", "--force", &dir.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(dir.join("workers.yaml")).unwrap(),
        shipped
    );
    assert!(dir.join("site.yaml").is_file());
}

#[test]
fn an_edited_template_in_the_init_directory_is_the_one_applied() {
    let Some(lab) = Lab::cluster("init-apply", 1) else {
        return;
    };
    let work = tempdir("init-apply");
    // Relative paths, from a directory outside the checkout, as a user types them.
    let r = run_in(&work, ["init", "mine"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let tpl = work.join("mine/templates/kubelet-config.yaml.j2");
    let mut text = std::fs::read_to_string(&tpl).unwrap();
    text.push_str("# customised for {{ inventory_hostname }}\n");
    std::fs::write(&tpl, text).unwrap();

    let inv = lab.inventory().display().to_string();
    let r = run_in(&work, ["apply", "-i", &inv, "mine/site.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let applied = lab.ssh("worker-01", "cat /var/lib/kubelet/kubelet-config.yaml");
    assert!(
        applied.ends_with("# customised for worker-01\n"),
        "{applied}"
    );
    // The embedded playbook, run from anywhere, still renders the shipped template.
    let r = run(["apply", "-i", &inv, "--limit", "worker-01"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let applied = lab.ssh("worker-01", "cat /var/lib/kubelet/kubelet-config.yaml");
    assert!(!applied.contains("customised"), "{applied}");
}
