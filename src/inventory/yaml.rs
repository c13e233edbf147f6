//! Ansible's YAML inventory plugin: `all`/`children`/`hosts`/`vars` nested to any depth, read
//! from YAML 1.1 nodes (`yaml11`), with file:line:column errors.

use std::path::Path;

use crate::yaml11::{self, Node, Yaml};

use super::connection;
use super::error::{InventoryError, Place};
use super::range;
use super::raw::Raw;

/// Why the YAML plugin declined the file (the next format is tried), or a hard error in a
/// file that is a YAML inventory.
pub(crate) enum Outcome {
    NotYaml(String),
    Failed(InventoryError),
}

/// Reads a YAML inventory into `raw`. A file that is not a YAML mapping of groups is
/// `NotYaml`, so the INI reader may try it, as Ansible's plugin chain does.
pub(crate) fn read(text: &str, source: &Path, raw: &mut Raw) -> Result<(), Outcome> {
    let doc = match yaml11::parse(text) {
        Ok(Some(doc)) => doc,
        Ok(None) => return Err(Outcome::NotYaml("the file is empty".to_string())),
        Err(e) => {
            return Err(Outcome::NotYaml(format!(
                "{}:{}:{}: {}",
                source.display(),
                e.line,
                e.column,
                e.message
            )))
        }
    };
    let Yaml::Map(groups) = &doc.value else {
        return Err(Outcome::NotYaml(format!(
            "an inventory is a mapping of groups (starting with \"all:\"), found {}",
            doc.describe()
        )));
    };
    if groups.is_empty() {
        return Err(Outcome::NotYaml("the file is empty".to_string()));
    }
    let mut reader = Reader { raw, source };
    for (name, body) in groups {
        reader.group(name, body).map_err(Outcome::Failed)?;
    }
    Ok(())
}

struct Reader<'a> {
    raw: &'a mut Raw,
    source: &'a Path,
}

impl Reader<'_> {
    fn err(&self, node: &Node, message: String) -> InventoryError {
        InventoryError::Invalid {
            place: Place {
                file: self.source.to_path_buf(),
                position: Some((node.line, node.column)),
            },
            message,
        }
    }

    fn group(&mut self, name_node: &Node, body: &Node) -> Result<String, InventoryError> {
        let Some(name) = name_node.as_str().map(str::to_string) else {
            return Err(self.err(
                name_node,
                format!(
                    "group names must be strings, found {}",
                    name_node.describe()
                ),
            ));
        };
        let pairs: &[(Node, Node)] = match &body.value {
            Yaml::Null => &[],
            Yaml::Map(pairs) => pairs,
            _ => {
                return Err(self.err(
                    body,
                    format!(
                        "group {name:?}: expected a mapping with hosts, vars or children, found {}",
                        body.describe()
                    ),
                ))
            }
        };
        let g = self.raw.add_group(&name);
        for (key, value) in pairs {
            let section = key.as_str().unwrap_or_default();
            if !matches!(section, "vars" | "hosts" | "children") {
                return Err(self.err(
                    key,
                    format!(
                        "group {name:?}: unknown key {} (expected hosts, vars, children)",
                        key.describe()
                    ),
                ));
            }
            // A lone string is a one-entry mapping, as Ansible allows (`hosts: web1`).
            let single;
            let entries: &[(Node, Node)] = match &value.value {
                Yaml::Null => &[],
                Yaml::Map(pairs) => pairs,
                Yaml::Str(_) if section != "vars" => {
                    single = [(
                        value.clone(),
                        Node {
                            value: Yaml::Null,
                            ..value.clone()
                        },
                    )];
                    &single
                }
                _ => {
                    let what = match section {
                        "vars" => "variables must be a mapping".to_string(),
                        s => format!(
                            "{s:?} must be a mapping of {} names (each name followed by \":\")",
                            if s == "hosts" { "host" } else { "group" }
                        ),
                    };
                    return Err(self.err(
                        value,
                        format!("group {name:?}: {what}, found {}", value.describe()),
                    ));
                }
            };
            match section {
                "vars" => {
                    for (k, v) in entries {
                        let var = self.var_name(k)?;
                        let value = self.checked(&format!("group {name:?}"), &var, v)?;
                        self.raw
                            .set_group_var(g, &var, value)
                            .map_err(|m| self.err(v, format!("group {name:?}: {m}")))?;
                    }
                }
                "children" => {
                    for (child, child_body) in entries {
                        let child_name = self.group(child, child_body)?;
                        self.raw
                            .add_child(&name, &child_name)
                            .map_err(|m| self.err(child, m))?;
                    }
                }
                _ => {
                    for (entry, vars) in entries {
                        self.hosts(g, &name, entry, vars)?;
                    }
                }
            }
        }
        Ok(name)
    }

    fn hosts(
        &mut self,
        g: usize,
        group: &str,
        entry: &Node,
        vars: &Node,
    ) -> Result<(), InventoryError> {
        let Some(pattern) = entry.as_str() else {
            let shown = match &entry.value {
                Yaml::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                _ => entry.describe(),
            };
            return Err(self.err(
                entry,
                format!(
                    "group {group:?}: host pattern {shown} must be a string; enclose integers and floats in quotation marks"
                ),
            ));
        };
        let (names, port) = range::expand_hostpattern(pattern)
            .map_err(|m| self.err(entry, format!("group {group:?}: host {pattern:?}: {m}")))?;
        let pairs: &[(Node, Node)] = match &vars.value {
            Yaml::Null => &[],
            Yaml::Map(pairs) => pairs,
            _ => {
                return Err(self.err(
                    vars,
                    format!(
                        "host {pattern:?}: variables must be a mapping, found {}",
                        vars.describe()
                    ),
                ))
            }
        };
        let mut values = Vec::new();
        for (k, v) in pairs {
            let var = self.var_name(k)?;
            values.push((
                var.clone(),
                self.checked(&format!("host {pattern:?}"), &var, v)?,
            ));
        }
        for name in names {
            let h = self.raw.add_host(&name, Some(g), self.source);
            if let Some(port) = port {
                self.raw.set_host_var(h, connection::PORT[1], port.into());
            }
            for (k, v) in &values {
                self.raw.set_host_var(h, k, v.clone());
            }
        }
        Ok(())
    }

    fn var_name(&self, key: &Node) -> Result<String, InventoryError> {
        match &key.value {
            Yaml::Str(s) => Ok(s.clone()),
            Yaml::Int(i) => Ok(i.to_string()),
            _ => Err(self.err(
                key,
                format!("variable names must be strings, found {}", key.describe()),
            )),
        }
    }

    fn checked(
        &self,
        owner: &str,
        var: &str,
        node: &Node,
    ) -> Result<serde_yaml::Value, InventoryError> {
        let value = yaml11::to_value(node);
        connection::check(var, &value)
            .map_err(|m| self.err(node, format!("{owner}: variable {var}: {m}")))?;
        Ok(value)
    }
}
