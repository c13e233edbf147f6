//! A write's umask stays inside the write: on a lab host, one batch that writes 0644 files and
//! then creates a directory (with a missing parent) and enables a unit leaves the new
//! directories 0755, as Ansible does.

use crate::support::{run, tempdir, Lab};

#[test]
fn a_0644_write_does_not_narrow_the_directories_created_after_it() {
    let Some(lab) = Lab::up("umask", 1) else {
        return;
    };
    let host = "worker-01";
    lab.ssh(
        host,
        "rm -rf /etc/systemd/system/multi-user.target.wants /etc/bsctl-test/umask",
    );
    let d = tempdir("umask");
    let pb = d.join("pb.yaml");
    std::fs::write(
        &pb,
        r#"- hosts: all
  gather_facts: false
  tasks:
    - name: a 0644 unit file
      copy:
        dest: /etc/systemd/system/bsctl-umask.service
        content: "[Unit]\nDescription=umask\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
        mode: "0644"
    - name: a directory whose parent is missing
      file:
        path: /etc/bsctl-test/umask/sub
        state: directory
    - name: enable the unit
      systemd:
        name: bsctl-umask
        enabled: true
        daemon_reload: true
"#,
    )
    .unwrap();
    let r = run([
        "apply".to_string(),
        "-i".into(),
        lab.inventory().display().to_string(),
        pb.display().to_string(),
        "-v".into(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let modes = lab.ssh(
        host,
        "stat -c '%n %a' /etc/systemd/system/bsctl-umask.service /etc/bsctl-test/umask /etc/bsctl-test/umask/sub /etc/systemd/system/multi-user.target.wants",
    );
    assert_eq!(
        modes,
        "/etc/systemd/system/bsctl-umask.service 644\n/etc/bsctl-test/umask 755\n/etc/bsctl-test/umask/sub 755\n/etc/systemd/system/multi-user.target.wants 755\n",
        "{}",
        r.all()
    );
    assert!(lab
        .ssh(host, "ls /etc/systemd/system/multi-user.target.wants")
        .contains("bsctl-umask.service"));
}
