//! A task as written: its keywords and its body (a module call, a `block`, an include or
//! import, a `meta` action), read straight from the YAML stream so every error carries
//! file:line:column. Imports are resolved afterwards by `expand.rs`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::kv;
use super::model::{string_or_list, AnsibleBool, BoolKw, Cond};
use crate::modules::{canonical_name, ArgsSeed, ModuleArgs};

/// The role a task came from: where its templates and files are, and its variables.
#[derive(Debug, Clone, Default)]
pub struct RoleCx {
    pub name: String,
    pub dir: std::path::PathBuf,
    pub defaults: serde_yaml::Mapping,
    pub vars: serde_yaml::Mapping,
}

#[derive(Debug, Clone)]
pub struct Block {
    pub block: Vec<Task>,
    pub rescue: Vec<Task>,
    pub always: Vec<Task>,
}

/// `meta:` actions the engine carries out itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meta {
    FlushHandlers,
    EndPlay,
    EndHost,
    Noop,
}

/// Before `expand.rs`: an import, a role reference or a dynamic include as written.
#[derive(Debug, Clone)]
pub enum Reference {
    /// `import_tasks:` (static) or `include_tasks:` (dynamic; the file may be a template).
    Tasks { file: String, dynamic: bool },
    /// `import_role:` / `include_role:` (loaded when the playbook loads, in both cases).
    Role {
        name: String,
        tasks_from: Option<String>,
    },
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // nearly every task is a module call
pub enum Body {
    Module(ModuleArgs),
    Block(Box<Block>),
    Meta(Meta),
    /// A reference not yet expanded; after loading only dynamic `include_tasks` remain,
    /// with `dir`, the directories its file is looked up in.
    Ref(Box<Reference>, Arc<Vec<std::path::PathBuf>>),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub body: Body,
    pub when: Option<Cond>,
    pub changed_when: Option<Cond>,
    pub failed_when: Option<Cond>,
    pub until: Option<Cond>,
    pub retries: Option<u64>,
    pub delay: Option<u64>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub register: Option<String>,
    pub delegate_to: Option<String>,
    pub run_once: bool,
    pub no_log: bool,
    pub ignore_errors: BoolKw,
    pub tags: Vec<String>,
    pub loop_: Option<serde_yaml::Value>,
    pub loop_var: Option<String>,
    pub vars: serde_yaml::Mapping,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    /// `false`: run even in --check (read-only commands whose output later tasks need);
    /// `true`: never change anything, even without --check.
    pub check_mode: Option<bool>,
    pub environment: serde_yaml::Mapping,
    /// `diff: false`: the task's changes are not shown as diffs.
    pub diff: Option<bool>,
    /// Role and include parameters (above registered results, below extra vars).
    pub params: serde_yaml::Mapping,
    pub role: Option<Arc<RoleCx>>,
    /// Keywords written on this task itself, so that a block's value applies only where the
    /// task left it unset.
    pub explicit: BTreeSet<&'static str>,
    /// Added by the loader (the handler flushes between play sections): never reported.
    pub implicit: bool,
    /// Where the task was written (file:line), for messages.
    pub origin: String,
}

impl Task {
    pub fn display_name(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| match &self.body {
            Body::Module(m) => m.name().to_string(),
            Body::Block(_) => "block".into(),
            Body::Meta(_) => "meta".into(),
            Body::Ref(r, _) => match &**r {
                Reference::Tasks { file, .. } => format!("include_tasks {file}"),
                Reference::Role { name, .. } => format!("include_role {name}"),
            },
        });
        match &self.role {
            Some(r) if !r.name.is_empty() => format!("{} : {base}", r.name),
            _ => base,
        }
    }

    pub fn module(&self) -> Option<&ModuleArgs> {
        match &self.body {
            Body::Module(m) => Some(m),
            _ => None,
        }
    }

    /// A bare task around `body` (the loader's own tasks).
    pub fn bare(body: Body) -> Task {
        Task {
            name: None,
            body,
            when: None,
            changed_when: None,
            failed_when: None,
            until: None,
            retries: None,
            delay: None,
            notify: Vec::new(),
            listen: Vec::new(),
            register: None,
            delegate_to: None,
            run_once: false,
            no_log: false,
            ignore_errors: BoolKw::Lit(false),
            tags: Vec::new(),
            loop_: None,
            loop_var: None,
            vars: serde_yaml::Mapping::new(),
            become_: None,
            become_user: None,
            check_mode: None,
            environment: serde_yaml::Mapping::new(),
            diff: None,
            params: serde_yaml::Mapping::new(),
            role: None,
            explicit: BTreeSet::new(),
            implicit: false,
            origin: String::new(),
        }
    }

