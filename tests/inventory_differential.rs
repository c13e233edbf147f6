//! Differential test: every case of `tests/fixtures/inventory/corpus/` is read by the real
//! Ansible (`ansible-inventory --list`/`--graph`, `ansible PATTERN --list-hosts`, from the
//! pinned ansible-core that `scripts/setup` installs in a venv) and by `bootstrapctl
//! inventory list --output json` / `graph` / `list --limit`, and the results must be equal:
//! hosts, groups with their hosts and children, each host's variables with their types, and
//! the hosts each pattern selects, in order. Decrypted vault values are compared redacted
//! (bootstrapctl never prints them); the plaintext itself is checked against `ansible-vault
//! view`.
//!
//! The venv is `$BSCTL_ANSIBLE_VENV` (default `/opt/bootstrapctl-test/ansible-venv`). When it
//! is missing the tests say so and pass, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::support::{bin, fixture, tempdir};

fn venv() -> Option<PathBuf> {
    crate::support::ansible_venv("ansible-inventory")
}

#[derive(serde::Deserialize)]
struct Case {
    sources: Vec<String>,
    patterns: Vec<String>,
    /// Patterns whose order Ansible leaves to Python's set iteration (it changes from run to
    /// run): compared as sets.
    #[serde(default)]
    unordered: Vec<String>,
    playbook_dir: Option<String>,
    vault_password_file: Option<String>,
}

struct Oracle {
    venv: PathBuf,
    home: PathBuf,
}

impl Oracle {
    fn new(venv: PathBuf) -> Oracle {
        let home = tempdir("ansible-home");
        std::fs::write(home.join("ansible.cfg"), "").unwrap();
        Oracle { venv, home }
    }

