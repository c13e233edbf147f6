//! Variable scopes and their precedence, as Ansible orders them: role defaults < inventory
//! (all < parent group < child group < host) < facts < play vars < vars_files < role vars <
//! block and task vars < registered results, set_fact and include_vars < role and include
//! params < extra vars; rendered lazily, as Ansible does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object};
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
    pub extra: Arc<Layer>,
}

/// One host's variables for one task, by layer, lowest precedence first. The layers are
/// built once and shared (see [`Layer`]).
pub struct Scope<'a> {
    pub host: &'a str,
    /// The host's groups but `all` and `ungrouped`, sorted (see [`group_names`]).
    pub group_names: Value,
    /// Role defaults: those of every role of the play, then the task's own role's.
    pub defaults: Vec<Arc<Layer>>,
    pub inventory: Arc<Layer>,
    pub facts: Option<Arc<Layer>>,
    /// Play vars, vars_files, role vars (the play's roles', then the task's role's), then
    /// block and task vars.
    pub play: Vec<Arc<Layer>>,
    /// `register:` results, `set_fact` and `include_vars`.
    pub registered: &'a BTreeMap<String, Value>,
    /// Role parameters and include parameters.
    pub params: Vec<Arc<Layer>>,
    /// The loop variable's name and value.
    pub item: Option<(&'a str, &'a Value)>,
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

/// A variable as its winning layer gives it: YAML still to render, or a value.
#[derive(Debug)]
enum Entry {
    Raw(serde_yaml::Value, &'static str),
    Fixed(Value),
}

/// The variables of one layer, ready for lookup. A layer is built once and shared by every
/// context that uses it: a play's vars by all of its hosts and tasks, a host's inventory vars
/// and facts by all of its tasks. (Copying every layer into one map for each task and host
/// was a third of a no-op run's CPU at 200 hosts.)
#[derive(Debug, Default)]
pub struct Layer(BTreeMap<String, Entry>);

impl Layer {
    /// YAML variables, rendered when used; a later mapping's variable wins.
    pub fn yaml(maps: &[&serde_yaml::Mapping], what: &'static str) -> Arc<Layer> {
        let mut entries = BTreeMap::new();
        for m in maps {
            for (k, v) in m.iter() {
                entries.insert(key_string(k), Entry::Raw(v.clone(), what));
            }
        }
        Arc::new(Layer(entries))
    }

    /// Variables that are values already.
    pub fn values(vars: impl IntoIterator<Item = (String, Value)>) -> Arc<Layer> {
        Arc::new(Layer(
            vars.into_iter()
                .map(|(k, v)| (k, Entry::Fixed(v)))
                .collect(),
        ))
    }

    /// The facts as Ansible names them (`ansible_facts` and every `ansible_<name>`).
    pub fn facts(f: &Facts) -> Arc<Layer> {
        Self::values(crate::engine::facts::ansible_facts(f))
    }
}

/// The variables of one task, rendered lazily as Ansible does: a variable's templates are
/// rendered when something uses it, against all the variables (so a role default may use a
/// variable the inventory overrides). A variable that cannot render is undefined, and why
/// is kept so that a template using it says so (see template::convert).
struct Lazy {
    templates: Arc<Templates>,
    /// Lowest precedence first: a name is looked up from the last layer down.
    layers: Vec<Arc<Layer>>,
    cache: Mutex<BTreeMap<String, Value>>,
    broken: Mutex<BTreeMap<String, Value>>,
    busy: Mutex<BTreeSet<String>>,
}

impl Lazy {
    fn entry(&self, k: &str) -> Option<&Entry> {
        self.layers.iter().rev().find_map(|l| l.0.get(k))
    }

    fn names(&self) -> BTreeSet<&str> {
        self.layers
            .iter()
            .flat_map(|l| l.0.keys().map(String::as_str))
            .collect()
    }
}

impl fmt::Debug for Lazy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.names().into_iter().map(|k| (k, "…")))
            .finish()
    }
}

