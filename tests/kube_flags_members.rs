//! `kube_flags` members on the lab: a controller-manager unit the operator already gave
//! `--controllers=*,-ttl,-bootstrapsigner` keeps `-ttl` through the shipped site playbook,
//! gets `bootstrapsigner` in place of `-bootstrapsigner` and `tokencleaner` appended, the
//! worker joins, and a second apply changes nothing.

use crate::support::{changed_tasks, json, run, tempdir, Lab};

const UNIT: &str = "/etc/systemd/system/kube-controller-manager.service";

fn controllers_flags(lab: &Lab) -> Vec<String> {
    lab.ssh("cp-1", &format!("cat {UNIT}"))
        .split_whitespace()
        .filter(|w| w.starts_with("--controllers"))
        .map(str::to_string)
        .collect()
}

#[test]
fn site_apply_keeps_controllers_the_operator_disabled() {
    let Some(lab) = Lab::cluster("members", 1) else {
        return;
    };
    let out = tempdir("members");
    let worker = lab
        .hosts
        .iter()
        .find(|(n, _)| n != "cp-1")
        .unwrap()
        .0
        .clone();
    // The operator's own choice, made before bootstrapctl ever ran: ttl off, and
    // bootstrapsigner explicitly off (which the playbook must turn on, or no node can join).
    lab.ssh(
        "cp-1",
        &format!(
            "sed -i 's|--v=2|--v=2 --controllers=*,-ttl,-bootstrapsigner|' {UNIT} \
             && systemctl daemon-reload && systemctl restart kube-controller-manager"
        ),
    );
    assert_eq!(
        controllers_flags(&lab),
        ["--controllers=*,-ttl,-bootstrapsigner"]
    );

    let plan = run(["plan", "-i", &lab.inventory().display().to_string()]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let diff_line = |sign: char, text: &str| {
        plan.stdout
            .lines()
            .any(|l| l.starts_with(sign) && l.contains(text))
    };
    assert!(
        diff_line('-', "--controllers=*,-ttl,-bootstrapsigner")
            && diff_line('+', "--controllers=*,-ttl,bootstrapsigner,tokencleaner"),
        "plan does not show the replaced member:\n{}",
        plan.stdout
    );

    let first = out.join("first.json");
    let r = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "--output",
        "json",
        &first.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        controllers_flags(&lab),
        ["--controllers=*,-ttl,bootstrapsigner,tokencleaner"]
    );
    let nodes = lab.kubectl(
        "get nodes -o jsonpath={range.items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    );
    assert!(
        nodes.lines().any(|l| l == format!("{worker}=True")),
        "{worker} is not Ready:\n{nodes}"
    );

    let second = out.join("second.json");
    let r = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "--output",
        "json",
        &second.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        changed_tasks(&json(&second)),
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        controllers_flags(&lab),
        ["--controllers=*,-ttl,bootstrapsigner,tokencleaner"]
    );
}
