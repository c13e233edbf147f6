//! Templating: a minijinja environment with strict undefined, Ansible's common filters, and
//! `Tpl<T>`, a module argument that is either a literal `T` or a template rendered per host.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;

mod filters;

/// Templates shipped inside the binary; files beside the playbook take precedence.
pub use crate::content::TEMPLATES as EMBEDDED_TEMPLATES;

/// Context key holding the vars that failed to render, with why (see vars::context).
pub const BROKEN_VARS: &str = "__bootstrapctl_broken_vars";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("undefined variable `{name}` in {template} line {line}")]
    Undefined {
        name: String,
        template: String,
        line: usize,
    },
    #[error("template {template} line {line}: {message}")]
    Render {
        template: String,
        line: usize,
        message: String,
    },
    #[error(
        "template file {0} not found (looked beside the playbook and in the built-in templates)"
    )]
    NotFound(String),
    #[error("{what}: rendered value {value:?} is not a valid {expected}: {message}")]
    Type {
        what: String,
        value: String,
        expected: &'static str,
        message: String,
    },
}

/// The template environment for one run.
pub struct Templates {
    env: Environment<'static>,
    /// The same environment with Ansible's chaining of undefined lookups, used only where
    /// `env` failed on an undefined value: see [`Templates::strict_then_chained`].
    chained: Environment<'static>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// `search_dirs`: where template files are looked up (the playbook's dir, then its
    /// `templates/` subdir), before the embedded defaults.
    pub fn new(search_dirs: Vec<PathBuf>) -> Self {
        let env = environment(search_dirs.clone(), UndefinedBehavior::Strict);
        let mut chained = environment(search_dirs, UndefinedBehavior::Chainable);
        // Printing an undefined value still fails, as in Ansible.
        chained.set_formatter(|out, state, value| {
            if value.is_undefined() {
                return Err(minijinja::Error::new(
                    ErrorKind::UndefinedError,
                    "undefined value printed",
                ));
            }
            minijinja::escape_formatter(out, state, value)
        });
        Self { env, chained }
    }

    /// Ansible's undefined values are strict except that looking up an attribute or item of
    /// one gives it again: `result.rc is defined` is false, and `cfg.port | default(6443)`
    /// is 6443, when `result` or `cfg` is not defined at all, where minijinja's strict mode
    /// fails. What fails on an undefined value in `env` is tried again in `chained`, which
    /// allows such lookups; a result that is itself undefined, or printed (see `new`), still
    /// fails with the first error. So nothing that works in `env` changes, and what fails in
    /// both fails as before.
    fn strict_then_chained<T>(
        &self,
        run: impl Fn(&Environment<'static>) -> Result<T, (ErrorKind, TemplateError)>,
        usable: impl FnOnce(&T) -> bool,
    ) -> Result<T, TemplateError> {
        match run(&self.env) {
            Ok(v) => Ok(v),
            Err((ErrorKind::UndefinedError, first)) => match run(&self.chained) {
                Ok(v) if usable(&v) => Ok(v),
                _ => Err(first),
            },
            Err((_, e)) => Err(e),
        }
    }
}

/// A template environment with bootstrapctl's filters and template lookup in `search_dirs`.
fn environment(search_dirs: Vec<PathBuf>, undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_keep_trailing_newline(true);
    // Ansible's Jinja defaults: a block tag's own line ending goes with it.
    env.set_trim_blocks(true);
    env.add_filter("b64encode", |s: String| {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter(
        "b64decode",
        |s: String| -> Result<String, minijinja::Error> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()).with_source(e)
                })?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        },
    );
    env.add_filter("quote", |s: String| crate::shell::quote(&s));
    env.add_filter("to_yaml", |v: Value| -> Result<String, minijinja::Error> {
        serde_yaml::to_string(&v).map_err(|e| {
            minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()).with_source(e)
        })
    });
    env.add_filter("bool", |v: Value| -> bool {
        match v.as_str() {
            Some(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1"),
            None => v.is_true(),
        }
    });
    env.add_filter("mandatory", |v: Value| -> Result<Value, minijinja::Error> {
        if v.is_undefined() {
            Err(minijinja::Error::new(
                ErrorKind::UndefinedError,
                "mandatory variable",
            ))
        } else {
            Ok(v)
        }
    });
    filters::add(&mut env);
    env.add_function(
        "kubernetes_profile",
        |version: Option<String>| -> Result<Value, minijinja::Error> {
            crate::k8s::versions::profile(version.as_deref().unwrap_or(""))
                .map(Value::from_serialize)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
        },
    );
    env.set_loader(move |name| {
        for dir in &search_dirs {
            let path = dir.join(name);
            if path.is_file() {
                return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                    minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("reading {}: {e}", path.display()),
                    )
                    .with_source(e)
                });
            }
        }
        Ok(EMBEDDED_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, src)| src.to_string()))
    });
    env
}

