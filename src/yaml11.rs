//! YAML read as Ansible's loader (PyYAML, YAML 1.1) reads it: `yes`/`on`/`True` are booleans,
//! `0644` is octal, `1:30` is sexagesimal, `1e3` is a string, `<<` merges mappings, and the
//! `!vault`/`!unsafe` tags are kept. Every node keeps its line and column for errors.
//!
//! serde_yaml resolves plain scalars by YAML 1.2 and cannot tell `yes` from `"yes"`, so the
//! document is read from yaml-rust2's event stream, which reports each scalar's style and tag.

use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag as EventTag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The tag under which an inline vault value is kept in a `serde_yaml::Value`.
pub const VAULT_TAG: &str = "!vault";
/// The tag under which a `!unsafe` string is kept in a `serde_yaml::Value`.
pub const UNSAFE_TAG: &str = "!unsafe";

/// One YAML node and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Yaml,
    pub line: usize,
    pub column: usize,
}

/// A node's value, with scalars already resolved as YAML 1.1.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; a repeated key keeps its first place and takes the later value,
    /// as a Python dict does.
    Map(Vec<(Node, Node)>),
    /// An inline `!vault` value: the ciphertext, as written.
    Vault(String),
    /// A `!unsafe` string: never to be templated.
    Unsafe(String),
}

/// A YAML syntax error, or a tag Ansible's loader has no constructor for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct Yaml11Error {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one document; `None` when the text holds no document (empty or only comments).
pub fn parse(text: &str) -> Result<Option<Node>, Yaml11Error> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| Yaml11Error {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    if builder.documents.len() > 1 {
        let second = &builder.documents[1];
        return Err(Yaml11Error {
            line: second.line,
            column: second.column,
            message: "expected a single YAML document, found another one".to_string(),
        });
    }
    Ok(builder.documents.pop())
}

/// Parses one document into a `serde_yaml::Value` (null when empty).
#[cfg(test)]
fn from_str(text: &str) -> Result<Value, Yaml11Error> {
    Ok(parse(text)?.map_or(Value::Null, |n| to_value(&n)))
}

/// The node as a `serde_yaml::Value`; an inline vault becomes a value tagged [`VAULT_TAG`].
pub fn to_value(node: &Node) -> Value {
    match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Int(i) => Value::Number((*i).into()),
        Yaml::Float(f) => Value::Number((*f).into()),
        Yaml::Str(s) => Value::String(s.clone()),
        Yaml::Seq(items) => Value::Sequence(items.iter().map(to_value).collect()),
        Yaml::Map(pairs) => {
            let mut map = Mapping::new();
            for (k, v) in pairs {
                map.insert(to_value(k), to_value(v));
            }
            Value::Mapping(map)
        }
        Yaml::Vault(text) => Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(VAULT_TAG),
            value: Value::String(text.clone()),
        })),
        Yaml::Unsafe(text) => Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(UNSAFE_TAG),
            value: Value::String(text.clone()),
        })),
    }
}

impl Node {
    /// The key's text when the node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Words for the node's kind in messages: `a list`, `"text"`, `12`, `true`, `null`.
    pub fn describe(&self) -> String {
        match &self.value {
            Yaml::Null => "null".to_string(),
            Yaml::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Yaml::Int(i) => i.to_string(),
            Yaml::Float(f) => f.to_string(),
            Yaml::Str(s) => format!("{s:?}"),
            Yaml::Seq(_) => "a list".to_string(),
            Yaml::Map(_) => "a mapping".to_string(),
            Yaml::Vault(_) => "a vault value".to_string(),
            Yaml::Unsafe(s) => format!("{s:?}"),
        }
    }
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    documents: Vec<Node>,
    error: Option<Yaml11Error>,
}

impl Builder {
    fn fail(&mut self, mark: &Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(Yaml11Error {
                line: mark.line(),
                column: mark.col() + 1,
                message,
            });
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq(seq, _)) => {
                if let Yaml::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, key @ None)) => {
                // yaml-rust2 marks a block mapping after its first key; the key's own mark
                // is where the mapping starts.
                if matches!(&map.value, Yaml::Map(pairs) if pairs.is_empty()) {
                    (map.line, map.column) = (node.line, node.column);
                }
                *key = Some(node)
            }
            Some(Frame::Map(map, _, key)) => {
                let key = key.take().expect("a key is pending");
                if let Yaml::Map(pairs) = &mut map.value {
                    insert(pairs, key, node);
                }
            }
        }
    }
}

