//! An INI inventory with a vaulted `group_vars/` beside it and plain `group_vars/` beside the
//! playbook, applied for real on a local-connection host: the values reach the task, and the
//! decrypted secret appears in no output.

use std::process::Command;

use crate::support::{bin, fixture, tempdir};

#[test]
fn apply_reads_ini_group_vars_beside_inventory_and_playbook_and_vault() {
    let d = tempdir("inv-apply");
    std::fs::create_dir_all(d.join("inv/group_vars/all")).unwrap();
    std::fs::create_dir_all(d.join("play/group_vars")).unwrap();
    std::fs::write(
        d.join("inv/hosts"),
        "[local]\nlocal-1 ansible_connection=local\n",
    )
    .unwrap();
    // Made by the real ansible-vault: vault_db_password, vault_replication_key, vault_port.
    let corpus = fixture("inventory/corpus/vault");
    std::fs::copy(
        corpus.join("group_vars/databases/vault.yml"),
        d.join("inv/group_vars/all/vault.yml"),
    )
    .unwrap();
    std::fs::copy(corpus.join("vault-password"), d.join("pw")).unwrap();
    std::fs::write(
        d.join("play/group_vars/local.yml"),
        "from_playbook: beside-the-playbook\nenabled: yes\n",
    )
    .unwrap();
    let out = d.join("out.txt");
    std::fs::write(
        d.join("play/pb.yaml"),
        format!(
            "- hosts: local\n  gather_facts: false\n  tasks:\n    - name: write\n      copy:\n        dest: {}\n        content: \"{{{{ from_playbook }}}} {{{{ enabled }}}} {{{{ vault_port }}}} {{{{ vault_db_password }}}}\\n\"\n",
            out.display()
        ),
    )
    .unwrap();
    let run = Command::new(bin())
        .args(["apply", "-i", "inv/hosts", "play/pb.yaml", "--diff", "-v"])
        .current_dir(&d)
        .env("ANSIBLE_VAULT_PASSWORD_FILE", d.join("pw"))
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "{all}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "beside-the-playbook True 5432 S3cr3t-DB-pass\n"
    );
    assert!(!all.contains("S3cr3t-DB-pass"), "{all}");
    assert!(all.contains("<redacted>"), "{all}");
}

/// `-i` twice (an INI file and a YAML file) and `--vault-password-file` on `apply`: hosts of
/// both sources run, and the vaulted value is decrypted with the password given on the command
/// line (no environment variable).
#[test]
fn apply_takes_several_inventories_and_a_vault_password_file() {
    let d = tempdir("inv-apply-many");
    std::fs::create_dir_all(d.join("group_vars/all")).unwrap();
    std::fs::write(
        d.join("a.ini"),
        "[local]\nlocal-a ansible_connection=local\n",
    )
    .unwrap();
    std::fs::write(
        d.join("b.yaml"),
        "all:\n  children:\n    local:\n      hosts:\n        local-b:\n          ansible_connection: local\n",
    )
    .unwrap();
    let corpus = fixture("inventory/corpus/vault");
    std::fs::copy(
        corpus.join("group_vars/databases/vault.yml"),
        d.join("group_vars/all/vault.yml"),
    )
    .unwrap();
    std::fs::copy(corpus.join("vault-password"), d.join("pw")).unwrap();
    std::fs::write(
        d.join("pb.yaml"),
        format!(
            "- hosts: local\n  gather_facts: false\n  tasks:\n    - name: write\n      copy:\n        dest: \"{}/{{{{ inventory_hostname }}}}.txt\"\n        content: \"{{{{ vault_port }}}}\\n\"\n",
            d.display()
        ),
    )
    .unwrap();
    let run = Command::new(bin())
        .args([
            "apply",
            "-i",
            "a.ini",
            "-i",
            "b.yaml",
            "--vault-password-file",
            "pw",
            "pb.yaml",
        ])
        .current_dir(&d)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "{all}");
    for host in ["local-a", "local-b"] {
        assert_eq!(
            std::fs::read_to_string(d.join(format!("{host}.txt"))).unwrap(),
            "5432\n",
            "{all}"
        );
    }
}
