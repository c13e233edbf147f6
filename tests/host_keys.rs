//! Host keys: unknown and changed keys are refused with the key's SHA256 fingerprint.

use crate::support::{run, Lab};

#[test]
fn unknown_host_key_is_refused_and_accept_new_records_it() {
    let Some(lab) = Lab::up("hostkeys", 2) else {
        return;
    };
    let empty = lab.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    // The lab's inventory names its known_hosts; point it at an empty one instead.
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let real_kh = lab.dir.join("known_hosts").display().to_string();
    assert!(text.contains(&real_kh), "{text}");
    let inv_path = lab.dir.join("inventory-empty-kh.yaml");
    std::fs::write(
        &inv_path,
        text.replace(&real_kh, &empty.display().to_string()),
    )
    .unwrap();
    let inv = inv_path.display().to_string();
    let pb = crate::support::fixture("playbooks/every-module/site.yaml")
        .display()
        .to_string();
    let r = run(["plan", "-i", &inv, &pb]);
    assert_eq!(r.code, 1, "{}", r.all());
    let fp = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(lab.dir.join("hosts/worker-01/ssh_host_ed25519_key.pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        r.stdout.contains("unreachable: [worker-01]"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&fp),
        "fingerprint {fp} not in:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("worker-01 ") && r.stdout.contains("unreachable=1"),
        "{}",
        r.stdout
    );

    let r = run(["plan", "-i", &inv, &pb, "--accept-new-host-keys"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let recorded = std::fs::read_to_string(&empty).unwrap();
    assert_eq!(recorded.lines().count(), 2, "{recorded}");

    // A changed key is refused even with --accept-new-host-keys.
    let other =
        std::fs::read_to_string(lab.dir.join("hosts/worker-02/ssh_host_ed25519_key.pub")).unwrap();
    let other_key = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let tampered: String = recorded
        .lines()
        .map(|l| {
            let host = l.split_whitespace().next().unwrap();
            if l.contains(&lab.hosts[0].1) {
                format!("{host} {other_key}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&empty, tampered).unwrap();
    let r = run(["plan", "-i", &inv, &pb, "--accept-new-host-keys"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("CHANGED"), "{}", r.stdout);
}

#[test]
fn a_missing_private_key_file_is_named_and_only_that_host_fails() {
    let Some(lab) = Lab::up("nokey", 1) else {
        return;
    };
    let inv = lab.inventory_with(&format!(
        "        keyless:\n          ansible_host: {}\n          ansible_ssh_private_key_file: /nonexistent/id_test\n",
        lab.hosts[0].1
    ));
    let pb = crate::support::fixture("playbooks/every-module/site.yaml")
        .display()
        .to_string();
    let r = run(["plan", "-i", &inv.display().to_string(), &pb]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("private key file /nonexistent/id_test not found"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("unreachable: [keyless]"), "{}", r.stdout);
    assert!(r.stdout.contains("worker-01 : ok="), "{}", r.stdout);
}
