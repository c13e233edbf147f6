//! Variable scopes and their precedence, as Ansible orders them: inventory (all < parent group
//! < child group < host) < play vars < task vars < facts and registered results < extra vars.

use std::collections::BTreeMap;
use std::path::PathBuf;

use minijinja::Value;

use crate::hoststate::Facts;
use crate::secret::mask_assignments;
use crate::template::{render_yaml, TemplateError, Templates};

/// Values shared by every host of a run: built once, cloned cheaply (minijinja values are Arc).
#[derive(Debug, Clone)]
pub struct Shared {
    pub groups: Value,
    pub hostvars: Value,
    /// Ansible's magic variables of the current play and batch (`ansible_play_hosts`,
    /// `ansible_play_batch`): set by the engine, seen by play vars.
    pub magic: BTreeMap<String, Value>,
    pub extra: BTreeMap<String, Value>,
}

/// One host's variables for one task.
pub struct Scope<'a> {
    pub host: &'a str,
    pub inventory: &'a serde_yaml::Mapping,
    pub play_vars: &'a serde_yaml::Mapping,
    pub task_vars: &'a serde_yaml::Mapping,
    pub facts: Option<&'a Facts>,
    pub registered: &'a BTreeMap<String, Value>,
    pub item: Option<&'a Value>,
}

