//! `--check --diff` on a fresh lab reports, task by task, what the real apply then does:
//! the same status, the same `changed`, the same diffs. What a preview cannot know is named
//! in `UNKNOWABLE`, and nothing else is excused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{fixture, json, run, tempdir, Lab};

/// What a preview cannot know beforehand, and why. Each entry is applied by `normalise` or
/// `excused` below and only there.
const UNKNOWABLE: &[(&str, &str)] = &[
    (
        "duration, msg",
        "times of the run; a message says \"would change\" in a preview and \"changed\" after",
    ),
    (
        "bootstrap token id (`bootstrap-token-<id>`, `token-id`, the id in a reason)",
        "a new token is generated from the OS CSPRNG at each run, so the preview's is not the \
         apply's (its secret is redacted in both)",
    ),
    (
        "bootstrap token `expiration`",
        "now + ttl, taken when the task runs",
    ),
    (
        "status of a task that runs a command the preview does not run (command/shell without \
         check_mode: false, kube_wait whose condition does not hold yet): `skipped` in the \
         preview, `ok`/`changed` in the apply",
        "its outcome is known only by running it (Ansible's rule); its diffs are still compared",
    ),
];

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// One task's report, reduced to what must agree.
#[derive(Debug, PartialEq)]
struct Row {
    play: String,
    task: String,
    handler: bool,
    status: String,
    changed: bool,
    diffs: Vec<Value>,
}

/// Replace the generated token id and its expiration by placeholders, in any text.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("expiration: ") {
            let _ = rest;
            out.push_str(&line[..line.len() - trimmed.len()]);
            out.push_str("expiration: <time>");
            if line.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("token-id: ") {
            let _ = rest;
            out.push_str(&line[..line.len() - trimmed.len()]);
            out.push_str("token-id: <token id>");
            if line.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
    }
    // `bootstrap-token-abcdef`: six characters of [a-z0-9] after the prefix.
    let prefix = "bootstrap-token-";
    let mut s = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find(prefix) {
        s.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let id_len = rest
            .chars()
            .take(6)
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .count();
        if id_len == 6 {
            s.push_str("<token id>");
            rest = &rest[6..];
        }
    }
    s.push_str(rest);
    s
}

fn rows(report: &Value) -> BTreeMap<String, Vec<Row>> {
    let mut by_host: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in report["results"].as_array().expect("results") {
        let diffs = r["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mut d = d.clone();
                for k in ["subject", "before", "after"] {
                    if let Some(s) = d[k].as_str() {
                        d[k] = Value::from(normalise(s));
                    }
                }
                d
            })
            .collect();
        by_host
            .entry(r["host"].as_str().unwrap().to_string())
            .or_default()
            .push(Row {
                play: r["play"].as_str().unwrap().to_string(),
                task: r["task"].as_str().unwrap().to_string(),
                handler: r["handler"].as_bool().unwrap(),
                status: r["status"].as_str().unwrap().to_string(),
                changed: r["changed"].as_bool().unwrap(),
                diffs,
            });
    }
    by_host
}

/// The one status difference `UNKNOWABLE` allows: a command the preview did not run.
fn excused(check: &Value, host: &str, task: &str) -> bool {
    check["results"].as_array().unwrap().iter().any(|r| {
        r["host"] == host
            && r["task"] == task
            && r["status"] == "skipped"
            && (r["msg"] == "check mode: command not run"
                // A run_once follower takes the result of the host that ran it.
                || r["msg"]
                    .as_str()
                    .and_then(|m| m.strip_prefix("run_once: ran on "))
                    .is_some_and(|ran| ran != host && excused(check, ran, task)))
    })
}

