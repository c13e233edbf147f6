//! The Play, Task and Handler model, deserialized straight from the YAML stream so every
//! unknown key, unknown module and wrong type is reported with file:line:column.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::modules::{canonical_name, ArgsSeed, ModuleArgs};

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
        // A visitor, not an untagged enum, so an error points at the value itself.
        struct V;
        fn bad<E: de::Error>(shown: String) -> E {
            E::custom(format!(
                "{shown} is not a boolean (true/false, yes/no, on/off, 1/0)"
            ))
        }
        impl Visitor<'_> for V {
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
        d.deserialize_any(V)
    }
}

fn ansible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    AnsibleBool::deserialize(d).map(|b| b.0)
}

fn ansible_bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    AnsibleBool::deserialize(d).map(|b| Some(b.0))
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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
    #[serde(default)]
    pub hosts: String,
    /// `- import_playbook: other.yaml`: the other playbook's plays, in place.
    #[serde(default)]
    pub import_playbook: Option<String>,
    #[serde(default)]
    pub vars: serde_yaml::Mapping,
    #[serde(default, rename = "become", deserialize_with = "ansible_bool_opt")]
    pub become_: Option<bool>,
    #[serde(default)]
    pub become_user: Option<String>,
    #[serde(default)]
    pub serial: Option<Serial>,
    #[serde(default)]
    pub max_fail_percentage: Option<f64>,
    #[serde(default, deserialize_with = "ansible_bool")]
    pub any_errors_fatal: bool,
    #[serde(default = "default_true", deserialize_with = "ansible_bool")]
    pub gather_facts: bool,
    #[serde(default, deserialize_with = "string_or_list")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub handlers: Vec<Task>,
    /// The file this play came from (imports keep theirs), for messages.
    #[serde(skip)]
    pub source: std::path::PathBuf,
}

fn default_true() -> bool {
    true
}

impl Play {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.hosts.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub module: ModuleArgs,
    pub when: Option<Cond>,
    pub changed_when: Option<Cond>,
    pub failed_when: Option<Cond>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub register: Option<String>,
    pub delegate_to: Option<String>,
    pub run_once: bool,
    pub no_log: bool,
    pub ignore_errors: bool,
    pub tags: Vec<String>,
    pub loop_: Option<serde_yaml::Value>,
    pub vars: serde_yaml::Mapping,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    /// `false`: run even in --check (read-only commands whose output later tasks need);
    /// `true`: never change anything, even without --check.
    pub check_mode: Option<bool>,
}

impl Task {
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.module.name().to_string())
    }
}

const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "changed_when",
    "failed_when",
    "notify",
    "listen",
    "register",
    "delegate_to",
    "run_once",
    "no_log",
    "ignore_errors",
    "tags",
    "loop",
    "with_items",
    "vars",
    "become",
    "become_user",
    "check_mode",
];

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Task, D::Error> {
        d.deserialize_map(TaskVisitor)
    }
}

struct TaskVisitor;

/// A task's keywords while its mapping is read; the module comes separately.
#[derive(Default)]
struct Keywords {
    when: Option<Cond>,
    changed_when: Option<Cond>,
    failed_when: Option<Cond>,
    notify: Vec<String>,
    listen: Vec<String>,
    register: Option<String>,
    delegate_to: Option<String>,
    run_once: bool,
    no_log: bool,
    ignore_errors: bool,
    tags: Vec<String>,
    loop_: Option<serde_yaml::Value>,
    vars: serde_yaml::Mapping,
    become_: Option<bool>,
    become_user: Option<String>,
    check_mode: Option<bool>,
}

impl<'de> Visitor<'de> for TaskVisitor {
    type Value = Task;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task: a mapping with one module and task keywords")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Task, A::Error> {
        let mut name = None;
        let mut module: Option<ModuleArgs> = None;
        let mut t = Keywords::default();
        #[derive(Deserialize)]
        struct Strings(#[serde(deserialize_with = "string_or_list")] Vec<String>);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "when" => t.when = Some(map.next_value()?),
                "changed_when" => t.changed_when = Some(map.next_value()?),
                "failed_when" => t.failed_when = Some(map.next_value()?),
                "notify" => t.notify = map.next_value::<Strings>()?.0,
                "listen" => t.listen = map.next_value::<Strings>()?.0,
                "register" => t.register = Some(map.next_value()?),
                "delegate_to" => t.delegate_to = Some(map.next_value()?),
                "run_once" => t.run_once = map.next_value::<AnsibleBool>()?.0,
                "no_log" => t.no_log = map.next_value::<AnsibleBool>()?.0,
                "ignore_errors" => t.ignore_errors = map.next_value::<AnsibleBool>()?.0,
                "tags" => t.tags = map.next_value::<Strings>()?.0,
                "loop" | "with_items" => t.loop_ = Some(map.next_value()?),
                "vars" => t.vars = map.next_value()?,
                "become" => t.become_ = Some(map.next_value::<AnsibleBool>()?.0),
                "become_user" => t.become_user = Some(map.next_value()?),
                "check_mode" => t.check_mode = Some(map.next_value::<AnsibleBool>()?.0),
                other => match canonical_name(other) {
                    Some(m) => {
                        if let Some(prev) = &module {
                            return Err(de::Error::custom(format!(
                                "task has two modules: `{}` and `{other}`",
                                prev.name()
                            )));
                        }
                        module = Some(map.next_value_seed(ArgsSeed(m))?);
                    }
                    None => {
                        return Err(de::Error::custom(format!(
                            "unknown module or task keyword `{other}` (modules: {}; keywords: {})",
                            crate::modules::MODULE_NAMES.join(", "),
                            TASK_KEYWORDS.join(", ")
                        )))
                    }
                },
            }
        }
        let module = module.ok_or_else(|| {
            de::Error::custom(format!(
                "task {}has no module (one of: {})",
                name.as_ref()
                    .map(|n: &String| format!("{n:?} "))
                    .unwrap_or_default(),
                crate::modules::MODULE_NAMES.join(", ")
            ))
        })?;
        Ok(Task {
            name,
            module,
            when: t.when,
            changed_when: t.changed_when,
            failed_when: t.failed_when,
            notify: t.notify,
            listen: t.listen,
            register: t.register,
            delegate_to: t.delegate_to,
            run_once: t.run_once,
            no_log: t.no_log,
            ignore_errors: t.ignore_errors,
            tags: t.tags,
            loop_: t.loop_,
            vars: t.vars,
            become_: t.become_,
            become_user: t.become_user,
            check_mode: t.check_mode,
        })
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