fn key_string(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Build the template context. Vars whose values are templates are rendered against the
/// scopes below them, in precedence order, so play vars may use inventory vars and so on.
pub fn context(t: &Templates, shared: &Shared, s: &Scope<'_>) -> Result<Value, TemplateError> {
    let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
    ctx.insert("inventory_hostname".into(), Value::from(s.host));
    ctx.insert(
        "inventory_hostname_short".into(),
        Value::from(s.host.split('.').next().unwrap_or(s.host)),
    );
    ctx.insert("groups".into(), shared.groups.clone());
    ctx.insert("hostvars".into(), shared.hostvars.clone());
    for (k, v) in &shared.magic {
        ctx.insert(k.clone(), v.clone());
    }
    // Vars render in order, which is as far as Ansible's lazy evaluation matters here: a var
    // that cannot render (it uses something undefined) is left out, and its error is kept so a
    // template that uses it says why (see template::convert).
    let mut broken: BTreeMap<String, Value> = BTreeMap::new();
    for (layer, what) in [
        (s.inventory, "inventory vars"),
        (s.play_vars, "play vars"),
        (s.task_vars, "task vars"),
    ] {
        for (k, v) in layer {
            let snapshot = Value::from(ctx.clone());
            match render_yaml(t, v, &snapshot, &format!("{what} {}", key_string(k))) {
                Ok(value) => {
                    broken.remove(&key_string(k));
                    ctx.insert(key_string(k), value);
                }
                Err(e) => {
                    ctx.remove(&key_string(k));
                    broken.insert(key_string(k), Value::from(e.to_string()));
                }
            }
        }
    }
    if !broken.is_empty() {
        ctx.insert(crate::template::BROKEN_VARS.into(), Value::from(broken));
    }
    if let Some(f) = s.facts {
        ctx.insert("ansible_facts".into(), Value::from_serialize(f));
        ctx.insert("ansible_hostname".into(), Value::from(f.hostname.clone()));
        ctx.insert("ansible_architecture".into(), Value::from(f.arch.clone()));
        ctx.insert("ansible_kernel".into(), Value::from(f.kernel.clone()));
        ctx.insert("ansible_distribution".into(), Value::from(f.os_id.clone()));
    }
    for (k, v) in s.registered {
        ctx.insert(k.clone(), v.clone());
    }
    for (k, v) in &shared.extra {
        ctx.insert(k.clone(), v.clone());
    }
    if let Some(item) = s.item {
        ctx.insert("item".into(), item.clone());
    }
    Ok(Value::from(ctx))
}

/// Why an `-e` argument could not be read. An argument is shown with the values of
/// secret-named variables masked (`bootstrap_token=<redacted>`): it failed to parse, so the
/// run's redactor cannot know its values yet.
#[derive(Debug, thiserror::Error)]
pub enum ExtraVarsError {
    #[error("-e @{}: cannot read the file", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `FILE:LINE:COLUMN` of a vars file that is not a YAML mapping.
    #[error("-e @{}{}: cannot read variables", .path.display(), position(.source))]
    File {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("-e {}: not a YAML mapping", mask_assignments(.arg))]
    Inline {
        arg: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("-e {}: cannot split into words", mask_assignments(.arg))]
    Words {
        arg: String,
        #[source]
        source: shell_words::ParseError,
    },
    #[error("-e {:?}: expected key=value or @file.yaml", mask_assignments(.0))]
    NotKeyValue(String),
    #[error("-e {:?}: empty variable name", mask_assignments(.0))]
    EmptyName(String),
}

fn position(e: &serde_yaml::Error) -> String {
    e.location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default()
}

/// `-e key=value` and `-e @file.yaml` (later ones win), parsed into extra vars.
pub fn parse_extra_vars(args: &[String]) -> Result<BTreeMap<String, Value>, ExtraVarsError> {
    let mut out = BTreeMap::new();
    for arg in args {
        if let Some(path) = arg.strip_prefix('@') {
            let text = std::fs::read_to_string(path).map_err(|source| ExtraVarsError::Read {
                path: path.into(),
                source,
            })?;
            let map: serde_yaml::Mapping =
                serde_yaml::from_str(&text).map_err(|source| ExtraVarsError::File {
                    path: path.into(),
                    source,
                })?;
            for (k, v) in map {
                out.insert(key_string(&k), Value::from_serialize(&v));
            }
        } else if arg.trim_start().starts_with('{') {
            let map: serde_yaml::Mapping =
                serde_yaml::from_str(arg).map_err(|source| ExtraVarsError::Inline {
                    arg: arg.clone(),
                    source,
                })?;
            for (k, v) in map {
                out.insert(key_string(&k), Value::from_serialize(&v));
            }
        } else {
            let words = shell_words::split(arg).map_err(|source| ExtraVarsError::Words {
                arg: arg.clone(),
                source,
            })?;
            for pair in words {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(ExtraVarsError::NotKeyValue(pair));
                };
                if k.is_empty() {
                    return Err(ExtraVarsError::EmptyName(pair));
                }
                // key=value gives strings, as in Ansible.
                out.insert(k.to_string(), Value::from(v));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_rendering_in_order() {
        let t = Templates::new(vec![]);
        let inv: serde_yaml::Mapping =
            serde_yaml::from_str("a: inv\nb: inv\nc: inv\nport: 6443").unwrap();
        let play: serde_yaml::Mapping =
            serde_yaml::from_str("b: play\nurl: 'https://{{ inventory_hostname }}:{{ port }}'")
                .unwrap();
        let task: serde_yaml::Mapping = serde_yaml::from_str("c: task").unwrap();
        let shared = Shared {
            magic: BTreeMap::new(),
            groups: Value::from(BTreeMap::<String, Vec<String>>::new()),
            hostvars: Value::from(BTreeMap::<String, Value>::new()),
            extra: parse_extra_vars(&["c=extra".into()]).unwrap(),
        };
        let ctx = context(
            &t,
            &shared,
            &Scope {
                host: "cp-1",
                inventory: &inv,
                play_vars: &play,
                task_vars: &task,
                facts: None,
                registered: &BTreeMap::new(),
                item: None,
            },
        )
        .unwrap();
        let get = |k: &str| ctx.get_attr(k).unwrap().to_string();
        assert_eq!(
            (get("a"), get("b"), get("c")),
            ("inv".into(), "play".into(), "extra".into())
        );
        assert_eq!(get("url"), "https://cp-1:6443");
    }

    #[test]
    fn a_var_that_cannot_render_is_named_when_used() {
        let t = Templates::new(vec![]);
        let play: serde_yaml::Mapping =
            serde_yaml::from_str("url: 'https://{{ nohost.address }}'").unwrap();
        let shared = Shared {
            magic: BTreeMap::new(),
            groups: Value::from(BTreeMap::<String, Vec<String>>::new()),
            hostvars: Value::from(BTreeMap::<String, Value>::new()),
            extra: BTreeMap::new(),
        };
        let empty = serde_yaml::Mapping::new();
        let ctx = context(
            &t,
            &shared,
            &Scope {
                host: "h",
                inventory: &empty,
                play_vars: &play,
                task_vars: &empty,
                facts: None,
                registered: &BTreeMap::new(),
                item: None,
            },
        )
        .unwrap();
        let err = t
            .render_str("{{ url }}", &ctx, "x")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "template x line 1: variable `url` could not be rendered: undefined variable `nohost.address` in play vars url line 1");
    }

    #[test]
    fn extra_vars_forms() {
        let v = parse_extra_vars(&["a=1 b='x y'".into(), "{\"c\": [1]}".into()]).unwrap();
        assert_eq!(v["a"].as_str(), Some("1"));
        assert_eq!(v["b"].as_str(), Some("x y"));
        assert_eq!(v["c"].len(), Some(1));
        assert!(parse_extra_vars(&["nokey".into()])
            .unwrap_err()
            .to_string()
            .contains("expected key=value"));
    }
}
