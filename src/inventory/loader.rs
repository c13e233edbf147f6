//! Reads Ansible's YAML inventory into groups and hosts as written, with file:line:column errors.
//!
//! The document is walked with serde visitors straight from `serde_yaml::Deserializer`, not via
//! `serde_yaml::Value`: an error raised inside a visitor gets the position of the YAML node being
//! visited, so an unknown key or a bad range is reported where it is written. The message of
//! such an error is kept aside in `Parser::failure`, because serde_yaml's own rendering prefixes
//! it with a path and appends the position in its own words.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
use serde_yaml::{Mapping, Value};

use super::connection;
use super::error::{InventoryError, Place};
use super::range;

/// The inventory as declared, before group membership and variables are resolved.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    /// Every group declared anywhere, by name; a group declared in several places is merged.
    pub(crate) groups: BTreeMap<String, RawGroup>,
    /// Groups declared at the top level other than `all`: they are children of `all`.
    pub(crate) top: Vec<String>,
    /// Host names in file order of first appearance.
    pub(crate) hosts: Vec<String>,
    /// Each host's own variables; later declarations override earlier ones.
    pub(crate) host_vars: HashMap<String, Mapping>,
}

#[derive(Debug, Default)]
pub(crate) struct RawGroup {
    /// The group's `vars`, later declarations overriding earlier ones.
    pub(crate) vars: Mapping,
    /// Hosts listed directly under the group, in file order.
    pub(crate) hosts: Vec<String>,
    /// Groups listed under `children`, in file order.
    pub(crate) children: Vec<String>,
}

/// Parses `text`; `source` names the file in errors.
pub(crate) fn read(text: &str, source: &Path) -> Result<Raw, InventoryError> {
    let mut parser = Parser::default();
    let result =
        DocumentSeed { p: &mut parser }.deserialize(serde_yaml::Deserializer::from_str(text));
    match result {
        Ok(()) => Ok(parser.raw),
        Err(err) => {
            let position = err.location().map(|l| (l.line(), l.column()));
            let place = Place {
                file: source.to_path_buf(),
                position,
            };
            Err(match parser.failure.take() {
                Some(message) => InventoryError::Invalid { place, message },
                None => InventoryError::Syntax {
                    place,
                    message: yaml_message(&err, position),
                },
            })
        }
    }
}

/// Position (line, column) of the first `children` entry `child` under group `parent`, found by
/// parsing again and stopping there. Used for errors found after parsing, such as cycles.
pub(crate) fn locate_child(text: &str, parent: &str, child: &str) -> Option<(usize, usize)> {
    let target = Some((parent.to_string(), child.to_string()));
    let mut parser = Parser {
        locate: target,
        ..Parser::default()
    };
    let result =
        DocumentSeed { p: &mut parser }.deserialize(serde_yaml::Deserializer::from_str(text));
    match result {
        Err(err) if parser.failure.as_deref() == Some(LOCATED) => {
            err.location().map(|l| (l.line(), l.column()))
        }
        _ => None,
    }
}

const LOCATED: &str = "located";

/// serde_yaml's message without the position it appends (we print it in front instead).
fn yaml_message(err: &serde_yaml::Error, position: Option<(usize, usize)>) -> String {
    let text = err.to_string();
    match position {
        Some((line, column)) => text.replacen(&format!(" at line {line} column {column}"), "", 1),
        None => text,
    }
}

#[derive(Default)]
struct Parser {
    raw: Raw,
    /// The message of the error raised by our own visitors, if one was.
    failure: Option<String>,
    /// A `children` entry (parent, child) to stop at, for `locate_child`.
    locate: Option<(String, String)>,
}

impl Parser {
    /// Raises `message` at the YAML node being visited.
    fn fail<E: de::Error>(&mut self, message: String) -> E {
        let err = E::custom(&message);
        self.failure = Some(message);
        err
    }

    fn group(&mut self, name: &str) -> &mut RawGroup {
        self.raw.groups.entry(name.to_string()).or_default()
    }

    fn add_host(&mut self, group: &str, name: &str, vars: &Mapping) {
        if !self.raw.host_vars.contains_key(name) {
            self.raw.hosts.push(name.to_string());
        }
        let own = self.raw.host_vars.entry(name.to_string()).or_default();
        for (key, value) in vars {
            own.insert(key.clone(), value.clone());
        }
        let hosts = &mut self.group(group).hosts;
        if !hosts.iter().any(|h| h == name) {
            hosts.push(name.to_string());
        }
    }
}

