//! Patches: JSON merge patch (RFC 7386), a strategic merge patch good for what kubectl sends
//! for built-in types, JSON patch (RFC 6902: add, remove, replace, test) and a simplified
//! server-side apply (deep merge of the applied fields; lists replaced; managedFields record the
//! manager; no conflict detection between managers).

use serde_json::{json, Map, Value};

pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Merge keys of the lists kubectl patches strategically on the types served here.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" | "taints" => Some("type"),
        "containers" | "initContainers" | "env" | "volumes" | "ports" => Some("name"),
        _ => None,
    }
}

/// Strategic merge patch: merge patch semantics plus `$patch: delete|replace` in maps, lists
/// merged by key for the known fields above, directives (`$setElementOrder/…`, `$retainKeys`,
/// `$deleteFromPrimitiveList/…`) honoured where simple and otherwise dropped.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            let mut p = p.clone();
            p.remove("$patch");
            *target = Value::Object(p);
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v, t.get_mut(k)) {
            (Some(key), Value::Array(items), Some(Value::Array(cur))) => {
                for item in items {
                    let id = &item[key];
                    let pos = cur.iter().position(|c| &c[key] == id);
                    let del = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, del) {
                        (Some(i), true) => {
                            cur.remove(i);
                        }
                        (Some(i), false) => strategic_merge(&mut cur[i], item),
                        (None, true) => {}
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic_merge(&mut fresh, item);
                            cur.push(fresh);
                        }
                    }
                }
            }
            (_, Value::Object(_), _) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, v);
                if slot.is_null() {
                    t.remove(k);
                }
            }
            _ => {
                t.insert(k.clone(), strip_directives(v));
            }
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {path:?}"));
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// RFC 6902 JSON patch (add, remove, replace, test, copy, move).
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let Some(ops) = ops.as_array() else {
        return Err("json patch must be a list of operations".into());
    };
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let path = op["path"].as_str().unwrap_or("");
        match kind {
            "add" | "replace" => set(target, path, op["value"].clone(), kind == "add")?,
            "remove" => {
                remove(target, path)?;
            }
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "copy" | "move" => {
                let from = op["from"].as_str().unwrap_or("");
                let v = target.pointer(from).cloned().ok_or_else(|| {
                    format!("{kind} operation does not apply: doc is missing from path: {from}")
                })?;
                if kind == "move" {
                    remove(target, from)?;
                }
                set(target, path, v, true)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

fn set(target: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some((last, parents)) = parts.split_last() else {
        *target = value;
        return Ok(());
    };
    let parent_path: String = parents
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect();
    let parent = target
        .pointer_mut(&parent_path)
        .ok_or_else(|| format!("doc is missing path: {path}"))?;
    match parent {
        Value::Object(m) => {
            if !add && !m.contains_key(last) {
                return Err(format!(
                    "replace operation does not apply: doc is missing key: {path}"
                ));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && add {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("invalid index {last}"))?;
                if add && i <= a.len() {
                    a.insert(i, value);
                } else if !add && i < a.len() {
                    a[i] = value;
                } else {
                    return Err(format!("index out of range: {path}"));
                }
            }
        }
        _ => return Err(format!("doc is missing path: {path}")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer_parts(path)?;
    let Some((last, parents)) = parts.split_last() else {
        return Err("cannot remove the root".into());
    };
    let parent_path: String = parents
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect();
    match target.pointer_mut(&parent_path) {
        Some(Value::Object(m)) => m
            .remove(last)
            .ok_or_else(|| format!("remove operation does not apply: doc is missing path: {path}")),
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("invalid index {last}"))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(format!("index out of range: {path}"))
            }
        }
        _ => Err(format!(
            "remove operation does not apply: doc is missing path: {path}"
        )),
    }
}

/// Server-side apply, simplified: maps merged recursively, everything else (lists included)
/// replaced by the applied value.
pub(crate) fn apply_merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied) {
        (Some(t), Value::Object(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(cur) if cur.is_object() && v.is_object() => apply_merge(cur, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

/// FieldsV1 of an applied configuration: `f:<field>` for each map key, `.: {}` for maps.
pub(crate) fn fields_v1(v: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            let inner = match v {
                Value::Object(_) => {
                    let mut f = fields_v1(v);
                    if let Some(o) = f.as_object_mut() {
                        o.insert(".".into(), json!({}));
                    }
                    f
                }
                _ => json!({}),
            };
            out.insert(format!("f:{k}"), inner);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_strategic() {
        let mut o = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge_patch(&mut o, &json!({"b": {"c": null, "e": 4}, "l": [3]}));
        assert_eq!(o, json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [3]}));
        let mut n = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]}});
        strategic_merge(
            &mut n,
            &json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}], "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(n["status"]["conditions"][0]["status"], "True");
        assert_eq!(n["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_ops() {
        let mut o = json!({"metadata": {"labels": {"a": "1"}}, "l": [1]});
        json_patch(
            &mut o,
            &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"},
                    {"op": "remove", "path": "/metadata/labels/a"},
                    {"op": "add", "path": "/l/-", "value": 2},
                    {"op": "replace", "path": "/l/0", "value": 0}]),
        )
        .unwrap();
        assert_eq!(o, json!({"metadata": {"labels": {"b": "2"}}, "l": [0, 2]}));
        assert!(json_patch(&mut o, &json!([{"op": "test", "path": "/l/0", "value": 9}])).is_err());
    }
}
