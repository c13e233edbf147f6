//! Broken inventories: bootstrapctl refuses each with the file and line, where the real
//! Ansible refuses it too (checked when the pinned ansible-core venv is there).

use crate::support::{fixture, run};

const CASES: &[(&str, &str)] = &[
    (
        "bad-var.ini",
        "error: bad-var.ini: not an inventory in a format Ansible reads:\n  yaml: not tried for a .ini file\n  ini: bad-var.ini:2: Expected key=value host variable assignment, got: ansible_host\n",
    ),
    (
        "undefined-child.ini",
        "error: undefined-child.ini: not an inventory in a format Ansible reads:\n  yaml: not tried for a .ini file\n  ini: undefined-child.ini:4: Section [db:children] includes undefined group: nosuch\n",
    ),
    (
        "bad-section",
        "error: bad-section: not an inventory in a format Ansible reads:\n  yaml: bad-section:2:1: did not find expected <document start>\n  ini: bad-section:1: Invalid section entry: '[web server]'. Please make sure that there are no spaces in the section entry, and that there are no other invalid characters\n",
    ),
    (
        "bad-yaml.yml",
        "error: bad-yaml.yml: not an inventory in a format Ansible reads:\n  yaml: bad-yaml.yml:3:20: while parsing a flow sequence, expected ',' or ']'\n  ini: bad-yaml.yml:1: Invalid host pattern 'all:' supplied, ending in ':' is not allowed, this character is reserved to provide a port.\n",
    ),
    (
        "bad-vars/hosts",
        "error: bad-vars/group_vars/web.yml:2:6: mapping values are not allowed in this context\n",
    ),
    (
        "int-host.yml",
        "error: int-host.yml:3:5: group \"all\": host pattern 1234 must be a string; enclose integers and floats in quotation marks\n",
    ),
];

#[test]
fn broken_inventories_name_file_and_line() {
    let dir = fixture("inventory/broken");
    for (file, want) in CASES {
        let out = std::process::Command::new(crate::support::bin())
            .args(["inventory", "list", "-i", file])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *want, "{file}");
    }
    let venv = std::env::var_os("BSCTL_ANSIBLE_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/opt/bootstrapctl-test/ansible-venv".into());
    if !venv.join("bin/ansible-inventory").exists() {
        return;
    }
    let home = crate::support::tempdir("ansible-broken");
    std::fs::write(home.join("ansible.cfg"), "").unwrap();
    for (file, _) in CASES {
        let out = std::process::Command::new(venv.join("bin/ansible-inventory"))
            .args(["--list", "-i", file])
            .current_dir(&dir)
            .env("ANSIBLE_CONFIG", home.join("ansible.cfg"))
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true")
            .output()
            .unwrap();
        assert!(!out.status.success(), "Ansible read {file}");
    }
}

#[test]
fn inventory_host_and_graph_name_unknown_targets() {
    let inv = fixture("inventory/corpus/ansible-docs-ini/hosts")
        .display()
        .to_string();
    let r = run(["inventory", "host", "-i", &inv, "nosuch"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "error: no host \"nosuch\" in the inventory\n")
    );
    let r = run(["inventory", "graph", "-i", &inv, "nosuch"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "error: no group \"nosuch\" in the inventory\n")
    );
}