/// Words for a YAML node of the wrong kind: `a list`, `"text"`, `12`, `true`.
fn found(unexpected: Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(n) => n.to_string(),
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Unit => "null".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a mapping".to_string(),
        Unexpected::Enum => "a tagged value".to_string(),
        other => other.to_string(),
    }
}

/// Visitor methods for the YAML node kinds a visitor does not accept, each calling
/// `self.reject(kind)`. The visitor accepts mappings and null unless told otherwise.
macro_rules! reject_scalars_and_lists {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(self.reject(Unexpected::Bool(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(self.reject(Unexpected::Signed(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(self.reject(Unexpected::Unsigned(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(self.reject(Unexpected::Float(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(self.reject(Unexpected::Str(v)))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.reject(Unexpected::Seq))
        }
        fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.reject(Unexpected::Enum))
        }
    };
}

/// The whole document: a mapping of group names (usually just `all`), or nothing.
struct DocumentSeed<'p> {
    p: &'p mut Parser,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of group names")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let p = self.p;
        while let Some(name) = map.next_key_seed(KeySeed {
            p: &mut *p,
            what: "group names",
            check: |_: &mut Parser, key: String| Ok(key),
        })? {
            map.next_value_seed(GroupSeed {
                p: &mut *p,
                name: name.clone(),
            })?;
            if name != "all" && !p.raw.top.contains(&name) {
                p.raw.top.push(name);
            }
        }
        Ok(())
    }
    reject_scalars_and_lists!();
}

impl DocumentSeed<'_> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!(
            "an inventory is a mapping of groups (starting with \"all:\"), found {}",
            found(unexpected)
        );
        self.p.fail(message)
    }
}

/// A mapping key, which must be a string (numbers are taken as their text); `check` turns it
/// into the value wanted, or into an error reported at the key.
struct KeySeed<'p, F> {
    p: &'p mut Parser,
    what: &'p str,
    check: F,
}

impl<'de, T, F> DeserializeSeed<'de> for KeySeed<'_, F>
where
    F: FnOnce(&mut Parser, String) -> Result<T, String>,
{
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F> Visitor<'de> for KeySeed<'_, F>
where
    F: FnOnce(&mut Parser, String) -> Result<T, String>,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match (self.check)(&mut *self.p, v.to_string()) {
            Ok(value) => Ok(value),
            Err(message) => Err(self.p.fail(message)),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Err(self.reject(Unexpected::Bool(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(self.reject(Unexpected::Float(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(self.reject(Unexpected::Unit))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(self.reject(Unexpected::Seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(self.reject(Unexpected::Map))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(self.reject(Unexpected::Enum))
    }
}

impl<F> KeySeed<'_, F> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!("{} must be strings, found {}", self.what, found(unexpected));
        self.p.fail(message)
    }
}

/// One group's body: `hosts`, `vars` and `children`, each optional; null is an empty group.
struct GroupSeed<'p> {
    p: &'p mut Parser,
    name: String,
}

enum Field {
    Vars,
    Hosts,
    Children,
}

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.p.group(&self.name);
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a group")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let GroupSeed { p, name } = self;
        let what = format!("group {name:?}: keys");
        while let Some(field) = map.next_key_seed(KeySeed {
            p: &mut *p,
            what: &what,
            check: |_: &mut Parser, key: String| match key.as_str() {
                "vars" => Ok(Field::Vars),
                "hosts" => Ok(Field::Hosts),
                "children" => Ok(Field::Children),
                _ => Err(format!(
                    "group {name:?}: unknown key {key:?} (expected hosts, vars, children)"
                )),
            },
        })? {
            match field {
                Field::Vars => {
                    let vars = map.next_value_seed(VarsSeed {
                        p: &mut *p,
                        owner: format!("group {name:?}"),
                    })?;
                    let group = p.group(&name);
                    for (key, value) in vars {
                        group.vars.insert(key, value);
                    }
                }
                Field::Hosts => map.next_value_seed(HostsSeed {
                    p: &mut *p,
                    group: &name,
                })?,
                Field::Children => map.next_value_seed(ChildrenSeed {
                    p: &mut *p,
                    parent: &name,
                })?,
            }
        }
        Ok(())
    }
    reject_scalars_and_lists!();
}

impl GroupSeed<'_> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!(
            "group {:?}: expected a mapping with hosts, vars or children, found {}",
            self.name,
            found(unexpected)
        );
        self.p.fail(message)
    }
}

/// A group's `hosts`: host names (with ranges) mapped to their variables or to nothing.
struct HostsSeed<'p> {
    p: &'p mut Parser,
    group: &'p str,
}