/// Inserts a pair as PyYAML's constructor does: `<<` merges (own keys win over merged ones,
/// whatever their order), a repeated key replaces the value in place.
fn insert(pairs: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    if key.value == Yaml::Str("<<".to_string()) {
        let sources: Vec<Node> = match value.value {
            Yaml::Seq(items) => items,
            _ => vec![value],
        };
        for source in sources {
            if let Yaml::Map(merged) = source.value {
                for (k, v) in merged {
                    if !pairs.iter().any(|(own, _)| own.value == k.value) {
                        pairs.push((k, v));
                    }
                }
            }
        }
        return;
    }
    match pairs.iter_mut().find(|(k, _)| k.value == key.value) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = |value| Node {
            value,
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(text, style, anchor, tag) => match scalar(text, style, tag.as_ref()) {
                Ok(value) => self.finish(at(value), anchor),
                Err(message) => self.fail(&mark, message),
            },
            Event::SequenceStart(anchor, _) => self
                .stack
                .push(Frame::Seq(at(Yaml::Seq(Vec::new())), anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Frame::Map(at(Yaml::Map(Vec::new())), anchor, None))
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(node, anchor)) | Some(Frame::Map(node, anchor, _)) => {
                    self.finish(node, anchor)
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.line = mark.line();
                    node.column = mark.col() + 1;
                    self.finish(node, 0)
                }
                None => self.fail(&mark, "unknown alias".to_string()),
            },
            _ => {}
        }
    }
}

/// Resolves one scalar: explicit tags first, then (plain scalars only) YAML 1.1's implicit
/// types in PyYAML's order: null, bool, int, float, else string.
fn scalar(text: String, style: TScalarStyle, tag: Option<&EventTag>) -> Result<Yaml, String> {
    if let Some(tag) = tag {
        let full = format!("{}{}", tag.handle, tag.suffix);
        let name = full
            .strip_prefix("tag:yaml.org,2002:")
            .or_else(|| full.strip_prefix("!!"))
            .map(|s| format!("!!{s}"))
            .unwrap_or(full.clone());
        return match name.as_str() {
            "!vault" | "!vault-encrypted" => Ok(Yaml::Vault(text)),
            "!unsafe" => Ok(Yaml::Unsafe(text)),
            "!!str" | "!" => Ok(Yaml::Str(text)),
            "!!int" => int(&text)
                .map(Yaml::Int)
                .ok_or_else(|| format!("{text:?} is not an integer")),
            "!!float" => float(&text)
                .or_else(|| int(&text).map(|i| i as f64))
                .map(Yaml::Float)
                .ok_or_else(|| format!("{text:?} is not a float")),
            "!!bool" => boolean(&text)
                .map(Yaml::Bool)
                .ok_or_else(|| format!("{text:?} is not a boolean")),
            "!!null" => Ok(Yaml::Null),
            _ => Err(format!(
                "could not determine a constructor for the tag {full:?}"
            )),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Yaml::Str(text));
    }
    Ok(resolve_plain(&text))
}

/// A plain scalar's value by YAML 1.1 (PyYAML's resolver).
pub fn resolve_plain(text: &str) -> Yaml {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Yaml::Null;
    }
    if let Some(b) = boolean(text) {
        return Yaml::Bool(b);
    }
    if let Some(i) = int(text) {
        return Yaml::Int(i);
    }
    if let Some(f) = float(text) {
        return Yaml::Float(f);
    }
    Yaml::Str(text.to_string())
}

