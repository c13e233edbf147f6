//! The Play model and the keyword value types (serial, conditions, Ansible booleans),
//! deserialized straight from the YAML stream so every unknown key and wrong type is
//! reported with file:line:column. Tasks are in `task.rs`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::task::Task;

#[derive(Debug, Clone)]
pub struct Playbook {
    pub plays: Vec<Play>,
}

/// `serial: 5`, `serial: "30%"`, or a list of either for growing batches.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Serial {
    Count(u64),
    Percent(String),
    Steps(Vec<SerialStep>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SerialStep {
    Count(u64),
    Percent(String),
}

impl Serial {
    /// Batch sizes for `n` hosts, as Ansible computes them: percentages of the play's host
    /// count rounded down but at least 1; the last step repeats until every host ran.
    pub fn batches(&self, n: usize) -> Result<Vec<usize>, String> {
        let one = |step: &SerialStep| -> Result<usize, String> {
            Ok(match step {
                SerialStep::Count(c) => *c as usize,
                SerialStep::Percent(p) => {
                    let pct: f64 = p
                        .trim()
                        .strip_suffix('%')
                        .unwrap_or(p)
                        .trim()
                        .parse()
                        .map_err(|_| format!("serial: {p:?} is not a number or percentage"))?;
                    ((n as f64) * pct / 100.0).floor() as usize
                }
            }
            .max(1))
        };
        let steps: Vec<usize> = match self {
            Serial::Count(c) => vec![one(&SerialStep::Count(*c))?],
            Serial::Percent(p) => vec![one(&SerialStep::Percent(p.clone()))?],
            Serial::Steps(s) if s.is_empty() => vec![n.max(1)],
            Serial::Steps(s) => s.iter().map(one).collect::<Result<_, _>>()?,
        };
        let mut out = Vec::new();
        let mut left = n;
        let mut i = 0;
        while left > 0 {
            let size = steps[i.min(steps.len() - 1)].min(left);
            out.push(size);
            left -= size;
            i += 1;
        }
        Ok(out)
    }
}

/// A condition: a bare expression, a bool, or a list of expressions that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond(pub Vec<String>);

impl<'de> Deserialize<'de> for Cond {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cond, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            One(String),
            Many(Vec<String>),
        }
        Ok(Cond(
            match Raw::deserialize(d).map_err(|_| {
                de::Error::custom(
                    "expected a condition: an expression, a boolean or a list of expressions",
                )
            })? {
                Raw::Bool(b) => vec![b.to_string()],
                Raw::One(s) => vec![s],
                Raw::Many(v) => v,
            },
        ))
    }
}

/// A boolean keyword as Ansible reads it: a YAML boolean, 0/1, or a string its `boolean()`
/// accepts (`yes`, `on`, `True`... the YAML 1.1 booleans and their quoted forms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnsibleBool(pub bool);

impl<'de> Deserialize<'de> for AnsibleBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AnsibleBool, D::Error> {
        d.deserialize_any(AnsibleBoolVisitor)
    }
}

/// A visitor, not an untagged enum, so an error points at the value itself.
struct AnsibleBoolVisitor;

fn bad<E: de::Error>(shown: String) -> E {
    E::custom(format!(
        "{shown} is not a boolean (true/false, yes/no, on/off, 1/0)"
    ))
}
impl Visitor<'_> for AnsibleBoolVisitor {
    type Value = AnsibleBool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean (true/false, yes/no, on/off, 1/0)")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<AnsibleBool, E> {
        Ok(AnsibleBool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<AnsibleBool, E> {
        match n {
            0 | 1 => Ok(AnsibleBool(n == 1)),
            _ => Err(bad(n.to_string())),
        }
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<AnsibleBool, E> {
        match n {
            0 | 1 => Ok(AnsibleBool(n == 1)),
            _ => Err(bad(n.to_string())),
        }
    }
    fn visit_str<E: de::Error>(self, t: &str) -> Result<AnsibleBool, E> {
        crate::yaml11::ansible_boolean(t)
            .map(AnsibleBool)
            .ok_or_else(|| bad(format!("{t:?}")))
    }
}

fn ansible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    AnsibleBool::deserialize(d).map(|b| b.0)
}

fn ansible_bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    AnsibleBool::deserialize(d).map(|b| Some(b.0))
}

/// A boolean keyword that may be a template (`any_errors_fatal: "{{ x | default(true) }}"`),
/// rendered when the play runs and then read as Ansible's `boolean()` reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolKw {
    Lit(bool),
    Tpl(String),
}

impl Default for BoolKw {
    fn default() -> Self {
        BoolKw::Lit(false)
    }
}