impl<'de> DeserializeSeed<'de> for HostsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HostsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of host names")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let HostsSeed { p, group } = self;
        let what = format!("group {group:?}: host names");
        while let Some((written, names)) = map.next_key_seed(KeySeed {
            p: &mut *p,
            what: &what,
            check: |_: &mut Parser, key: String| match range::expand(&key) {
                Ok(names) => Ok((key, names)),
                Err(message) => Err(format!("group {group:?}: host {key:?}: {message}")),
            },
        })? {
            let vars = map.next_value_seed(VarsSeed {
                p: &mut *p,
                owner: format!("host {written:?}"),
            })?;
            for name in &names {
                p.add_host(group, name, &vars);
            }
        }
        Ok(())
    }
    reject_scalars_and_lists!();
}

impl HostsSeed<'_> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!(
            "group {:?}: \"hosts\" must be a mapping of host names (each name followed by \":\"), found {}",
            self.group,
            found(unexpected)
        );
        self.p.fail(message)
    }
}

/// A group's `children`: group names mapped to their bodies or to nothing.
struct ChildrenSeed<'p> {
    p: &'p mut Parser,
    parent: &'p str,
}

impl<'de> DeserializeSeed<'de> for ChildrenSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChildrenSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of group names")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ChildrenSeed { p, parent } = self;
        let what = format!("group {parent:?}: child group names");
        while let Some(child) = map.next_key_seed(KeySeed {
            p: &mut *p,
            what: &what,
            check: |p: &mut Parser, key: String| {
                let wanted = p.locate.as_ref();
                if wanted.is_some_and(|(wp, wc)| wp == parent && *wc == key) {
                    return Err(LOCATED.to_string());
                }
                Ok(key)
            },
        })? {
            let children = &mut p.group(parent).children;
            if !children.contains(&child) {
                children.push(child.clone());
            }
            map.next_value_seed(GroupSeed {
                p: &mut *p,
                name: child,
            })?;
        }
        Ok(())
    }
    reject_scalars_and_lists!();
}

impl ChildrenSeed<'_> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!(
            "group {:?}: \"children\" must be a mapping of group names (each name followed by \":\"), found {}",
            self.parent,
            found(unexpected)
        );
        self.p.fail(message)
    }
}

/// A mapping of variables (a group's `vars` or a host's own), or nothing.
struct VarsSeed<'p> {
    p: &'p mut Parser,
    /// `group "web"` or `host "web-1"`, for messages.
    owner: String,
}

impl<'de> DeserializeSeed<'de> for VarsSeed<'_> {
    type Value = Mapping;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Mapping, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for VarsSeed<'_> {
    type Value = Mapping;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of variables")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Mapping, E> {
        Ok(Mapping::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Mapping, E> {
        Ok(Mapping::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Mapping, A::Error> {
        let VarsSeed { p, owner } = self;
        let what = format!("{owner}: variable names");
        let mut vars = Mapping::new();
        while let Some(var) = map.next_key_seed(KeySeed {
            p: &mut *p,
            what: &what,
            check: |_: &mut Parser, key: String| Ok(key),
        })? {
            let value = map.next_value_seed(ValueSeed {
                p: &mut *p,
                owner: &owner,
                var: &var,
            })?;
            vars.insert(Value::String(var), value);
        }
        Ok(vars)
    }
    reject_scalars_and_lists!();
}

impl VarsSeed<'_> {
    fn reject<E: de::Error>(self, unexpected: Unexpected<'_>) -> E {
        let message = format!(
            "{}: variables must be a mapping, found {}",
            self.owner,
            found(unexpected)
        );
        self.p.fail(message)
    }
}

/// One variable's value, any YAML; connection variables are type-checked where written.
struct ValueSeed<'p> {
    p: &'p mut Parser,
    owner: &'p str,
    var: &'p str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn checked<E: de::Error>(self, value: Value) -> Result<Value, E> {
        match connection::check(self.var, &value) {
            Ok(()) => Ok(value),
            Err(message) => {
                let message = format!("{}: variable {}: {message}", self.owner, self.var);
                Err(self.p.fail(message))
            }
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.checked(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.checked(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.checked(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.checked(Value::Number(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.checked(Value::String(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.checked(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.checked(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        let value = serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.checked(value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let value = serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.checked(value)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let value = serde::Deserialize::deserialize(de::value::EnumAccessDeserializer::new(data))?;
        self.checked(value)
    }
}