impl Object for Lazy {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let k = key.as_str()?;
        if k == crate::template::BROKEN_VARS {
            let broken = self.broken.lock().expect("broken vars").clone();
            return Some(Value::from(broken));
        }
        let (raw, what) = match self.entry(k)? {
            Entry::Fixed(v) => return Some(v.clone()),
            Entry::Raw(raw, what) => (raw, what),
        };
        if let Some(v) = self.cache.lock().expect("var cache").get(k) {
            return Some(v.clone());
        }
        // A variable that uses itself (directly or not) is undefined inside itself.
        if !self.busy.lock().expect("busy vars").insert(k.to_string()) {
            return None;
        }
        let ctx = Value::from_dyn_object(self.clone());
        let rendered = render_yaml(&self.templates, raw, &ctx, &format!("{what} {k}"));
        self.busy.lock().expect("busy vars").remove(k);
        match rendered {
            Ok(v) => {
                self.cache
                    .lock()
                    .expect("var cache")
                    .insert(k.to_string(), v.clone());
                Some(v)
            }
            Err(e) => {
                self.broken
                    .lock()
                    .expect("broken vars")
                    .insert(k.to_string(), Value::from(e.to_string()));
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.names().into_iter().map(Value::from).collect();
        Enumerator::Values(keys)
    }
}

/// Ansible's `group_names`: the groups `host` is in but `all` and `ungrouped`, sorted.
pub fn group_names(groups: &Value, host: &str) -> Value {
    let mut names: Vec<String> = Vec::new();
    if let Ok(all) = groups.try_iter() {
        for g in all {
            let Some(name) = g.as_str() else { continue };
            if name == "all" || name == "ungrouped" {
                continue;
            }
            let member = groups
                .get_item(&g)
                .ok()
                .and_then(|hs| {
                    hs.try_iter()
                        .ok()
                        .map(|mut it| it.any(|h| h.as_str() == Some(host)))
                })
                .unwrap_or(false);
            if member {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Value::from(names)
}

/// Build the template context of one host and task (see [`Scope`] for the layers).
pub fn context(t: &Arc<Templates>, shared: &Shared, s: &Scope<'_>) -> Result<Value, TemplateError> {
    let mut fixed: BTreeMap<String, Entry> = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        fixed.insert(k.to_string(), Entry::Fixed(v));
    };
    put("inventory_hostname", Value::from(s.host));
    put(
        "inventory_hostname_short",
        Value::from(s.host.split('.').next().unwrap_or(s.host)),
    );
    put("groups", shared.groups.clone());
    put("group_names", s.group_names.clone());
    put("hostvars", shared.hostvars.clone());
    for (k, v) in &shared.magic {
        put(k, v.clone());
    }
    let mut layers = Vec::with_capacity(s.defaults.len() + s.play.len() + s.params.len() + 6);
    layers.push(Arc::new(Layer(fixed)));
    layers.extend(s.defaults.iter().cloned());
    layers.push(s.inventory.clone());
    layers.extend(s.facts.iter().cloned());
    layers.extend(s.play.iter().cloned());
    if !s.registered.is_empty() {
        layers.push(Layer::values(
            s.registered.iter().map(|(k, v)| (k.clone(), v.clone())),
        ));
    }
    layers.extend(s.params.iter().cloned());
    layers.push(shared.extra.clone());
    if let Some((name, item)) = s.item {
        layers.push(Layer::values([(name.to_string(), item.clone())]));
    }
    Ok(Value::from_object(Lazy {
        templates: t.clone(),
        layers,
        cache: Mutex::new(BTreeMap::new()),
        broken: Mutex::new(BTreeMap::new()),
        busy: Mutex::new(BTreeSet::new()),
    }))
}

/// A context with `more` on top of `ctx` (a register's result for changed_when, a loop
/// item): the rest of `ctx` stays lazy.
pub fn with(ctx: &Value, more: BTreeMap<String, Value>) -> Value {
    Value::from_object(Over {
        base: ctx.clone(),
        more,
    })
}

#[derive(Debug)]
struct Over {
    base: Value,
    more: BTreeMap<String, Value>,
}

impl Object for Over {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(v) = key.as_str().and_then(|k| self.more.get(k)) {
            return Some(v.clone());
        }
        self.base.get_item(key).ok().filter(|v| !v.is_undefined())
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: BTreeSet<String> = self.more.keys().cloned().collect();
        if let Ok(iter) = self.base.try_iter() {
            keys.extend(iter.filter_map(|k| k.as_str().map(str::to_string)));
        }
        Enumerator::Values(keys.into_iter().map(Value::from).collect())
    }
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
        let t = Arc::new(Templates::new(vec![]));
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
            extra: Layer::values(parse_extra_vars(&["c=extra".into()]).unwrap()),
        };
        let ctx = context(
            &t,
            &shared,
            &Scope {
                host: "cp-1",
                group_names: Value::from(Vec::<String>::new()),
                defaults: vec![],
                inventory: Layer::yaml(&[&inv], "inventory vars"),
                play: vec![Layer::yaml(&[&play, &task], "play vars")],
                facts: None,
                registered: &BTreeMap::new(),
                params: vec![],
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
        let t = Arc::new(Templates::new(vec![]));
        let play: serde_yaml::Mapping =
            serde_yaml::from_str("url: 'https://{{ nohost.address }}'").unwrap();
        let shared = Shared {
            magic: BTreeMap::new(),
            groups: Value::from(BTreeMap::<String, Vec<String>>::new()),
            hostvars: Value::from(BTreeMap::<String, Value>::new()),
            extra: Layer::values([]),
        };
        let empty = serde_yaml::Mapping::new();
        let ctx = context(
            &t,
            &shared,
            &Scope {
                host: "h",
                group_names: Value::from(Vec::<String>::new()),
                defaults: vec![],
                inventory: Layer::yaml(&[&empty], "inventory vars"),
                play: vec![Layer::yaml(&[&play], "play vars")],
                facts: None,
                registered: &BTreeMap::new(),
                params: vec![],
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
    fn role_defaults_render_lazily_against_what_overrides_them() {
        let t = Arc::new(Templates::new(vec![]));
        let defaults: serde_yaml::Mapping = serde_yaml::from_str(
            "port: 80\nurl: 'http://{{ inventory_hostname }}:{{ port }}'\nloop_a: '{{ loop_a }}'",
        )
        .unwrap();
        let inv: serde_yaml::Mapping = serde_yaml::from_str("port: 8080").unwrap();
        let params: serde_yaml::Mapping = serde_yaml::from_str("p: '{{ url }}/x'").unwrap();
        let shared = Shared {
            magic: BTreeMap::new(),
            groups: Value::from(BTreeMap::<String, Vec<String>>::new()),
            hostvars: Value::from(BTreeMap::<String, Value>::new()),
            extra: Layer::values([]),
        };
        let ctx = context(
            &t,
            &shared,
            &Scope {
                host: "w1",
                group_names: Value::from(Vec::<String>::new()),
                defaults: vec![Layer::yaml(&[&defaults], "role defaults")],
                inventory: Layer::yaml(&[&inv], "inventory vars"),
                play: vec![],
                facts: None,
                registered: &BTreeMap::new(),
                params: vec![Layer::yaml(&[&params], "role and include params")],
                item: None,
            },
        )
        .unwrap();
        assert_eq!(ctx.get_attr("p").unwrap().to_string(), "http://w1:8080/x");
        assert!(t.render_str("{{ loop_a }}", &ctx, "x").is_err());
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
