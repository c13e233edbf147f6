//! Data-driven tests: every `tests/fixtures/inventory/NAME.expect.yaml` checks `NAME.yaml`.
//!
//! An expect file may hold (all optional): `inventory` (path of the inventory, relative to the
//! fixtures directory; default `NAME.yaml`), `error` (the exact load error), `host_count`,
//! `hosts` (names in order), `groups` (all group names), `group_hosts` (group → names),
//! `host` (name → `groups`, `vars` (exact), `connection` (accessor → value or null),
//! `accessor_errors` (accessor → exact message)), `select` (pattern → names) and
//! `select_errors` (pattern → exact message). Errors name the inventory by the path given.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{Host, Inventory};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
}

fn names(hosts: &[&Host]) -> Value {
    Value::Sequence(
        hosts
            .iter()
            .map(|h| Value::String(h.name.clone()))
            .collect(),
    )
}

fn strings(list: Vec<String>) -> Value {
    Value::Sequence(list.into_iter().map(Value::String).collect())
}

fn key(value: &Value) -> String {
    value
        .as_str()
        .expect("expect-file keys are strings")
        .to_string()
}

fn accessor(host: &Host, name: &str) -> Result<Value, String> {
    let to_value = |r: Result<Option<String>, _>| r.map(|o| o.map_or(Value::Null, Value::String));
    let result = match name {
        "address" => host.address().map(Value::String),
        "port" => host
            .port()
            .map(|p| p.map_or(Value::Null, |p| Value::Number(p.into()))),
        "user" => to_value(host.user()),
        "private_key_file" => to_value(
            host.private_key_file()
                .map(|p| p.map(|p| p.display().to_string())),
        ),
        "become" => host.become_().map(Value::Bool),
        "become_user" => to_value(host.become_user()),
        "connection" => host.connection().map(Value::String),
        other => panic!("unknown accessor {other} in an expect file"),
    };
    result.map_err(|e| e.to_string())
}

/// Checks one case; returns the differences found.
fn check_case(expect_path: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(what);
    let expect: Mapping =
        serde_yaml::from_str(&std::fs::read_to_string(expect_path).unwrap()).unwrap();
    let file_name = expect_path.file_name().unwrap().to_str().unwrap();
    let default = file_name.replace(".expect.yaml", ".yaml");
    let inventory_name = expect
        .get("inventory")
        .and_then(Value::as_str)
        .unwrap_or(&default);
    let text = std::fs::read_to_string(fixtures_dir().join(inventory_name))
        .unwrap_or_else(|e| panic!("reading {inventory_name}: {e}"));
    let loaded = Inventory::parse(&text, Path::new(inventory_name));

    if let Some(want) = expect.get("error") {
        match loaded {
            Ok(_) => fail(format!("loaded, but expected error {want:?}")),
            Err(e) if want.as_str() != Some(&e.to_string()) => fail(format!(
                "error\n   got: {e}\n  want: {}",
                want.as_str().unwrap()
            )),
            Err(_) => {}
        }
        return failures;
    }
    let inv = match loaded {
        Ok(inv) => inv,
        Err(e) => {
            fail(format!("failed to load: {e}"));
            return failures;
        }
    };
    let mut compare = |what: String, got: Value, want: &Value| {
        if got != *want {
            fail(format!(
                "{what}\n   got: {}\n  want: {}",
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(want).unwrap()
            ));
        }
    };
    if let Some(want) = expect.get("host_count") {
        compare(
            "host_count".into(),
            Value::Number(inv.hosts().len().into()),
            want,
        );
    }
    if let Some(want) = expect.get("hosts") {
        let all: Vec<&Host> = inv.hosts().iter().collect();
        compare("hosts".into(), names(&all), want);
    }
    if let Some(want) = expect.get("groups") {
        compare("groups".into(), strings(inv.group_names()), want);
    }
    for (group, want) in expect
        .get("group_hosts")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let group = key(group);
        compare(
            format!("group_hosts({group})"),
            strings(inv.group_hosts(&group)),
            want,
        );
    }
    for (name, want) in expect
        .get("host")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let name = key(name);
        let Some(host) = inv.host(&name) else {
            compare(format!("host {name}"), Value::Null, want);
            continue;
        };
        if let Some(groups) = want.get("groups") {
            compare(
                format!("{name}.groups"),
                strings(host.groups.clone()),
                groups,
            );
        }
        if let Some(vars) = want.get("vars") {
            compare(
                format!("{name}.vars"),
                Value::Mapping(host.vars.clone()),
                vars,
            );
        }
        for (acc, value) in want
            .get("connection")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let acc = key(acc);
            match accessor(host, &acc) {
                Ok(got) => compare(format!("{name}.{acc}()"), got, value),
                Err(e) => compare(
                    format!("{name}.{acc}()"),
                    Value::String(format!("error: {e}")),
                    value,
                ),
            }
        }
        for (acc, message) in want
            .get("accessor_errors")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let acc = key(acc);
            let got = match accessor(host, &acc) {
                Ok(v) => Value::String(format!("no error, got {v:?}")),
                Err(e) => Value::String(e),
            };
            compare(format!("{name}.{acc}() error"), got, message);
        }
    }
    for (pattern, want) in expect
        .get("select")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let pattern = key(pattern);
        let got = match inv.select(&pattern) {
            Ok(hosts) => names(&hosts),
            Err(e) => Value::String(format!("error: {e}")),
        };
        compare(format!("select({pattern:?})"), got, want);
    }
    for (pattern, want) in expect
        .get("select_errors")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let pattern = key(pattern);
        let got = match inv.select(&pattern) {
            Ok(hosts) => Value::String(format!("no error, selected {:?}", names(&hosts))),
            Err(e) => Value::String(e.to_string()),
        };
        compare(format!("select_errors({pattern:?})"), got, want);
    }
    failures
}

#[test]
fn fixture_cases() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".expect.yaml")))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the fixture cases, found {cases:?}"
    );
    let mut report = String::new();
    for case in &cases {
        for failure in check_case(case) {
            report.push_str(&format!(
                "{}: {failure}\n",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(report.is_empty(), "fixture failures:\n{report}");
}

#[test]
fn loads_the_example_inventory_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory/example.yaml");
    let inv = Inventory::load(&path).unwrap();
    assert_eq!(inv.hosts().len(), 53);
    assert_eq!(inv.source(), path);
}

#[test]
fn load_names_a_missing_file() {
    let err = Inventory::load(Path::new("/nonexistent/inventory.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading /nonexistent/inventory.yaml: No such file or directory (os error 2)"
    );
}