impl Templates {
    /// Render a template file looked up by name.
    pub fn render_file(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        self.strict_then_chained(
            |env| {
                let tmpl = env.get_template(name).map_err(|e| match e.kind() {
                    ErrorKind::TemplateNotFound => {
                        (e.kind(), TemplateError::NotFound(name.to_string()))
                    }
                    _ => (e.kind(), convert(e, name, ctx, None)),
                })?;
                render(&tmpl, name, ctx)
            },
            |_| true,
        )
    }

    /// Render the template file at `path` (a role's `templates/`), named `name` in errors.
    pub fn render_path(
        &self,
        path: &std::path::Path,
        name: &str,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        let src = std::fs::read_to_string(path).map_err(|e| TemplateError::Render {
            template: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        self.strict_then_chained(|env| render_in(env, name, &src, ctx), |_| true)
    }

    /// Render an inline string (a module argument, a var); `what` names it in errors.
    pub fn render_str(&self, src: &str, ctx: &Value, what: &str) -> Result<String, TemplateError> {
        if !is_template(src) {
            return Ok(src.to_string());
        }
        self.strict_then_chained(|env| render_in(env, what, src, ctx), |_| true)
    }

    /// Render an inline string keeping the value's type when it is a single expression
    /// (`"{{ items }}"` yields the list itself, as Ansible does).
    pub fn render_value(&self, src: &str, ctx: &Value, what: &str) -> Result<Value, TemplateError> {
        // Only a value that is exactly one expression keeps its type: "{{ x }}\n" is text.
        if let Some(inner) = src
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
            .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
        {
            return self.eval(inner, ctx, what);
        }
        self.render_str(src, ctx, what).map(Value::from)
    }

    /// Evaluate an expression such as a `when:` condition.
    pub fn eval(&self, expr: &str, ctx: &Value, what: &str) -> Result<Value, TemplateError> {
        self.strict_then_chained(
            |env| {
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| (e.kind(), convert(e, what, ctx, None)))?;
                compiled.eval(ctx).map_err(|e| {
                    let undeclared = compiled
                        .undeclared_variables(true)
                        .into_iter()
                        .collect::<std::collections::HashSet<_>>();
                    (e.kind(), convert(e, what, ctx, Some(undeclared)))
                })
            },
            |v| !v.is_undefined(),
        )
    }

    pub fn eval_bool(&self, expr: &str, ctx: &Value, what: &str) -> Result<bool, TemplateError> {
        let expr = expr.trim();
        let expr = expr
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
            .unwrap_or(expr);
        Ok(self.eval(expr, ctx, what)?.is_true())
    }
}

/// Compile `src` (named `name` in errors) in `env` and render it.
fn render_in(
    env: &Environment<'static>,
    name: &str,
    src: &str,
    ctx: &Value,
) -> Result<String, (ErrorKind, TemplateError)> {
    let tmpl = env
        .template_from_named_str(name, src)
        .map_err(|e| (e.kind(), convert(e, name, ctx, None)))?;
    render(&tmpl, name, ctx)
}

/// Render a compiled template; an error names the variable that was undefined.
fn render(
    tmpl: &minijinja::Template<'_, '_>,
    name: &str,
    ctx: &Value,
) -> Result<String, (ErrorKind, TemplateError)> {
    tmpl.render(ctx).map_err(|e| {
        let undeclared = tmpl.undeclared_variables(true);
        (e.kind(), convert(e, name, ctx, Some(undeclared)))
    })
}

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Turn a minijinja error into ours; for undefined values, find which variable it was.
fn convert(
    e: minijinja::Error,
    name: &str,
    ctx: &Value,
    undeclared: Option<std::collections::HashSet<String>>,
) -> TemplateError {
    let line = e.line().unwrap_or(1);
    let template = e.name().unwrap_or(name).to_string();
    if e.kind() == ErrorKind::UndefinedError {
        let missing = undeclared
            .unwrap_or_default()
            .into_iter()
            .filter(|path| !path_defined(ctx, path))
            .min();
        if let Some(name) = missing {
            let root = name.split('.').next().unwrap_or(&name);
            if let Ok(why) = ctx.get_attr(BROKEN_VARS).and_then(|b| b.get_attr(root)) {
                if !why.is_undefined() {
                    return TemplateError::Render {
                        template,
                        line,
                        message: format!("variable `{root}` could not be rendered: {why}"),
                    };
                }
            }
            return TemplateError::Undefined {
                name,
                template,
                line,
            };
        }
    }
    let mut message = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if message.is_empty() {
        message = e.to_string();
    }
    TemplateError::Render {
        template,
        line,
        message,
    }
}

fn path_defined(ctx: &Value, path: &str) -> bool {
    let mut cur = ctx.clone();
    for part in path.split('.') {
        match cur.get_attr(part) {
            Ok(v) if !v.is_undefined() => cur = v,
            _ => return false,
        }
    }
    true
}

/// A module argument: a literal of type `T`, or a string template rendered per host and then
/// read as `T`. Literals are type-checked when the playbook loads, so a wrong type is reported
/// with its file:line:column.
#[derive(Debug, Clone, PartialEq)]
pub enum Tpl<T> {
    Literal(T),
    Template(String),
}

impl<T: DeserializeOwned + Clone> Tpl<T> {
    pub fn resolve(&self, t: &Templates, ctx: &Value, what: &str) -> Result<T, TemplateError> {
        match self {
            Tpl::Literal(v) => Ok(v.clone()),
            Tpl::Template(src) => {
                let value = t.render_value(src, ctx, what)?;
                let type_err = |message: String| TemplateError::Type {
                    what: what.to_string(),
                    value: value.to_string(),
                    expected: short_type_name::<T>(),
                    message,
                };
                if let Some(text) = value.as_str() {
                    // Text is taken as it is when the target reads text (strings, modes,
                    // enums); otherwise it is read as a YAML scalar ("true", "6443").
                    if let Ok(v) = T::deserialize(serde_yaml::Value::String(text.to_string())) {
                        return Ok(v);
                    }
                    if let Some(v) = as_ansible_bool(text) {
                        return Ok(v);
                    }
                    let scalar: serde_yaml::Value = serde_yaml::from_str(text)
                        .ok()
                        .filter(|v: &serde_yaml::Value| !v.is_mapping() && !v.is_sequence())
                        .unwrap_or_else(|| serde_yaml::Value::String(text.to_string()));
                    return T::deserialize(scalar).map_err(|e| type_err(e.to_string()));
                }
                let yaml = serde_yaml::to_value(&value).map_err(|e| type_err(e.to_string()))?;
                T::deserialize(yaml.clone()).or_else(|first| {
                    // A string target takes a number or boolean as its text.
                    if yaml.is_mapping() || yaml.is_sequence() {
                        return Err(type_err(first.to_string()));
                    }
                    T::deserialize(serde_yaml::Value::String(value.to_string()))
                        .map_err(|_| type_err(first.to_string()))
                })
            }
        }
    }
}

/// `"yes"`, `"on"`, `"True"`... as a boolean target reads them in Ansible; `None` when the
/// text is not one of those or the target does not take a boolean.
fn as_ansible_bool<T: DeserializeOwned>(text: &str) -> Option<T> {
    let b = crate::yaml11::ansible_boolean(text)?;
    T::deserialize(serde::de::value::BoolDeserializer::<serde::de::value::Error>::new(b)).ok()
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    match full {
        "bool" => "boolean",
        "alloc::string::String" => "string",
        f if f.starts_with('u') || f.starts_with('i') => "integer",
        _ => "value",
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Tpl<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TplVisitor(std::marker::PhantomData))
    }
}

