//! Data-driven tests for the flag and fstab editors: every case is a YAML file under tests/fixtures/flags/.
//!
//! A case holds the input (inline or a file from `inputs/`), the edits, and either the exact
//! expected text, `unchanged: true`, or an `error` substring. The runner also checks that every
//! successful edit is idempotent and, when given, the resulting argv.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    about: String,
    input: Option<String>,
    input_file: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    edits: Vec<EditSpec>,
    expect: Option<String>,
    #[serde(default)]
    unchanged: bool,
    error: Option<String>,
    /// Expected argv (or, for fstab, active swap entries) of the result.
    argv: Option<Vec<String>>,
    /// fstab only: active swap entries of the input.
    active_before: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditSpec {
    set: Option<String>,
    value: Option<String>,
    remove: Option<String>,
    /// With `set`: ensure these members of a list flag instead of setting a whole value.
    members: Option<Vec<String>>,
}

impl EditSpec {
    fn to_edit(&self) -> FlagEdit {
        match (&self.set, &self.value, &self.remove, &self.members) {
            (Some(n), Some(v), None, None) => FlagEdit::set(n, v),
            (None, None, Some(n), None) => FlagEdit::remove(n),
            (Some(n), None, None, Some(m)) => FlagEdit::Members {
                name: n.clone(),
                members: m.clone(),
            },
            _ => panic!("edit must be {{set, value}}, {{set, members}} or {{remove}}: {self:?}"),
        }
    }
}

fn fixture_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/flags")
        .join(kind)
}

fn load_cases(kind: &str) -> Vec<(String, Case, String)> {
    let dir = fixture_dir(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let case: Case = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let input = match (&case.input, &case.input_file) {
                (Some(i), None) => i.clone(),
                (None, Some(f)) => std::fs::read_to_string(dir.join("inputs").join(f))
                    .unwrap_or_else(|e| panic!("{name}: {f}: {e}")),
                _ => panic!("{name}: exactly one of input / input_file"),
            };
            (name, case, input)
        })
        .collect()
}

fn diff(expected: &str, got: &str) -> String {
    similar::TextDiff::from_lines(expected, got)
        .unified_diff()
        .header("expected", "got")
        .to_string()
}

/// Runs every case of `kind`, collecting failures so one run shows all of them.
fn run_cases(
    kind: &str,
    min_cases: usize,
    edit: impl Fn(&str, &Case, &[FlagEdit]) -> Result<String, FlagError>,
    argv_of: impl Fn(&str, &Case) -> Vec<String>,
    extra: impl Fn(&str, &Case, &str) -> Result<(), String>,
) {
    let cases = load_cases(kind);
    assert!(
        cases.len() >= min_cases,
        "only {} {kind} cases found",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, case, input) in &cases {
        let edits: Vec<FlagEdit> = case.edits.iter().map(EditSpec::to_edit).collect();
        let result = edit(input, case, &edits);
        if let Some(want) = &case.error {
            match result {
                Err(e) if e.to_string().contains(want.as_str()) => {}
                other => failures.push(format!(
                    "{name}: expected error containing {want:?}, got {other:?}"
                )),
            }
            continue;
        }
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{name}: unexpected error: {e}"));
                continue;
            }
        };
        let expected = if case.unchanged {
            input.clone()
        } else {
            case.expect
                .clone()
                .unwrap_or_else(|| panic!("{name}: needs expect, unchanged or error"))
        };
        if out != expected {
            failures.push(format!("{name}: output differs\n{}", diff(&expected, &out)));
            continue;
        }
        match edit(&out, case, &edits) {
            Ok(again) if again == out => {}
            Ok(again) => failures.push(format!("{name}: not idempotent\n{}", diff(&out, &again))),
            Err(e) => failures.push(format!("{name}: second application failed: {e}")),
        }
        if let Some(argv) = &case.argv {
            let got = argv_of(&out, case);
            if &got != argv {
                failures.push(format!("{name}: argv {got:?}, expected {argv:?}"));
            }
        }
        if let Err(e) = extra(&out, case, input) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {kind} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn flags_unit_fixtures() {
    run_cases(
        "unit",
        20,
        |text, _, edits| edit_unit_flags(text, edits),
        |text, _| unit_exec_start_args(text).unwrap(),
        |_, _, _| Ok(()),
    );
}

#[test]
fn flags_manifest_fixtures() {
    run_cases(
        "manifest",
        15,
        |text, case, edits| edit_manifest_flags(text, case.container.as_deref(), edits),
        |text, case| manifest_args(text, case.container.as_deref()).unwrap(),
        |out, case, _| {
            // Independent of the editor's own parser: the result is a Pod whose list serde_yaml reads back.
            let doc: serde_yaml::Value =
                serde_yaml::from_str(out).map_err(|e| format!("result does not parse: {e}"))?;
            let containers = doc["spec"]["containers"]
                .as_sequence()
                .ok_or("no containers")?;
            let c = match &case.container {
                Some(n) => containers.iter().find(|c| c["name"].as_str() == Some(n)),
                None => containers.first(),
            }
            .ok_or("container missing")?;
            let mut argv: Vec<String> = Vec::new();
            for key in ["command", "args"] {
                if let Some(items) = c.get(key).and_then(|v| v.as_sequence()) {
                    argv.extend(
                        items
                            .iter()
                            .map(|v| v.as_str().expect("string item").to_string()),
                    );
                }
            }
            match &case.argv {
                Some(want) if &argv != want => {
                    Err(format!("serde_yaml reads {argv:?}, expected {want:?}"))
                }
                _ => Ok(()),
            }
        },
    );
}