impl BoolKw {
    pub fn resolve(
        &self,
        t: &crate::template::Templates,
        ctx: &minijinja::Value,
        what: &str,
    ) -> Result<bool, String> {
        match self {
            BoolKw::Lit(b) => Ok(*b),
            BoolKw::Tpl(src) => {
                let v = t.render_value(src, ctx, what).map_err(|e| e.to_string())?;
                if let Some(s) = v.as_str() {
                    return crate::yaml11::ansible_boolean(s.trim()).ok_or_else(|| {
                        format!("{what}: rendered value {s:?} is not a boolean (true/false, yes/no, on/off, 1/0)")
                    });
                }
                Ok(v.is_true())
            }
        }
    }
    /// The value when it needs no rendering.
    pub fn literal(&self) -> Option<bool> {
        match self {
            BoolKw::Lit(b) => Some(*b),
            BoolKw::Tpl(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for BoolKw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BoolKw, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BoolKw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean (true/false, yes/no, on/off, 1/0) or a template")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<BoolKw, E> {
                Ok(BoolKw::Lit(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<BoolKw, E> {
                AnsibleBoolVisitor.visit_i64(n).map(|b| BoolKw::Lit(b.0))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<BoolKw, E> {
                AnsibleBoolVisitor.visit_u64(n).map(|b| BoolKw::Lit(b.0))
            }
            fn visit_str<E: de::Error>(self, t: &str) -> Result<BoolKw, E> {
                if crate::template::is_template(t) {
                    return Ok(BoolKw::Tpl(t.to_string()));
                }
                AnsibleBoolVisitor.visit_str(t).map(|b| BoolKw::Lit(b.0))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("expected a string or a list of strings"))?
        {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        },
    )
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    #[serde(default)]
    pub name: Option<String>,
    /// Required, except on an `import_playbook` entry.
    #[serde(default, deserialize_with = "hosts_pattern")]
    pub hosts: String,
    /// `- import_playbook: other.yaml`: the other playbook's plays, in place.
    #[serde(default, alias = "ansible.builtin.import_playbook")]
    pub import_playbook: Option<String>,
    #[serde(default)]
    pub vars: serde_yaml::Mapping,
    /// Files of variables, above `vars` (read when the playbook loads, into `file_vars`).
    #[serde(default, deserialize_with = "string_or_list")]
    pub vars_files: Vec<String>,
    #[serde(skip)]
    pub file_vars: serde_yaml::Mapping,
    #[serde(default, rename = "become", deserialize_with = "ansible_bool_opt")]
    pub become_: Option<bool>,
    #[serde(default)]
    pub become_user: Option<String>,
    #[serde(default)]
    pub serial: Option<Serial>,
    #[serde(default)]
    pub max_fail_percentage: Option<f64>,
    #[serde(default)]
    pub any_errors_fatal: BoolKw,
    #[serde(default = "default_true", deserialize_with = "ansible_bool")]
    pub gather_facts: bool,
    #[serde(default, deserialize_with = "string_or_list")]
    pub tags: Vec<String>,
    /// Variables of the environment every command of the play runs with.
    #[serde(default)]
    pub environment: serde_yaml::Mapping,
    #[serde(default)]
    pub pre_tasks: Vec<Task>,
    #[serde(default)]
    pub roles: Vec<super::roles::RoleEntry>,
    /// After loading: pre_tasks, roles, tasks and post_tasks in order, with the handler
    /// flushes Ansible makes between them.
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub post_tasks: Vec<Task>,
    #[serde(default)]
    pub handlers: Vec<Task>,
    /// Accepted and ignored: bootstrapctl runs every host through its tasks on its own
    /// (Ansible's `free` strategy, with plays as barriers).
    #[serde(default, rename = "strategy")]
    pub _strategy: Option<String>,
    /// The defaults and vars of every role of the play, in order (Ansible exposes them to
    /// the whole play).
    #[serde(skip)]
    pub role_defaults: serde_yaml::Mapping,
    #[serde(skip)]
    pub role_vars: serde_yaml::Mapping,
    /// The file this play came from (imports keep theirs), for messages.
    #[serde(skip)]
    pub source: std::path::PathBuf,
}

/// `hosts: a:b` or `hosts: [a, b]` (a list is the union).
fn hosts_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string_or_list(d).map(|v| v.join(":"))
}

fn default_true() -> bool {
    true
}

impl Play {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.hosts.clone())
    }

    /// Every task of the play and its handlers, blocks opened.
    pub fn all_tasks(&self) -> Vec<&Task> {
        let mut out = Vec::new();
        for t in self.tasks.iter().chain(&self.handlers) {
            t.walk(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches_follow_ansible() {
        assert_eq!(Serial::Count(2).batches(5).unwrap(), vec![2, 2, 1]);
        assert_eq!(
            Serial::Percent("30%".into()).batches(10).unwrap(),
            vec![3, 3, 3, 1]
        );
        assert_eq!(
            Serial::Percent("10%".into()).batches(5).unwrap(),
            vec![1; 5]
        );
        assert_eq!(
            Serial::Percent("33.4%".into()).batches(3).unwrap(),
            vec![1, 1, 1]
        );
        assert_eq!(
            Serial::Steps(vec![
                SerialStep::Count(1),
                SerialStep::Percent("50%".into())
            ])
            .batches(6)
            .unwrap(),
            vec![1, 3, 2]
        );
        assert_eq!(Serial::Count(0).batches(2).unwrap(), vec![1, 1]);
    }
}
