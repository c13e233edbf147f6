//! Roles: an entry of a play's `roles:` (a name, or a mapping of the role, its keywords and
//! its parameters), and a role's directory in the standard layout (tasks, handlers,
//! defaults, vars, meta dependencies; templates and files are found through `RoleCx::dir`).

use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::task::{Body, Meta, Task, TASK_KEYWORDS};

/// One entry of `roles:` or of a role's `dependencies:`.
#[derive(Debug, Clone)]
pub struct RoleEntry {
    pub name: String,
    /// The entry's keywords (`when`, `tags`, `become`...) on a task with no action.
    pub keywords: Box<Task>,
    /// Everything else in the entry (and its `vars:`): the role's parameters.
    pub params: serde_yaml::Mapping,
}

impl<'de> Deserialize<'de> for RoleEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RoleEntry, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        RoleEntry::from_value(v).map_err(de::Error::custom)
    }
}

impl RoleEntry {
    pub fn from_value(v: serde_yaml::Value) -> Result<RoleEntry, String> {
        let map = match v {
            serde_yaml::Value::String(name) => {
                return Ok(RoleEntry {
                    name,
                    keywords: Box::new(Task::bare(Body::Meta(Meta::Noop))),
                    params: serde_yaml::Mapping::new(),
                })
            }
            serde_yaml::Value::Mapping(m) => m,
            other => {
                return Err(format!(
                    "a role is a name or a mapping with `role:`, not {other:?}"
                ))
            }
        };
        let mut name = None;
        let mut keywords = serde_yaml::Mapping::new();
        let mut params = serde_yaml::Mapping::new();
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default().to_string();
            match key.as_str() {
                "role" | "name" => name = v.as_str().map(str::to_string),
                "vars" => {
                    if let serde_yaml::Value::Mapping(m) = v {
                        params.extend(m);
                    }
                }
                k if TASK_KEYWORDS.contains(&k) => {
                    keywords.insert(key.into(), v);
                }
                _ => {
                    params.insert(k, v);
                }
            }
        }
        let name = name.ok_or("a role entry needs `role:` (the role's name)")?;
        keywords.insert("meta".into(), "noop".into());
        let keywords: Task = serde_yaml::from_value(serde_yaml::Value::Mapping(keywords))
            .map_err(|e| format!("role {name}: {e}"))?;
        Ok(RoleEntry {
            name,
            keywords: Box::new(keywords),
            params,
        })
    }
}

/// A role's file `sub/main.yml` (or `.yaml`, or `sub/<name>.yml` with `tasks_from`).
pub fn role_file(dir: &Path, sub: &str, name: &str) -> Option<PathBuf> {
    let base = dir.join(sub);
    let stem = name
        .strip_suffix(".yml")
        .or_else(|| name.strip_suffix(".yaml"))
        .unwrap_or(name);
    [
        base.join(format!("{stem}.yml")),
        base.join(format!("{stem}.yaml")),
        base.join(stem),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Where a role named `name` is: `roles/` beside the playbook, each roles path, then the
/// playbook's own directory (Ansible's order). A name with a `/` is a path.
pub fn find_role(
    name: &str,
    playbook_dir: &Path,
    roles_path: &[PathBuf],
) -> Result<PathBuf, String> {
    let mut dirs = vec![playbook_dir.join("roles")];
    dirs.extend(roles_path.iter().cloned());
    dirs.push(playbook_dir.to_path_buf());
    if name.contains('/') {
        let p = playbook_dir.join(name);
        if p.is_dir() {
            return Ok(p);
        }
    }
    for d in &dirs {
        let p = d.join(name);
        if p.join("tasks").is_dir() || p.join("meta").is_dir() || p.join("handlers").is_dir() {
            return Ok(p);
        }
    }
    let mut known: Vec<String> = Vec::new();
    for d in &dirs {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                if e.path().join("tasks").is_dir() {
                    known.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    known.sort();
    let near = known
        .iter()
        .map(|k| (super::task::distance(name, k), k))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    Err(format!(
        "role `{name}` not found in {} (roles there: {}){near}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}