/// Preview on a fresh lab, then the real apply, and compare their reports.
fn plan_equals_apply(lab: &Lab, playbook: &Path, tag: &str) {
    let out = tempdir(tag);
    let inv = lab.inventory().display().to_string();
    let pb = playbook.display().to_string();
    let check_file = out.join("check.json");
    let apply_file = out.join("apply.json");
    let check = run([
        "apply",
        "--check",
        "--diff",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &check_file.display().to_string(),
    ]);
    assert_eq!(check.code, 0, "{}", check.all());
    let apply = run([
        "apply",
        "--diff",
        "-i",
        &inv,
        &pb,
        "--output",
        "json",
        &apply_file.display().to_string(),
    ]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let (check_r, apply_r) = (json(&check_file), json(&apply_file));
    let (planned, applied) = (rows(&check_r), rows(&apply_r));
    assert_eq!(
        planned.keys().collect::<Vec<_>>(),
        applied.keys().collect::<Vec<_>>(),
        "hosts differ"
    );
    let mut mismatches = Vec::new();
    for (host, p_rows) in &planned {
        let a_rows = &applied[host];
        let names = |rs: &[Row]| {
            rs.iter()
                .map(|r| format!("{} / {}", r.play, r.task))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(p_rows),
            names(a_rows),
            "{host}: the preview and the apply ran other tasks\npreview:\n{}\napply:\n{}",
            check.stdout,
            apply.stdout
        );
        for (p, a) in p_rows.iter().zip(a_rows) {
            let status_ok =
                p.status == a.status || excused(&check_r, host, &p.task) && a.status != "failed";
            let changed_ok = p.changed == a.changed || excused(&check_r, host, &p.task);
            // A command shown in the preview that then ran without a change shows nothing.
            let diffs_ok = p.diffs == a.diffs
                || excused(&check_r, host, &p.task) && a.status == "ok" && a.diffs.is_empty();
            if !status_ok || !changed_ok || p.handler != a.handler || !diffs_ok {
                mismatches.push(format!(
                    "{host} [{}]\n  preview: {} changed={} diffs={}\n  apply:   {} changed={} diffs={}",
                    p.task,
                    p.status,
                    p.changed,
                    serde_json::to_string(&p.diffs).unwrap(),
                    a.status,
                    a.changed,
                    serde_json::to_string(&a.diffs).unwrap()
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "the preview differs from the apply (beyond {} named unknowables):\n{}",
        UNKNOWABLE.len(),
        mismatches.join("\n")
    );
}

#[test]
fn unknowables_are_named_with_a_reason() {
    for (field, why) in UNKNOWABLE {
        assert!(!field.is_empty() && why.len() > 20, "{field}: {why}");
    }
    assert_eq!(
        normalise("name: bootstrap-token-ab12cd\n  token-id: \"ab12cd\"\n  expiration: \"2026-01-01T00:00:00Z\"\n"),
        "name: bootstrap-token-<token id>\n  token-id: <token id>\n  expiration: <time>\n"
    );
}

#[test]
fn plan_equals_apply_for_the_shipped_site_playbook() {
    let Some(lab) = Lab::cluster("pea-site", 2) else {
        return;
    };
    plan_equals_apply(&lab, &root("playbooks/site.yaml"), "pea-site");
}

#[test]
fn plan_equals_apply_for_the_shipped_control_plane_playbook_alone() {
    let Some(lab) = Lab::cluster("pea-cp", 0) else {
        return;
    };
    plan_equals_apply(&lab, &root("playbooks/control-plane.yaml"), "pea-cp");
}

#[test]
fn plan_equals_apply_for_the_shipped_workers_playbook_alone() {
    // Without a control plane the workers play prepares the hosts and skips the join.
    let Some(lab) = Lab::up("pea-workers", 2) else {
        return;
    };
    plan_equals_apply(&lab, &root("playbooks/workers.yaml"), "pea-workers");
}

#[test]
fn plan_equals_apply_when_a_read_only_command_runs_between_a_unit_file_and_its_start() {
    let Some(lab) = Lab::up("pea-probe", 1) else {
        return;
    };
    plan_equals_apply(
        &lab,
        &fixture("playbooks/probe-unit-after-command/site.yaml"),
        "pea-probe",
    );
}

#[test]
fn plan_equals_apply_for_files_units_commands_and_kube_objects() {
    let Some(lab) = Lab::cluster("pea-kube", 0) else {
        return;
    };
    plan_equals_apply(&lab, &fixture("playbooks/kube-mix/site.yaml"), "pea-kube");
}

#[test]
fn plan_equals_apply_for_every_module() {
    let Some(lab) = Lab::up("pea-every", 2) else {
        return;
    };
    plan_equals_apply(
        &lab,
        &fixture("playbooks/every-module/site.yaml"),
        "pea-every",
    );
    // The same lab, for a role-based playbook (roles, include_tasks, block/rescue,
    // set_fact, lineinfile, service).
    plan_equals_apply(&lab, &fixture("playbooks/role-node/site.yaml"), "pea-role");
}