    /// Every task inside this one (a block's lists, recursively) and itself.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Task>) {
        out.push(self);
        if let Body::Block(b) = &self.body {
            for t in b.block.iter().chain(&b.rescue).chain(&b.always) {
                t.walk(out);
            }
        }
    }

    /// What a block (or an import, or a role entry) gives the tasks inside it: conditions
    /// and tags add up, variables merge under the task's own, other keywords apply where the
    /// task sets none.
    pub fn inherit_from(&mut self, parent: &Task) {
        if let Some(Cond(p)) = &parent.when {
            let mut all = p.clone();
            if let Some(Cond(own)) = &self.when {
                all.extend(own.iter().cloned());
            }
            self.when = Some(Cond(all));
        }
        for t in &parent.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        let mut vars = parent.vars.clone();
        vars.extend(std::mem::take(&mut self.vars));
        self.vars = vars;
        let mut env = parent.environment.clone();
        env.extend(std::mem::take(&mut self.environment));
        self.environment = env;
        let mut params = parent.params.clone();
        params.extend(std::mem::take(&mut self.params));
        self.params = params;
        if self.become_.is_none() {
            self.become_ = parent.become_;
        }
        if self.become_user.is_none() {
            self.become_user = parent.become_user.clone();
        }
        if self.delegate_to.is_none() {
            self.delegate_to = parent.delegate_to.clone();
        }
        if self.check_mode.is_none() {
            self.check_mode = parent.check_mode;
        }
        if !self.explicit.contains("no_log") {
            self.no_log |= parent.no_log;
        }
        if !self.explicit.contains("run_once") {
            self.run_once |= parent.run_once;
        }
        if !self.explicit.contains("ignore_errors") {
            self.ignore_errors = parent.ignore_errors.clone();
        }
        if self.role.is_none() {
            self.role = parent.role.clone();
        }
    }

    /// Hand a block's keywords down to the tasks inside it (recursively): after this, the
    /// block itself carries none, and each task can be judged on its own.
    pub fn push_down(&mut self) {
        if !matches!(self.body, Body::Block(_)) {
            return;
        }
        let Body::Block(mut b) = std::mem::replace(&mut self.body, Body::Meta(Meta::Noop)) else {
            return;
        };
        for t in b.block.iter_mut().chain(&mut b.rescue).chain(&mut b.always) {
            t.inherit_from(self);
            t.push_down();
        }
        self.body = Body::Block(b);
        self.when = None;
        self.tags.clear();
    }
}

pub const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "changed_when",
    "failed_when",
    "until",
    "retries",
    "delay",
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
    "with_list",
    "with_dict",
    "loop_control",
    "vars",
    "become",
    "become_user",
    "check_mode",
    "environment",
    "diff",
    "args",
    "block",
    "rescue",
    "always",
    "meta",
    "import_tasks",
    "include_tasks",
    "import_role",
    "include_role",
    "debugger",
];

/// Modules of Ansible that bootstrapctl does not have, with what to use instead.
const INSTEAD: &[(&str, &str)] = &[
    (
        "apt",
        "command/shell (bootstrapctl does not manage packages)",
    ),
    (
        "yum",
        "command/shell (bootstrapctl does not manage packages)",
    ),
    (
        "dnf",
        "command/shell (bootstrapctl does not manage packages)",
    ),
    (
        "package",
        "command/shell (bootstrapctl does not manage packages)",
    ),
    ("user", "command/shell"),
    ("group", "command/shell"),
    ("unarchive", "command/shell"),
    ("get_url", "command/shell with curl"),
    ("uri", "command/shell with curl"),
    ("pause", "command: sleep N"),
    ("wait_for", "command/shell in a loop with until/retries"),
    ("reboot", "command/shell"),
];

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Task, D::Error> {
        d.deserialize_map(TaskVisitor)
    }
}

struct TaskVisitor;

/// A module's value: a mapping read in place, or free-form text (`key=value` words).
#[allow(clippy::large_enum_variant)] // short-lived, while a task is read
enum RawArgs {
    Parsed(ModuleArgs),
    Text(String),
    Null,
}