/// Reads scalars in place (so a wrong type is reported at the value's own line and column);
/// a scalar that does not fit `T` is tried as its text, so `--v: 2` fills a string flag.
struct TplVisitor<T>(std::marker::PhantomData<T>);

impl<T: DeserializeOwned> TplVisitor<T> {
    fn scalar<E: serde::de::Error, D>(d: D, text: String) -> Result<Tpl<T>, E>
    where
        D: for<'x> serde::de::Deserializer<'x, Error = serde::de::value::Error>,
    {
        match T::deserialize(d) {
            Ok(v) => Ok(Tpl::Literal(v)),
            Err(first) => T::deserialize(serde::de::value::StringDeserializer::<
                serde::de::value::Error,
            >::new(text))
            .map(Tpl::Literal)
            .map_err(|_| E::custom(first)),
        }
    }
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for TplVisitor<T> {
    type Value = Tpl<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} or a template", short_type_name::<T>())
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Tpl<T>, E> {
        if is_template(s) {
            return Ok(Tpl::Template(s.to_string()));
        }
        T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
            .or_else(|first| as_ansible_bool(s).ok_or(first))
            .map(Tpl::Literal)
            .map_err(E::custom)
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Tpl<T>, E> {
        Self::scalar(serde::de::value::BoolDeserializer::new(b), b.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Tpl<T>, E> {
        Self::scalar(serde::de::value::U64Deserializer::new(n), n.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Tpl<T>, E> {
        Self::scalar(serde::de::value::I64Deserializer::new(n), n.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Tpl<T>, E> {
        Self::scalar(serde::de::value::F64Deserializer::new(n), n.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Tpl<T>, E> {
        T::deserialize(serde::de::value::UnitDeserializer::<serde::de::value::Error>::new())
            .map(Tpl::Literal)
            .map_err(E::custom)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Tpl<T>, A::Error> {
        let v = serde_yaml::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        T::deserialize(v)
            .map(Tpl::Literal)
            .map_err(serde::de::Error::custom)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Tpl<T>, A::Error> {
        let v = serde_yaml::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        T::deserialize(v)
            .map(Tpl::Literal)
            .map_err(serde::de::Error::custom)
    }
}

/// Render every string inside a YAML value (play vars, loop items) against `ctx`.
pub fn render_yaml(
    t: &Templates,
    value: &serde_yaml::Value,
    ctx: &Value,
    what: &str,
) -> Result<Value, TemplateError> {
    Ok(match value {
        serde_yaml::Value::String(s) if is_template(s) => t.render_value(s, ctx, what)?,
        serde_yaml::Value::Sequence(items) => Value::from(
            items
                .iter()
                .map(|v| render_yaml(t, v, ctx, what))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        serde_yaml::Value::Mapping(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, render_yaml(t, v, ctx, what)?);
            }
            Value::from(out)
        }
        other => Value::from_serialize(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        minijinja::context! { name => "worker-01", port => 6443, cfg => minijinja::context!{ server => "https://x" } }
    }

    #[test]
    fn undefined_variable_names_the_variable_template_and_line() {
        let t = Templates::new(vec![]);
        let err = t
            .render_str("a\nb {{ nmae }}\n", &ctx(), "kubelet.service.j2")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "undefined variable `nmae` in kubelet.service.j2 line 2"
        );
        let err = t
            .render_str("{{ cfg.sever }}", &ctx(), "args of task x")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "undefined variable `cfg.sever` in args of task x line 1"
        );
    }

    #[test]
    fn undefined_chains_are_undefined_but_still_fail_where_used() {
        let t = Templates::new(vec![]);
        let c = ctx();
        assert!(!t.eval_bool("nope.x.y is defined", &c, "when").unwrap());
        assert!(t
            .eval_bool("nope['k'].z is not defined", &c, "when")
            .unwrap());
        assert_eq!(
            t.render_str(
                "{{ nope.x | default(cfg.server) }} {{ cfg.sever.port | default(1) }}",
                &c,
                "a"
            )
            .unwrap(),
            "https://x 1"
        );
        // Printed, taken as a value or tested for truth, the chain fails as before.
        for err in [
            t.render_str("{{ nope.x }}", &c, "a").unwrap_err(),
            t.eval_bool("nope.x", &c, "when").unwrap_err(),
            t.render_value("{{ nope.x }}", &c, "loop").unwrap_err(),
        ] {
            assert!(
                err.to_string()
                    .starts_with("undefined variable `nope.x` in "),
                "{err}"
            );
        }
    }

    #[test]
    fn tpl_keeps_literals_and_renders_templates_to_their_type() {
        let t = Templates::new(vec![]);
        let lit: Tpl<u16> = serde_yaml::from_str("22").unwrap();
        assert_eq!(lit.resolve(&t, &ctx(), "p").unwrap(), 22);
        let tpl: Tpl<u16> = serde_yaml::from_str("'{{ port }}'").unwrap();
        assert_eq!(tpl.resolve(&t, &ctx(), "p").unwrap(), 6443);
        let as_text: Tpl<String> = serde_yaml::from_str("'{{ port }}'").unwrap();
        assert_eq!(as_text.resolve(&t, &ctx(), "p").unwrap(), "6443");
        let nl: Tpl<String> = serde_yaml::from_str("\"{{ name }}\\n\"").unwrap();
        assert_eq!(nl.resolve(&t, &ctx(), "n").unwrap(), "worker-01\n");
        let s: Tpl<String> = serde_yaml::from_str("'0644'").unwrap();
        assert_eq!(s.resolve(&t, &ctx(), "m").unwrap(), "0644");
        let bad: Result<Tpl<u16>, _> = serde_yaml::from_str("abc");
        assert!(bad.is_err());
        let list: Tpl<Vec<String>> = serde_yaml::from_str("'{{ [name, \"b\"] }}'").unwrap();
        assert_eq!(
            list.resolve(&t, &ctx(), "l").unwrap(),
            vec!["worker-01".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn boolean_arguments_take_ansibles_strings_literal_or_rendered() {
        let t = Templates::new(vec![]);
        for (src, want) in [
            ("yes", true),
            ("'On'", true),
            ("'1'", true),
            ("'no'", false),
            ("'{{ \"yes\" }}'", true),
            ("'{{ \"False\" }}'", false),
            ("'{{ \"off\" }}'", false),
        ] {
            let b: Tpl<bool> = serde_yaml::from_str(src).unwrap();
            assert_eq!(b.resolve(&t, &ctx(), "b").unwrap(), want, "{src}");
        }
        assert!(serde_yaml::from_str::<Tpl<bool>>("maybe").is_err());
        // A string argument keeps the text.
        let s: Tpl<String> = serde_yaml::from_str("'yes'").unwrap();
        assert_eq!(s.resolve(&t, &ctx(), "s").unwrap(), "yes");
    }

    #[test]
    fn filters_work() {
        let t = Templates::new(vec![]);
        assert_eq!(
            t.render_str("{{ 'abc' | b64encode }} {{ 'a b' | quote }}", &ctx(), "x")
                .unwrap(),
            "YWJj 'a b'"
        );
    }
}