/// YAML 1.1 booleans as PyYAML reads them (`y`/`n` are strings there).
pub fn boolean(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A string as Ansible's `boolean()` reads it (module arguments and keywords of type bool):
/// case-insensitive `yes`/`on`/`true`/`y`/`t`/`1` and `no`/`off`/`false`/`n`/`f`/`0`.
pub fn ansible_boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
        "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

fn split_sign(text: &str) -> (i64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

/// YAML 1.1 integers: `0b101`, `0644` (octal), `0x1F`, `1_000`, `1:30` (base 60).
fn int(text: &str) -> Option<i64> {
    let (sign, body) = split_sign(text);
    if body.is_empty() {
        return None;
    }
    let all = |s: &str, f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(|b| f(b) || b == b'_');
    let clean = |s: &str| s.replace('_', "");
    let value = if let Some(bin) = body.strip_prefix("0b") {
        all(bin, |b| b == b'0' || b == b'1').then(|| i64::from_str_radix(&clean(bin), 2).ok())??
    } else if let Some(hex) = body.strip_prefix("0x") {
        all(hex, |b| b.is_ascii_hexdigit()).then(|| i64::from_str_radix(&clean(hex), 16).ok())??
    } else if body == "0" {
        0
    } else if let Some(oct) = body.strip_prefix('0') {
        all(oct, |b| (b'0'..=b'7').contains(&b))
            .then(|| i64::from_str_radix(&clean(oct), 8).ok())??
    } else if body.contains(':') {
        sexagesimal(body)?.try_into().ok()?
    } else {
        let first = body.as_bytes()[0];
        if !(b'1'..=b'9').contains(&first) || !all(body, |b| b.is_ascii_digit()) {
            return None;
        }
        clean(body).parse().ok()?
    };
    Some(sign * value)
}

/// `190:20:30` → 190*3600 + 20*60 + 30; the first part must not start with 0, the others are
/// 0-59 with at most two digits.
fn sexagesimal(body: &str) -> Option<u64> {
    let mut parts = body.split(':');
    let first = parts.next()?;
    if first.is_empty()
        || first.starts_with('0')
        || !first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let mut value: u64 = first.replace('_', "").parse().ok()?;
    for part in parts {
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digit: u64 = part.parse().ok()?;
        if part.len() == 2 && part.as_bytes()[0] > b'5' {
            return None;
        }
        value = value.checked_mul(60)?.checked_add(digit)?;
    }
    Some(value)
}

/// YAML 1.1 floats: a `.` is required (`1e3` is a string), `.inf`, `.nan`, `1:30.5`.
fn float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (sign, body) = split_sign(text);
    let sign = sign as f64;
    if let Some(dot) = body.find('.') {
        let (whole, rest) = (&body[..dot], &body[dot + 1..]);
        if whole.contains(':') {
            let base = sexagesimal(whole)? as f64;
            if !rest.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
                return None;
            }
            let frac: f64 = format!("0.{}", rest.replace('_', "")).parse().ok()?;
            return Some(sign * (base + frac));
        }
        let (frac, exp) = match rest.find(['e', 'E']) {
            Some(e) => (&rest[..e], Some(&rest[e + 1..])),
            None => (rest, None),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
        let whole_ok = if whole.is_empty() {
            // `.5` needs a digit right after the dot, and takes no sign.
            frac.as_bytes().first().is_some_and(u8::is_ascii_digit) && text == body
        } else {
            whole.as_bytes()[0].is_ascii_digit() && digits(whole)
        };
        let exp_ok = match exp {
            None => true,
            Some(e) => {
                matches!(e.as_bytes().first(), Some(b'+' | b'-'))
                    && e.len() > 1
                    && e[1..].bytes().all(|b| b.is_ascii_digit())
            }
        };
        if whole_ok && digits(frac) && exp_ok {
            let number = format!(
                "{}.{}{}",
                if whole.is_empty() { "0" } else { whole },
                frac,
                exp.map(|e| format!("e{e}")).unwrap_or_default()
            );
            return number
                .replace('_', "")
                .parse::<f64>()
                .ok()
                .map(|f| sign * f);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_as_pyyaml() {
        let cases: &[(&str, Yaml)] = &[
            ("yes", Yaml::Bool(true)),
            ("Off", Yaml::Bool(false)),
            ("TRUE", Yaml::Bool(true)),
            ("y", Yaml::Str("y".into())),
            ("0644", Yaml::Int(420)),
            ("0x1F", Yaml::Int(31)),
            ("0b101", Yaml::Int(5)),
            ("-1_000", Yaml::Int(-1000)),
            ("1:30", Yaml::Int(90)),
            ("08", Yaml::Str("08".into())),
            ("1e3", Yaml::Str("1e3".into())),
            ("1.5e+3", Yaml::Float(1500.0)),
            ("1.", Yaml::Float(1.0)),
            (".5", Yaml::Float(0.5)),
            ("~", Yaml::Null),
            ("Null", Yaml::Null),
            ("1.2.3", Yaml::Str("1.2.3".into())),
            ("2001-12-14", Yaml::Str("2001-12-14".into())),
        ];
        for (text, want) in cases {
            assert_eq!(&resolve_plain(text), want, "{text}");
        }
    }

    #[test]
    fn quoted_tagged_merged_and_positioned() {
        let doc = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nq: 'yes'\nv: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3031\ns: !!str 12\n";
        let value = from_str(doc).unwrap();
        let want: Value = serde_yaml::from_str(
            "base: {x: 1, y: 2}\nm: {y: 3, x: 1}\nq: 'yes'\nv: !vault \"$ANSIBLE_VAULT;1.1;AES256\\n3031\\n\"\ns: '12'\n",
        )
        .unwrap();
        assert_eq!(value, want);
        let node = parse("a:\n  b: [1, 2]\n").unwrap().unwrap();
        let Yaml::Map(pairs) = &node.value else {
            panic!()
        };
        let Yaml::Map(inner) = &pairs[0].1.value else {
            panic!()
        };
        assert_eq!((inner[0].1.line, inner[0].1.column), (2, 6));
        assert_eq!(
            parse("a: 1\n---\nb: 2\n").unwrap_err().message,
            "expected a single YAML document, found another one"
        );
        assert_eq!(parse("x: !foo 1\n").unwrap_err().line, 1);
        assert!(parse("a: [1\n").is_err());
        assert_eq!(parse("# nothing\n").unwrap(), None);
    }
}
