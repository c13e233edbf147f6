//! The filters and tests of Ansible that node-preparation playbooks use, on top of
//! minijinja's builtins: `ternary`, list set operations, `combine`, `dict2items`,
//! `items2dict`, `regex_*`, `to_*json`/`to_nice_yaml`/`from_*`, `flatten`, path filters, and
//! the tests `version`, `changed`, `failed`, `succeeded`, `skipped`, `match`, `search`.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn list(v: &Value) -> Result<Vec<Value>, Error> {
    Ok(v.try_iter()?.collect())
}

fn re(pattern: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("invalid regular expression {pattern:?}: {e}")))
}

fn flag(kw: &Kwargs, name: &str) -> Result<bool, Error> {
    Ok(kw.get::<Option<bool>>(name)?.unwrap_or(false))
}

/// Python's `json.dumps` layout (`", "` and `": "`), as Ansible's `to_json` prints.
fn python_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(x, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                python_json(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn to_json_value(v: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| err(e.to_string()))
}

/// `a` and `b` as Ansible's version test compares them (LooseVersion-like: numbers
/// numerically, other parts as text).
fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<Result<u64, String>> {
        s.trim_start_matches('v')
            .split(['.', '-', '+', '_'])
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| p.to_string()))
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let o = match (pa.get(i), pb.get(i)) {
            (Some(Ok(x)), Some(Ok(y))) => x.cmp(y),
            (Some(Err(x)), Some(Err(y))) => x.cmp(y),
            (Some(Ok(_)), Some(Err(_))) => std::cmp::Ordering::Greater,
            (Some(Err(_)), Some(Ok(_))) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

fn version(value: Value, other: String, op: Option<String>) -> Result<bool, Error> {
    let a = value.to_string();
    let o = cmp_versions(&a, &other);
    use std::cmp::Ordering::*;
    Ok(match op.as_deref().unwrap_or("eq") {
        "eq" | "==" | "=" => o == Equal,
        "ne" | "!=" | "<>" => o != Equal,
        "lt" | "<" => o == Less,
        "le" | "<=" => o != Greater,
        "gt" | ">" => o == Greater,
        "ge" | ">=" => o != Less,
        other => return Err(err(format!("version: unknown operator {other:?}"))),
    })
}

fn result_flag(v: &Value, key: &str) -> bool {
    v.get_attr(key).map(|x| x.is_true()).unwrap_or(false)
}

pub fn add(env: &mut Environment<'static>) {
    env.add_filter(
        "ternary",
        |v: Value, yes: Value, no: Value, none: Option<Value>| match (v.is_none(), none) {
            (true, Some(n)) => n,
            _ if v.is_true() => yes,
            _ => no,
        },
    );
    env.add_filter("union", |a: Value, b: Value| -> Result<Value, Error> {
        let mut out = Vec::new();
        for x in list(&a)?.into_iter().chain(list(&b)?) {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter("intersect", |a: Value, b: Value| -> Result<Value, Error> {
        let b = list(&b)?;
        let mut out = Vec::new();
        for x in list(&a)? {
            if b.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter("difference", |a: Value, b: Value| -> Result<Value, Error> {
        let b = list(&b)?;
        let mut out = Vec::new();
        for x in list(&a)? {
            if !b.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter(
        "flatten",
        |a: Value, levels: Option<usize>| -> Result<Value, Error> {
            fn go(v: &Value, depth: Option<usize>, out: &mut Vec<Value>) -> Result<(), Error> {
                for x in v.try_iter()? {
                    if x.kind() == ValueKind::Seq && depth != Some(0) {
                        go(&x, depth.map(|d| d - 1), out)?;
                    } else if !x.is_none() {
                        out.push(x);
                    }
                }
                Ok(())
            }
            let mut out = Vec::new();
            go(&a, levels, &mut out)?;
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "combine",
        |a: Value, rest: minijinja::value::Rest<Value>, kw: Kwargs| -> Result<Value, Error> {
            let recursive = flag(&kw, "recursive")?;
            kw.assert_all_used()?;
            fn merge(a: serde_json::Value, b: serde_json::Value, deep: bool) -> serde_json::Value {
                match (a, b) {
                    (serde_json::Value::Object(mut x), serde_json::Value::Object(y)) => {
                        for (k, v) in y {
                            let merged = match x.remove(&k) {
                                Some(old) if deep && old.is_object() && v.is_object() => {
                                    merge(old, v, deep)
                                }
                                _ => v,
                            };
                            x.insert(k, merged);
                        }
                        serde_json::Value::Object(x)
                    }
                    (_, b) => b,
                }
            }
            let mut acc = to_json_value(&a)?;
            for b in rest.iter() {
                let items: Vec<Value> = if b.kind() == ValueKind::Seq {
                    list(b)?
                } else {
                    vec![b.clone()]
                };
                for x in items {
                    acc = merge(acc, to_json_value(&x)?, recursive);
                }
            }
            Ok(Value::from_serialize(&acc))
        },
    );
    env.add_filter(
        "dict2items",
        |a: Value, kw: Kwargs| -> Result<Value, Error> {
            let kn: String = kw
                .get::<Option<String>>("key_name")?
                .unwrap_or_else(|| "key".into());
            let vn: String = kw
                .get::<Option<String>>("value_name")?
                .unwrap_or_else(|| "value".into());
            kw.assert_all_used()?;
            let mut out = Vec::new();
            for k in a.try_iter()? {
                let v = a.get_item(&k)?;
                out.push(Value::from_iter([(kn.clone(), k), (vn.clone(), v)]));
            }
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "items2dict",
        |a: Value, kw: Kwargs| -> Result<Value, Error> {
            let kn: String = kw
                .get::<Option<String>>("key_name")?
                .unwrap_or_else(|| "key".into());
            let vn: String = kw
                .get::<Option<String>>("value_name")?
                .unwrap_or_else(|| "value".into());
            kw.assert_all_used()?;
            let mut out = serde_json::Map::new();
            for item in a.try_iter()? {
                let k = item.get_attr(&kn)?;
                out.insert(k.to_string(), to_json_value(&item.get_attr(&vn)?)?);
            }
            Ok(Value::from_serialize(&out))
        },
    );
    env.add_filter(
        "regex_replace",
        |s: String, pat: String, rep: Option<String>, kw: Kwargs| -> Result<String, Error> {
            let r = re(&pat, flag(&kw, "ignorecase")?, flag(&kw, "multiline")?)?;
            kw.assert_all_used()?;
            // Python's \1 backreferences are ${1} here.
            let rep = regex::Regex::new(r"\\(\d+)")
                .expect("static")
                .replace_all(&rep.unwrap_or_default(), "$${$1}")
                .into_owned();
            Ok(r.replace_all(&s, rep.as_str()).into_owned())
        },
    );
    env.add_filter(
        "regex_search",
        |s: String, pat: String, kw: Kwargs| -> Result<Value, Error> {
            let r = re(&pat, flag(&kw, "ignorecase")?, flag(&kw, "multiline")?)?;
            kw.assert_all_used()?;
            Ok(r.find(&s)
                .map(|m| Value::from(m.as_str()))
                .unwrap_or(Value::from(())))
        },
    );
    env.add_filter(
        "regex_findall",
        |s: String, pat: String| -> Result<Value, Error> {
            let r = re(&pat, false, false)?;
            Ok(Value::from(
                r.find_iter(&s)
                    .map(|m| m.as_str().to_string())
                    .collect::<Vec<_>>(),
            ))
        },
    );
    env.add_filter("to_json", |v: Value| -> Result<String, Error> {
        let mut out = String::new();
        python_json(&to_json_value(&v)?, &mut out);
        Ok(out)
    });
    env.add_filter(
        "to_nice_json",
        |v: Value, kw: Kwargs| -> Result<String, Error> {
            let indent: usize = kw.get::<Option<usize>>("indent")?.unwrap_or(4);
            kw.assert_all_used()?;
            let mut buf = Vec::new();
            let spaces = vec![b' '; indent];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&spaces);
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&to_json_value(&v)?, &mut ser)
                .map_err(|e| err(e.to_string()))?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        },
    );
    env.add_filter("to_nice_yaml", |v: Value| -> Result<String, Error> {
        serde_yaml::to_string(&v).map_err(|e| err(e.to_string()))
    });
    env.add_filter("from_json", |s: String| -> Result<Value, Error> {
        let v: serde_json::Value =
            serde_json::from_str(&s).map_err(|e| err(format!("from_json: {e}")))?;
        Ok(Value::from_serialize(&v))
    });
    env.add_filter("from_yaml", |s: String| -> Result<Value, Error> {
        let v: serde_yaml::Value =
            serde_yaml::from_str(&s).map_err(|e| err(format!("from_yaml: {e}")))?;
        Ok(Value::from_serialize(&v))
    });
    env.add_filter("basename", |s: String| {
        s.rsplit('/').next().unwrap_or_default().to_string()
    });
    env.add_filter("dirname", |s: String| match s.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => s[..i].to_string(),
        None => String::new(),
    });
    env.add_filter("version", version);
    env.add_test("version", version);
    env.add_test("version_compare", version);
    env.add_test("changed", |v: Value| result_flag(&v, "changed"));
    env.add_test("failed", |v: Value| result_flag(&v, "failed"));
    env.add_test("succeeded", |v: Value| !result_flag(&v, "failed"));
    env.add_test("success", |v: Value| !result_flag(&v, "failed"));
    env.add_test("skipped", |v: Value| result_flag(&v, "skipped"));
    env.add_test("match", |s: String, pat: String| -> Result<bool, Error> {
        Ok(re(&pat, false, false)?
            .find(&s)
            .is_some_and(|m| m.start() == 0))
    });
    env.add_test("search", |s: String, pat: String| -> Result<bool, Error> {
        Ok(re(&pat, false, false)?.is_match(&s))
    });
    env.add_test("regex", |s: String, pat: String| -> Result<bool, Error> {
        Ok(re(&pat, false, false)?.is_match(&s))
    });
}

#[cfg(test)]
mod tests {
    use crate::template::Templates;

    fn r(src: &str) -> String {
        let t = Templates::new(vec![]);
        let ctx = minijinja::context! {
            ok => minijinja::context!{ changed => true, failed => false },
            d => minijinja::context!{ a => 1, b => minijinja::context!{ x => 1 } },
        };
        t.render_str(src, &ctx, "t").unwrap()
    }

    #[test]
    fn ansible_filters_and_tests() {
        assert_eq!(
            r("{{ true | ternary('a', 'b') }}{{ false | ternary('a', 'b') }}"),
            "ab"
        );
        assert_eq!(r("{{ [1, 2] | union([2, 3]) }}"), "[1, 2, 3]");
        assert_eq!(r("{{ [[1, [2]], 3] | flatten }}"), "[1, 2, 3]");
        assert_eq!(
            r("{{ d | combine({'b': {'y': 2}}, recursive=true) | to_json }}"),
            r#"{"a": 1, "b": {"x": 1, "y": 2}}"#
        );
        assert_eq!(
            r("{{ {'a': 1} | dict2items | items2dict | to_json }}"),
            r#"{"a": 1}"#
        );
        assert_eq!(
            r("{{ 'v1.28.3' | regex_replace('^v(\\d+)\\.(\\d+).*$', '\\\\1-\\\\2') }}"),
            "1-28"
        );
        assert_eq!(r("{{ 'abc123' | regex_search('[0-9]+') }}"), "123");
        assert_eq!(
            r("{{ '1.28.10' is version('1.28.9', '>') }} {{ '1.9' is version('1.10', 'lt') }}"),
            "True True"
        );
        assert_eq!(
            r("{{ ok is changed }} {{ ok is failed }} {{ ok is succeeded }}"),
            "True False True"
        );
        assert_eq!(
            r("{{ 'abc' is match('b') }} {{ 'abc' is search('b') }}"),
            "False True"
        );
        assert_eq!(
            r("{{ '/etc/x/y.conf' | dirname }} {{ '/etc/x/y.conf' | basename }}"),
            "/etc/x y.conf"
        );
        assert_eq!(
            r("{{ ('{\"a\": [1]}' | from_json).a[0] }} {{ ('a: 2' | from_yaml).a }}"),
            "1 2"
        );
    }
}