struct RawSeed(&'static str);

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = RawArgs;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawArgs, D::Error> {
        struct V(&'static str);
        impl<'de> Visitor<'de> for V {
            type Value = RawArgs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the arguments of `{}`", self.0)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawArgs, A::Error> {
                ArgsSeed(self.0)
                    .deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawArgs::Parsed)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawArgs, E> {
                Ok(RawArgs::Text(s.to_string()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawArgs, E> {
                Ok(RawArgs::Text(b.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawArgs, E> {
                Ok(RawArgs::Text(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawArgs, E> {
                Ok(RawArgs::Text(n.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawArgs, E> {
                Ok(RawArgs::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RawArgs, A::Error> {
                ArgsSeed(self.0)
                    .deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawArgs::Parsed)
            }
        }
        d.deserialize_any(V(self.0))
    }
}

#[derive(Deserialize)]
struct Strings(#[serde(deserialize_with = "string_or_list")] Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoopControl {
    loop_var: Option<String>,
    /// Accepted: results are shown by item anyway.
    #[serde(default, rename = "label")]
    _label: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleArgs {
    name: String,
    tasks_from: Option<String>,
    #[serde(default)]
    public: Option<serde_yaml::Value>,
    #[serde(default)]
    apply: Option<serde_yaml::Value>,
}

/// `import_tasks: file.yml` or `import_tasks: {file: file.yml}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileArg {
    Text(String),
    Map { file: String },
}

impl<'de> Visitor<'de> for TaskVisitor {
    type Value = Task;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task: a mapping with one module and task keywords")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Task, A::Error> {
        let mut t = Task::bare(Body::Meta(Meta::Noop));
        let mut module: Option<(&'static str, RawArgs)> = None;
        let mut body: Option<Body> = None;
        let mut args: Option<serde_yaml::Mapping> = None;
        let (mut block, mut rescue, mut always) = (None, Vec::new(), Vec::new());
        let seen_body = |what: &str, prev: &Option<String>| -> Result<(), A::Error> {
            match prev {
                Some(p) => Err(de::Error::custom(format!(
                    "task has two actions: `{p}` and `{what}`"
                ))),
                None => Ok(()),
            }
        };
        let mut action: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            let k = key.as_str();
            if let Some(kw) = TASK_KEYWORDS.iter().find(|w| **w == k) {
                t.explicit.insert(kw);
            }
            match k {
                "name" => t.name = Some(map.next_value()?),
                "when" => t.when = Some(map.next_value()?),
                "changed_when" => t.changed_when = Some(map.next_value()?),
                "failed_when" => t.failed_when = Some(map.next_value()?),
                "until" => t.until = Some(map.next_value()?),
                "retries" => t.retries = Some(map.next_value()?),
                "delay" => t.delay = Some(map.next_value()?),
                "notify" => t.notify = map.next_value::<Strings>()?.0,
                "listen" => t.listen = map.next_value::<Strings>()?.0,
                "register" => t.register = Some(map.next_value()?),
                "delegate_to" => t.delegate_to = Some(map.next_value()?),
                "run_once" => t.run_once = map.next_value::<AnsibleBool>()?.0,
                "no_log" => t.no_log = map.next_value::<AnsibleBool>()?.0,
                "ignore_errors" => t.ignore_errors = map.next_value()?,
                "tags" => t.tags = map.next_value::<Strings>()?.0,
                "loop" | "with_items" | "with_list" => t.loop_ = Some(map.next_value()?),
                "with_dict" => t.loop_ = Some(dict_items(map.next_value()?)),
                "diff" => t.diff = Some(map.next_value::<AnsibleBool>()?.0),
                "loop_control" => t.loop_var = map.next_value::<LoopControl>()?.loop_var,
                "vars" => t.vars = map.next_value()?,
                "become" => t.become_ = Some(map.next_value::<AnsibleBool>()?.0),
                "become_user" => t.become_user = Some(map.next_value()?),
                "check_mode" => t.check_mode = Some(map.next_value::<AnsibleBool>()?.0),
                "environment" => t.environment = map.next_value()?,
                "debugger" => {
                    map.next_value::<de::IgnoredAny>()?;
                }
                "args" => args = Some(map.next_value()?),
                "block" => {
                    seen_body(k, &action)?;
                    action = Some(key.clone());
                    block = Some(map.next_value::<Vec<Task>>()?);
                }
                "rescue" => rescue = map.next_value()?,
                "always" => always = map.next_value()?,
                "meta" => {
                    seen_body(k, &action)?;
                    action = Some(key.clone());
                    body = Some(Body::Meta(map.next_value().map_err(|_| {
                        de::Error::custom(
                            "meta: expected one of flush_handlers, end_play, end_host, noop",
                        )
                    })?));
                }
                _ => {
                    let short = k.strip_prefix("ansible.builtin.").unwrap_or(k);
                    let short = short.strip_prefix("ansible.legacy.").unwrap_or(short);
                    match short {
                        "import_tasks" | "include_tasks" | "include" => {
                            seen_body(k, &action)?;
                            action = Some(key.clone());
                            let file = match map.next_value::<FileArg>().map_err(|_| {
                                de::Error::custom(format!("{k}: expected a file name"))
                            })? {
                                FileArg::Text(f) | FileArg::Map { file: f } => f,
                            };
                            body = Some(Body::Ref(
                                Box::new(Reference::Tasks {
                                    file,
                                    dynamic: short != "import_tasks",
                                }),
                                Arc::new(Vec::new()),
                            ));
                        }
                        "import_role" | "include_role" => {
                            seen_body(k, &action)?;
                            action = Some(key.clone());
                            let a: RoleArgs = map.next_value()?;
                            let _ = (a.public, a.apply);
                            body = Some(Body::Ref(
                                Box::new(Reference::Role {
                                    name: a.name,
                                    tasks_from: a.tasks_from,
                                }),
                                Arc::new(Vec::new()),
                            ));
                        }
                        _ => match canonical_name(k) {
                            Some(m) => {
                                seen_body(k, &action)?;
                                action = Some(key.clone());
                                module = Some((m, map.next_value_seed(RawSeed(m))?));
                            }
                            None => return Err(de::Error::custom(unknown_key(k))),
                        },
                    }
                }
            }
        }
        if let Some(block) = block {
            body = Some(Body::Block(Box::new(Block {
                block,
                rescue,
                always,
            })));
        } else if !rescue.is_empty() || !always.is_empty() {
            return Err(de::Error::custom("`rescue` and `always` need a `block`"));
        }
        if let Some((name, raw)) = module {
            body = Some(Body::Module(
                module_args(name, raw, args).map_err(de::Error::custom)?,
            ));
        } else if args.is_some() {
            return Err(de::Error::custom("`args` needs a module"));
        }
        t.body = body.ok_or_else(|| {
            de::Error::custom(format!(
                "task {}has no module (one of: {})",
                t.name
                    .as_ref()
                    .map(|n| format!("{n:?} "))
                    .unwrap_or_default(),
                crate::modules::MODULE_NAMES.join(", ")
            ))
        })?;
        Ok(t)
    }
}

/// `with_dict: X` as the loop Ansible makes of it: X's items as `{key, value}`.
fn dict_items(v: serde_yaml::Value) -> serde_yaml::Value {
    match v {
        serde_yaml::Value::Mapping(m) => serde_yaml::Value::Sequence(
            m.into_iter()
                .map(|(k, v)| {
                    let mut item = serde_yaml::Mapping::new();
                    item.insert("key".into(), k);
                    item.insert("value".into(), v);
                    serde_yaml::Value::Mapping(item)
                })
                .collect(),
        ),
        serde_yaml::Value::String(s) => {
            let inner = s
                .trim()
                .strip_prefix("{{")
                .and_then(|x| x.strip_suffix("}}"))
                .unwrap_or(&s)
                .trim()
                .to_string();
            format!("{{{{ ({inner}) | dict2items }}}}").into()
        }
        other => other,
    }
}

/// A module's arguments from its value and `args:`, as Ansible merges them.
fn module_args(
    name: &'static str,
    raw: RawArgs,
    args: Option<serde_yaml::Mapping>,
) -> Result<ModuleArgs, String> {
    let mut map = match raw {
        RawArgs::Parsed(m) if args.is_none() => return Ok(m),
        RawArgs::Parsed(_) => {
            return Err(format!(
                "`{name}` has its arguments both as a mapping and in `args`: give them in one place"
            ))
        }
        RawArgs::Text(text) => kv::split_for(&text, name)?,
        RawArgs::Null => serde_yaml::Mapping::new(),
    };
    if let Some(a) = args {
        for (k, v) in a {
            map.entry(k).or_insert(v);
        }
    }
    let value = serde_yaml::Value::Mapping(map);
    ArgsSeed(name)
        .deserialize(value)
        .map_err(|e| format!("{name}: {e}"))
}

/// The message for a key that is neither a module nor a keyword: the nearest of those.
fn unknown_key(k: &str) -> String {
    let short = k
        .rsplit('.')
        .next()
        .filter(|_| k.contains('.'))
        .unwrap_or(k);
    if let Some((_, use_)) = INSTEAD.iter().find(|(m, _)| *m == short) {
        return format!("unknown module or task keyword `{k}`: bootstrapctl has no `{short}` module; use {use_}");
    }
    let near = crate::modules::MODULE_NAMES
        .iter()
        .chain(TASK_KEYWORDS)
        .map(|c| (distance(short, c), *c))
        .min();
    let hint = match near {
        Some((d, c)) if d <= 2 || c.starts_with(short) => format!("did you mean `{c}`? "),
        _ => String::new(),
    };
    format!(
        "unknown module or task keyword `{k}` ({hint}modules: {}; keywords: {})",
        crate::modules::MODULE_NAMES.join(", "),
        TASK_KEYWORDS.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