#[test]
fn flags_fstab_fixtures() {
    run_cases(
        "fstab",
        3,
        |text, _, _| Ok(comment_out_swap(text)),
        |text, _| active_swap_entries(text),
        |_, case, input| match &case.active_before {
            Some(want) if &active_swap_entries(input) != want => Err(format!(
                "active before {:?}, expected {want:?}",
                active_swap_entries(input)
            )),
            _ => Ok(()),
        },
    );
}

#[test]
fn flags_proc_swaps() {
    let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                /dev/sda3                               partition\t2097148\t\t0\t\t-2\n\
                /swapfile                               file\t\t1048572\t\t0\t\t-3\n";
    assert_eq!(parse_proc_swaps(text), ["/dev/sda3", "/swapfile"]);
    assert!(parse_proc_swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n").is_empty());
    assert!(parse_proc_swaps("").is_empty());
}

#[test]
fn flags_unit_crlf_kept() {
    let text = "[Service]\r\nExecStart=/bin/kubelet \\\r\n  --v=2 \\\r\n  --config=/c.yaml\r\nRestart=always\r\n";
    let out = edit_unit_flags(
        text,
        &[
            FlagEdit::set("--node-ip", "10.0.0.5"),
            FlagEdit::remove("--v"),
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        "[Service]\r\nExecStart=/bin/kubelet \\\r\n  --config=/c.yaml \\\r\n  --node-ip=10.0.0.5\r\nRestart=always\r\n"
    );
}

#[test]
fn flags_error_messages() {
    let err = edit_unit_flags("[Unit]\nDescription=x\n", &[FlagEdit::remove("--v")]).unwrap_err();
    assert_eq!(err.to_string(), "ExecStart not found in [Service] section");
    let err = edit_unit_flags(
        "[Service]\nExecStart=/bin/x\n",
        &[FlagEdit::set("--x", "a\nb")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "flag --x: value contains a newline; it would break the unit file"
    );
    let err =
        edit_unit_flags("[Service]\nExecStart=/bin/x\n", &[FlagEdit::set("x", "1")]).unwrap_err();
    assert!(matches!(err, FlagError::InvalidFlagName(_)), "{err}");
}

/// systemd itself must accept what the editor writes. Skipped when systemd-analyze is missing.
#[test]
fn flags_unit_accepted_by_systemd_analyze() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("systemd-analyze not found; skipping");
        return;
    }
    let input =
        std::fs::read_to_string(fixture_dir("unit").join("inputs/kube-apiserver.service")).unwrap();
    // verify needs the executable to exist; /bin/true accepts any flags.
    let input = input.replace("/usr/local/bin/kube-apiserver", "/bin/true");
    let edited = edit_unit_flags(
        &input,
        &[
            FlagEdit::remove("--v"),
            FlagEdit::set("--enable-bootstrap-token-auth", "true"),
            FlagEdit::set("--runtime-config", "api/all=true"),
            FlagEdit::set("--description", "say \"hi\" to 100% of $USER"),
            FlagEdit::remove("--advertise-address"),
        ],
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("bootstrapctl-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("kube-apiserver-flags-test.service");
    std::fs::write(&unit, &edited).unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Messages about the host (no systemd running, other units) are not about our file.
    let ours: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("kube-apiserver-flags-test"))
        .collect();
    for bad in [
        "Unknown key",
        "Missing '='",
        "Invalid",
        "Unbalanced",
        "bad unit file",
        "ignoring",
    ] {
        assert!(
            !ours.iter().any(|l| l.contains(bad)),
            "systemd-analyze complained ({bad}):\n{stderr}\n{stdout}\nunit:\n{edited}"
        );
    }
}

/// Every flag of the real inputs can be removed, changed and re-added without the editor's
/// own consistency check objecting, and each result is idempotent.
#[test]
fn flags_every_flag_of_real_inputs() {
    for file in [
        "kube-apiserver.service",
        "kube-controller-manager.service",
        "kubelet-tabs.service",
    ] {
        let input = std::fs::read_to_string(fixture_dir("unit").join("inputs").join(file)).unwrap();
        let argv = unit_exec_start_args(&input).unwrap();
        for word in &argv[1..] {
            let name = word.split('=').next().unwrap();
            for edits in [
                vec![FlagEdit::remove(name)],
                vec![FlagEdit::set(name, "new value")],
                vec![FlagEdit::remove(name), FlagEdit::set(name, "x")],
            ] {
                let out = edit_unit_flags(&input, &edits)
                    .unwrap_or_else(|e| panic!("{file} {edits:?}: {e}"));
                assert_eq!(
                    edit_unit_flags(&out, &edits).unwrap(),
                    out,
                    "{file} {edits:?}"
                );
            }
        }
    }
    for file in ["kube-apiserver.yaml", "kube-controller-manager.yaml"] {
        let input =
            std::fs::read_to_string(fixture_dir("manifest").join("inputs").join(file)).unwrap();
        let argv = manifest_args(&input, None).unwrap();
        for word in &argv[1..] {
            let name = word.split('=').next().unwrap();
            for edits in [
                vec![FlagEdit::remove(name)],
                vec![FlagEdit::set(name, "*: new")],
                vec![FlagEdit::remove(name), FlagEdit::set(name, "x")],
            ] {
                let out = edit_manifest_flags(&input, None, &edits)
                    .unwrap_or_else(|e| panic!("{file} {edits:?}: {e}"));
                assert_eq!(
                    edit_manifest_flags(&out, None, &edits).unwrap(),
                    out,
                    "{file} {edits:?}"
                );
            }
        }
    }
}