    /// Runs an Ansible tool in the case directory with a neutral configuration.
    fn run(&self, tool: &str, dir: &Path, args: &[String]) -> (bool, String, String) {
        let out = Command::new(self.venv.join("bin").join(tool))
            .args(args)
            .current_dir(dir)
            .env("ANSIBLE_CONFIG", self.home.join("ansible.cfg"))
            .env("ANSIBLE_HOME", &self.home)
            .env("ANSIBLE_LOCAL_TEMP", self.home.join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "true")
            .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
            .output()
            .expect("run the Ansible tool");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn ours(dir: &Path, args: &[String]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .output()
        .expect("run bootstrapctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn source_args(case: &Case) -> Vec<String> {
    let mut args = Vec::new();
    for s in &case.sources {
        args.extend(["-i".to_string(), s.clone()]);
    }
    if let Some(d) = &case.playbook_dir {
        args.extend(["--playbook-dir".to_string(), d.clone()]);
    }
    if let Some(f) = &case.vault_password_file {
        args.extend(["--vault-password-file".to_string(), f.clone()]);
    }
    args
}

fn cases() -> Vec<(String, PathBuf, Case)> {
    let root = fixture("inventory/corpus");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("case.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = root.join(&name);
            let case: Case =
                serde_yaml::from_str(&std::fs::read_to_string(dir.join("case.yaml")).unwrap())
                    .unwrap_or_else(|e| panic!("{name}/case.yaml: {e}"));
            (name, dir, case)
        })
        .collect()
}

/// Every file of the case that `ansible-vault` encrypted as a whole.
fn vaulted_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read_to_string(&p).is_ok_and(|t| t.starts_with("$ANSIBLE_VAULT;")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// String values of the case's vaulted files, decrypted by `ansible-vault view`.
fn vault_secrets(oracle: &Oracle, dir: &Path, case: &Case) -> Vec<String> {
    let Some(pw) = &case.vault_password_file else {
        return Vec::new();
    };
    let mut secrets = Vec::new();
    for file in vaulted_files(dir) {
        let (ok, plain, err) = oracle.run(
            "ansible-vault",
            dir,
            &[
                "view".into(),
                "--vault-password-file".into(),
                pw.clone(),
                file.display().to_string(),
            ],
        );
        assert!(ok, "ansible-vault view {}: {err}", file.display());
        let value: serde_yaml::Value = serde_yaml::from_str(&plain).unwrap();
        collect(&value, &mut secrets);
    }
    secrets.retain(|s| s.trim().len() >= 4);
    secrets
}

fn collect(value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::String(s) => out.push(s.clone()),
        serde_yaml::Value::Mapping(m) => m.values().for_each(|v| collect(v, out)),
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn redact(value: Json, secrets: &[String]) -> Json {
    match value {
        Json::String(mut s) => {
            for secret in secrets {
                s = s.replace(secret.trim(), "<redacted>");
            }
            Json::String(s)
        }
        Json::Array(a) => Json::Array(a.into_iter().map(|v| redact(v, secrets)).collect()),
        Json::Object(o) => Json::Object(
            o.into_iter()
                .map(|(k, v)| (k, redact(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// `ansible PATTERN --list-hosts`: the host names, or `None` when Ansible refused the pattern.
fn ansible_hosts(oracle: &Oracle, dir: &Path, case: &Case, pattern: &str) -> Option<Vec<String>> {
    let mut args = vec![pattern.to_string(), "--list-hosts".to_string()];
    args.extend(source_args(case));
    let (ok, out, _) = oracle.run("ansible", dir, &args);
    ok.then(|| {
        out.lines()
            .skip_while(|l| !l.trim_start().starts_with("hosts ("))
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// bootstrapctl's selection: the first column of `inventory list --limit`; an empty list when
/// it reports that the pattern matches nothing, `None` for any other error.
fn our_hosts(dir: &Path, case: &Case, pattern: &str) -> Option<Vec<String>> {
    let mut args = vec![
        "inventory".into(),
        "list".into(),
        "--limit".into(),
        pattern.to_string(),
    ];
    args.extend(source_args(case));
    let (code, out, err) = ours(dir, &args);
    if code != 0 {
        return err.contains("matches no hosts").then(Vec::new);
    }
    Some(
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
    )
}

#[test]
fn corpus_reads_as_ansible_inventory_reads_it() {
    let Some(venv) = venv() else { return };
    let oracle = Oracle::new(venv);
    let all = cases();
    assert!(all.len() >= 12, "the corpus has {} cases", all.len());
    let (mut identical, mut failures) = (0, Vec::new());
    for (name, dir, case) in &all {
        let mut diffs = Vec::new();
        let args = source_args(case);
        let mut list = vec!["--list".to_string()];
        list.extend(args.clone());
        let (ok, out, err) = oracle.run("ansible-inventory", dir, &list);
        assert!(ok, "{name}: ansible-inventory failed: {err}");
        let secrets = vault_secrets(&oracle, dir, case);
        let want = redact(serde_json::from_str(&out).unwrap(), &secrets);
        let mut ours_list = vec![
            "inventory".into(),
            "list".into(),
            "--output".into(),
            "json".into(),
        ];
        ours_list.extend(args.clone());
        let (code, out, err) = ours(dir, &ours_list);
        if code != 0 {
            diffs.push(format!("bootstrapctl failed: {err}"));
        } else {
            let got: Json = serde_json::from_str(&out).unwrap();
            if got != want {
                diffs.push(format!(
                    "--list differs\n  ansible: {}\n  ours:    {}",
                    serde_json::to_string(&want).unwrap(),
                    serde_json::to_string(&got).unwrap()
                ));
            }
            // `inventory host` is one host's entry of the listing.
            if let Some((host, vars)) = want["_meta"]["hostvars"]
                .as_object()
                .and_then(|m| m.iter().next())
            {
                let mut host_args = vec!["inventory".into(), "host".into(), host.clone()];
                host_args.extend(args.clone());
                let (_, out, err) = ours(dir, &host_args);
                let got: Json = serde_json::from_str(&out).unwrap_or(Json::String(err));
                if &got != vars {
                    diffs.push(format!("inventory host {host}: {got} != {vars}"));
                }
            }
        }
        let mut graph = vec!["--graph".to_string()];
        graph.extend(args.clone());
        let (_, want_graph, _) = oracle.run("ansible-inventory", dir, &graph);
        let mut ours_graph = vec!["inventory".into(), "graph".into()];
        ours_graph.extend(args.clone());
        let (_, got_graph, _) = ours(dir, &ours_graph);
        if want_graph != got_graph {
            diffs.push(format!("--graph differs\n{want_graph}---\n{got_graph}"));
        }
        for pattern in &case.patterns {
            let mut want = ansible_hosts(&oracle, dir, case, pattern);
            let mut got = our_hosts(dir, case, pattern);
            if case.unordered.contains(pattern) {
                want.iter_mut().chain(got.iter_mut()).for_each(|v| v.sort());
            }
            if want != got {
                diffs.push(format!(
                    "pattern {pattern:?}: ansible {want:?}, ours {got:?}"
                ));
            }
        }
        if diffs.is_empty() {
            identical += 1;
        } else {
            failures.push(format!("{name}:\n  {}", diffs.join("\n  ")));
        }
    }
    eprintln!(
        "inventory corpus: {identical} of {} cases read identically",
        all.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vault_files_decrypt_as_ansible_vault_view() {
    let Some(venv) = venv() else { return };
    let oracle = Oracle::new(venv);
    let mut checked = 0;
    for (name, dir, case) in cases() {
        let Some(pw) = &case.vault_password_file else {
            continue;
        };
        let password = std::fs::read(dir.join(pw)).unwrap();
        let vault =
            bootstrapctl::vault::Vault::with_passwords(vec![password.trim_ascii().to_vec()]);
        for file in vaulted_files(&dir) {
            let (ok, want, err) = oracle.run(
                "ansible-vault",
                &dir,
                &[
                    "view".into(),
                    "--vault-password-file".into(),
                    pw.clone(),
                    file.display().to_string(),
                ],
            );
            assert!(ok, "{name}: {err}");
            let text = std::fs::read_to_string(&file).unwrap();
            assert_eq!(
                vault.decrypt_text(&text).unwrap(),
                want,
                "{}",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no vaulted file in the corpus");
}

#[test]
fn wrong_vault_password_names_the_file() {
    let dir = fixture("inventory/corpus/vault");
    let d = tempdir("vault-wrong");
    std::fs::write(d.join("pw"), "not the password\n").unwrap();
    let pw = d.join("pw").display().to_string();
    let (code, _, err) = ours(
        &dir,
        &[
            "inventory".into(),
            "list".into(),
            "-i".into(),
            "hosts.yml".into(),
            "--vault-password-file".into(),
            pw,
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err,
        "error: group_vars/databases/vault.yml: no vault password given decrypts it (HMAC mismatch: wrong password)\n"
    );
    let (code, _, err) = ours(
        &dir,
        &[
            "inventory".into(),
            "list".into(),
            "-i".into(),
            "hosts.yml".into(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: group_vars/databases/vault.yml: it is vault-encrypted, but no vault password was given"), "{err}");
}

#[test]
fn vault_password_file_may_be_a_script_or_the_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fixture("inventory/corpus/vault");
    let d = tempdir("vault-script");
    let script = d.join("pw.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'correct horse battery staple'\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let list = |extra: &[&str], env: Option<&Path>| {
        let mut cmd = Command::new(bin());
        cmd.args(["inventory", "host", "-i", "hosts.yml", "db1"])
            .args(extra)
            .current_dir(&dir);
        match env {
            Some(p) => cmd.env("ANSIBLE_VAULT_PASSWORD_FILE", p),
            None => cmd.env_remove("ANSIBLE_VAULT_PASSWORD_FILE"),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Json>(&out.stdout).unwrap()
    };
    let by_script = list(&["--vault-password-file", script.to_str().unwrap()], None);
    let by_env = list(&[], Some(&dir.join("vault-password")));
    assert_eq!(by_script, by_env);
    assert_eq!(by_script["vault_db_password"], "<redacted>");
    assert_eq!(by_script["vault_port"], 5432);
}
