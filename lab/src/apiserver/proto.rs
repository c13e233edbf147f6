//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
//! JSON. client-go's typed clients send protobuf for built-in types since 1.31, so kubectl's
//! `create secret`, `create configmap`, `create clusterrolebinding`, `certificate approve` and
//! `auth can-i` bodies arrive this way. Responses are always JSON (clients accept it).
//!
//! The envelope is `k8s\0` + runtime.Unknown{typeMeta{apiVersion=1, kind=2}=1, raw=2}; `raw` is
//! decoded with the field numbers of the types served here (from k8s.io/api generated.proto).
//! Unknown fields are skipped; empty values are omitted, as JSON `omitempty` does.

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
enum F {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, F);

static OBJECT_META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (14, "finalizers", F::RepStr),
];
static SECRET: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
static CONFIG_MAP: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];
static NS_SPEC: &[Field] = &[(1, "finalizers", F::RepStr)];
static NS_STATUS: &[Field] = &[(1, "phase", F::Str)];
static NAMESPACE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(NS_SPEC)),
    (3, "status", F::Msg(NS_STATUS)),
];
static POLICY_RULE: &[Field] = &[
    (1, "verbs", F::RepStr),
    (2, "apiGroups", F::RepStr),
    (3, "resources", F::RepStr),
    (4, "resourceNames", F::RepStr),
    (5, "nonResourceURLs", F::RepStr),
];
static ROLE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "rules", F::RepMsg(POLICY_RULE)),
];
static SUBJECT: &[Field] = &[
    (1, "kind", F::Str),
    (2, "apiGroup", F::Str),
    (3, "name", F::Str),
    (4, "namespace", F::Str),
];
static ROLE_REF: &[Field] = &[
    (1, "apiGroup", F::Str),
    (2, "kind", F::Str),
    (3, "name", F::Str),
];
static BINDING: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "subjects", F::RepMsg(SUBJECT)),
    (3, "roleRef", F::Msg(ROLE_REF)),
];
static CSR_SPEC: &[Field] = &[
    (1, "request", F::Bytes),
    (2, "username", F::Str),
    (3, "uid", F::Str),
    (4, "groups", F::RepStr),
    (5, "usages", F::RepStr),
    (7, "signerName", F::Str),
    (8, "expirationSeconds", F::Int),
];
static CSR_CONDITION: &[Field] = &[
    (1, "type", F::Str),
    (2, "reason", F::Str),
    (3, "message", F::Str),
    (4, "lastUpdateTime", F::Time),
    (5, "lastTransitionTime", F::Time),
    (6, "status", F::Str),
];
static CSR_STATUS: &[Field] = &[
    (1, "conditions", F::RepMsg(CSR_CONDITION)),
    (2, "certificate", F::Bytes),
];
static CSR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(CSR_SPEC)),
    (3, "status", F::Msg(CSR_STATUS)),
];
static RESOURCE_ATTRS: &[Field] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
static NON_RESOURCE_ATTRS: &[Field] = &[(1, "path", F::Str), (2, "verb", F::Str)];
static SSAR_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRS)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRS)),
];
static SAR_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRS)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRS)),
    (3, "user", F::Str),
    (4, "groups", F::RepStr),
    (6, "uid", F::Str),
];
static SSAR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SSAR_SPEC)),
];
static SAR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SAR_SPEC)),
];
static SELF_SUBJECT_REVIEW: &[Field] = &[(1, "metadata", F::Msg(OBJECT_META))];
static NODE_SPEC: &[Field] = &[
    (1, "podCIDR", F::Str),
    (3, "providerID", F::Str),
    (4, "unschedulable", F::Bool),
];
static NODE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(NODE_SPEC)),
];
static TYPE_META: &[Field] = &[(1, "apiVersion", F::Str), (2, "kind", F::Str)];
static UNKNOWN: &[Field] = &[(1, "typeMeta", F::Msg(TYPE_META)), (2, "raw", F::Bytes)];

fn schema(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "Namespace" => NAMESPACE,
        "ClusterRole" | "Role" => ROLE,
        "ClusterRoleBinding" | "RoleBinding" => BINDING,
        "CertificateSigningRequest" => CSR,
        "SelfSubjectAccessReview" => SSAR,
        "SubjectAccessReview" => SAR,
        "SelfSubjectReview" => SELF_SUBJECT_REVIEW,
        "Node" => NODE,
        _ => return None,
    })
}

/// Decode a protobuf body (with the `k8s\0` envelope) to the JSON object it stands for.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("protobuf body without the k8s envelope")?;
    let env = message(rest, UNKNOWN, true)?;
    let kind = env["typeMeta"]["kind"].as_str().unwrap_or("").to_string();
    let api_version = env["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let raw = env["raw"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    let fields = schema(&kind).ok_or_else(|| {
        format!("the lab stand-in cannot decode protobuf for kind {kind:?}; send JSON")
    })?;
    let mut obj = message(&raw, fields, false)?;
    obj["kind"] = json!(kind);
    obj["apiVersion"] = json!(api_version);
    Ok(obj)
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn message(b: &[u8], fields: &[Field], keep_empty: bool) -> Result<Value, String> {
    let mut out = Map::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, key & 7);
        let (scalar, bytes): (u64, &[u8]) = match wire {
            0 => (varint(b, &mut i)?, &[]),
            1 => {
                i += 8;
                (0, &[])
            }
            5 => {
                i += 4;
                (0, &[])
            }
            2 => {
                let n = varint(b, &mut i)? as usize;
                let s = b.get(i..i + n).ok_or("truncated field")?;
                i += n;
                (0, s)
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        let Some(&(_, name, f)) = fields.iter().find(|x| x.0 == num) else {
            continue;
        };
        let text = || String::from_utf8_lossy(bytes).into_owned();
        match f {
            F::Str => {
                out.insert(name.into(), json!(text()));
            }
            F::Bytes => {
                out.insert(
                    name.into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                );
            }
            F::Int => {
                out.insert(name.into(), json!(scalar as i64));
            }
            F::Bool => {
                out.insert(name.into(), json!(scalar != 0));
            }
            F::Time => {
                let t = message(bytes, &[(1, "s", F::Int)], true)?;
                let secs = t["s"].as_i64().unwrap_or(0);
                if secs > 0 {
                    if let Ok(dt) = time::OffsetDateTime::from_unix_timestamp(secs) {
                        out.insert(
                            name.into(),
                            json!(dt
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default()),
                        );
                    }
                }
            }
            F::Msg(sub) => {
                out.insert(name.into(), message(bytes, sub, false)?);
            }
            F::MapStr | F::MapBytes => {
                let value_kind = if matches!(f, F::MapStr) {
                    F::Str
                } else {
                    F::Bytes
                };
                let e = message(bytes, &[(1, "k", F::Str), (2, "v", value_kind)], true)?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[e["k"].as_str().unwrap_or("")] = json!(e["v"].as_str().unwrap_or(""));
            }
            F::RepStr => {
                let a = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = a.as_array_mut() {
                    a.push(json!(text()));
                }
            }
            F::RepMsg(sub) => {
                let item = message(bytes, sub, false)?;
                let a = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = a.as_array_mut() {
                    a.push(item);
                }
            }
        }
    }
    if !keep_empty {
        out.retain(|_, v| !is_empty(v));
    }
    Ok(Value::Object(out))
}
