//! The resources served, their discovery documents, server-side printing (Tables) and
//! validation, following the upstream API conventions for these types.

use base64::Engine;
use serde_json::{json, Value};

pub(crate) struct ResDef {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) resource: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short: &'static [&'static str],
    pub(crate) subresources: &'static [&'static str],
    /// Create-only review resources (not stored).
    pub(crate) review: bool,
}

impl ResDef {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `configmaps` or `certificatesigningrequests.certificates.k8s.io` (error messages).
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    subresources: &'static [&'static str],
) -> ResDef {
    ResDef {
        group,
        version,
        resource,
        singular,
        kind,
        namespaced,
        short,
        subresources,
        review: false,
    }
}

const fn review(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
) -> ResDef {
    ResDef {
        group,
        version: "v1",
        resource,
        singular,
        kind,
        namespaced: false,
        short: &[],
        subresources: &[],
        review: true,
    }
}

pub(crate) const RBAC: &str = "rbac.authorization.k8s.io";
pub(crate) const CERTS: &str = "certificates.k8s.io";

pub(crate) static RESOURCES: &[ResDef] = &[
    res(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &["status", "finalize"],
    ),
    res("", "v1", "secrets", "secret", "Secret", true, &[], &[]),
    res(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
    ),
    res(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        &["status"],
    ),
    res(
        RBAC,
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        &[],
    ),
    res(
        RBAC,
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
    ),
    res(RBAC, "v1", "roles", "role", "Role", true, &[], &[]),
    res(
        RBAC,
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        &[],
    ),
    res(
        CERTS,
        "v1",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        &["csr"],
        &["approval", "status"],
    ),
    review(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
    ),
    review(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
    ),
    review(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
    ),
];

pub(crate) fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !g.contains(&r.group) {
            g.push(r.group);
        }
    }
    g
}

pub(crate) fn api_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

pub(crate) fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv.clone()], "preferredVersion": gv})
    })
}

pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut out = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let verbs: Vec<&str> = if r.review {
            vec!["create"]
        } else {
            vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        };
        let mut e = json!({"name": r.resource, "singularName": r.singular, "namespaced": r.namespaced,
                           "kind": r.kind, "verbs": verbs});
        if !r.short.is_empty() {
            e["shortNames"] = json!(r.short);
        }
        out.push(e);
        for s in r.subresources {
            let verbs = match *s {
                "finalize" => vec!["update"],
                _ => vec!["get", "patch", "update"],
            };
            out.push(
                json!({"name": format!("{}/{s}", r.resource), "singularName": "",
                            "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs}),
            );
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// A minimal OpenAPI v3 index and per-group-version documents: one PATCH operation per resource
/// path that carries the GVK extension and the `fieldValidation` query parameter, which is what
/// kubectl looks for to know the server validates fields itself.
pub(crate) fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1"}),
    );
    for g in groups() {
        paths.insert(
            format!("apis/{g}/v1"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/v1")}),
        );
    }
    json!({"paths": paths})
}

pub(crate) fn openapi_v3_gv(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && !r.review)
    {
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("{prefix}/{}/{{name}}", r.resource)
        };
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ]);
        paths.insert(
            path,
            json!({"patch": {"operationId": format!("patch{}", r.kind), "parameters": params,
                              "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                              "responses": {"200": {"description": "OK"}}}}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (bootstrapctl lab stand-in)", "version": "v1.32.0"},
                "paths": paths, "components": {"schemas": {}}}),
    )
}

// ---------------------------------------------------------------------------------------------
// Tables (server-side printing, as `kubectl get` asks for)

fn age(obj: &Value) -> String {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".into();
    };
    let Ok(t) = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
    else {
        return "<unknown>".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    human_duration(secs)
}

/// Go's duration.HumanDuration, abbreviated to what matters.
fn human_duration(s: i64) -> String {
    if s < 120 {
        format!("{s}s")
    } else if s < 600 {
        let m = s / 60;
        let r = s % 60;
        if r == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{r}s")
        }
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 8 * 3600 {
        let h = s / 3600;
        let m = (s % 3600) / 60;
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m}m")
        }
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

fn col(name: &str, ty: &str) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" {"name"} else {""}, "description": "", "priority": 0})
}

fn node_status(n: &Value) -> String {
    let ready = n["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str());
    let mut s = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if n["spec"]["unschedulable"].as_bool() == Some(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

fn node_roles(n: &Value) -> String {
    let mut roles: Vec<String> = n["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn csr_condition(c: &Value) -> String {
    let conds = c["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for t in ["Approved", "Denied", "Failed"] {
        if conds
            .iter()
            .any(|x| x["type"] == t && x["status"] != "False")
        {
            out.push(t.into());
        }
    }
    if out.is_empty() {
        out.push("Pending".into());
    }
    if c["status"]["certificate"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        out.push("Issued".into());
    }
    out.join(",")
}

/// (column definitions, cells for one object)
fn columns(resource: &str) -> Vec<Value> {
    let mut cols = vec![col("Name", "string")];
    match resource {
        "namespaces" => cols.push(col("Status", "string")),
        "secrets" => {
            cols.push(col("Type", "string"));
            cols.push(col("Data", "string"));
        }
        "configmaps" => cols.push(col("Data", "string")),
        "nodes" => {
            cols.push(col("Status", "string"));
            cols.push(col("Roles", "string"));
        }
        "clusterrolebindings" | "rolebindings" => cols.push(col("Role", "string")),
        "certificatesigningrequests" => {
            cols.push(col("Age", "string"));
            cols.push(col("SignerName", "string"));
            cols.push(col("Requestor", "string"));
            cols.push(col("RequestedDuration", "string"));
            cols.push(col("Condition", "string"));
        }
        _ => {}
    }
    // Age comes before the version column for nodes, second for CSRs, last otherwise.
    if resource != "certificatesigningrequests" {
        cols.push(col("Age", "string"));
    }
    if resource == "nodes" {
        cols.push(col("Version", "string"));
    }
    if resource == "clusterroles" || resource == "roles" {
        if let Some(c) = cols.last_mut() {
            c["name"] = json!("Created At");
        }
    }
    cols
}

fn cells(resource: &str, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"].as_str().unwrap_or(""));
    let count = |k: &str| {
        json!(
            o[k].as_object().map_or(0, |m| m.len())
                + if k == "data" {
                    o["binaryData"].as_object().map_or(0, |m| m.len())
                } else {
                    0
                }
        )
    };
    let mut c = vec![name];
    match resource {
        "namespaces" => c.push(json!(o["status"]["phase"].as_str().unwrap_or("Active"))),
        "secrets" => {
            c.push(json!(o["type"].as_str().unwrap_or("Opaque")));
            c.push(count("data"));
        }
        "configmaps" => c.push(count("data")),
        "nodes" => {
            c.push(json!(node_status(o)));
            c.push(json!(node_roles(o)));
        }
        "clusterrolebindings" | "rolebindings" => c.push(json!(format!(
            "{}/{}",
            o["roleRef"]["kind"].as_str().unwrap_or(""),
            o["roleRef"]["name"].as_str().unwrap_or("")
        ))),
        "certificatesigningrequests" => {
            c.push(json!(age(o)));
            c.push(json!(o["spec"]["signerName"].as_str().unwrap_or("")));
            c.push(json!(o["spec"]["username"].as_str().unwrap_or("")));
            c.push(json!(o["spec"]["expirationSeconds"]
                .as_i64()
                .map_or("<none>".to_string(), human_duration)));
            c.push(json!(csr_condition(o)));
        }
        _ => {}
    }
    if resource == "clusterroles" || resource == "roles" {
        c.push(json!(o["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")));
    } else if resource != "certificatesigningrequests" {
        c.push(json!(age(o)));
    }
    if resource == "nodes" {
        c.push(json!(o["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or("")));
    }
    c
}

pub(crate) fn table(resource: &str, items: &[Value], rv: u64, with_defs: bool) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": cells(resource, o), "object": o}))
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                       "metadata": {"resourceVersion": rv.to_string()}, "rows": rows});
    t["columnDefinitions"] = if with_defs {
        json!(columns(resource))
    } else {
        json!([])
    };
    t
}

// ---------------------------------------------------------------------------------------------
// Validation

/// One field error: (field, reason, message) as in a Status cause.
pub(crate) type Cause = (String, &'static str, String);

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub(crate) fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        && s != "."
        && s != ".."
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    (
        field.to_string(),
        "FieldValueInvalid",
        format!("Invalid value: {value:?}: {detail}"),
    )
}

fn required(field: &str, detail: &str) -> Cause {
    (
        field.to_string(),
        "FieldValueRequired",
        format!(
            "Required value{}{detail}",
            if detail.is_empty() { "" } else { ": " }
        ),
    )
}

fn unsupported(field: &str, value: &str, allowed: &[&str]) -> Cause {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    (
        field.to_string(),
        "FieldValueNotSupported",
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

/// Validate an object for create (old = None) or update.
pub(crate) fn validate(r: &ResDef, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        match r.resource {
            "namespaces" => {
                if !is_label(name) {
                    errs.push(invalid("metadata.name", name, DNS1123_LABEL));
                }
            }
            // Upstream validates these names as path segments (ValidatePathSegmentName), so a
            // kubelet's `node-csr-<base64url digest>` with upper-case letters is valid.
            "clusterroles"
            | "clusterrolebindings"
            | "roles"
            | "rolebindings"
            | "certificatesigningrequests" => {
                if name == "." || name == ".." {
                    errs.push(invalid(
                        "metadata.name",
                        name,
                        &format!("may not be '{name}'"),
                    ));
                } else if name.contains('/') || name.contains('%') {
                    errs.push(invalid("metadata.name", name, "may not contain '/' or '%'"));
                }
            }
            _ => {
                if !is_subdomain(name) {
                    errs.push(invalid("metadata.name", name, DNS1123_SUBDOMAIN));
                }
            }
        }
    }
    for (k, _) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        if k.is_empty() || k.len() > 316 {
            errs.push(invalid("metadata.labels", k, "name part must be non-empty"));
        }
    }
    match r.resource {
        "secrets" | "configmaps" => {
            let mut total = 0usize;
            for field in ["data", "binaryData"] {
                for (k, v) in obj[field].as_object().into_iter().flatten() {
                    if !is_config_key(k) {
                        errs.push(invalid(&format!("{field}[{k}]"), k, CONFIG_KEY));
                    }
                    total += v.as_str().map_or(0, str::len);
                }
            }
            if total > 1 << 20 {
                errs.push((
                    "data".into(),
                    "FieldValueTooLong",
                    "Too long: must have at most 1048576 bytes".into(),
                ));
            }
            if let Some(old) = old {
                if r.resource == "secrets" && old["type"] != obj["type"] {
                    errs.push(invalid(
                        "type",
                        obj["type"].as_str().unwrap_or(""),
                        "field is immutable",
                    ));
                }
                if old["immutable"].as_bool() == Some(true)
                    && (old["data"] != obj["data"] || old["binaryData"] != obj["binaryData"])
                {
                    errs.push((
                        "data".into(),
                        "FieldValueForbidden",
                        "Forbidden: field is immutable when `immutable` is set".into(),
                    ));
                }
            }
        }
        "clusterroles" | "roles" => {
            for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
                if rule["verbs"].as_array().is_none_or(|v| v.is_empty()) {
                    errs.push(required(
                        &format!("rules[{i}].verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                let nonres = rule["nonResourceURLs"]
                    .as_array()
                    .is_some_and(|v| !v.is_empty());
                if nonres && r.resource == "roles" {
                    errs.push(invalid(
                        &format!("rules[{i}].nonResourceURLs"),
                        "",
                        "namespaced rules cannot apply to non-resource URLs",
                    ));
                }
                let has_res = rule["resources"].as_array().is_some_and(|v| !v.is_empty());
                if nonres && has_res {
                    errs.push(invalid(
                        &format!("rules[{i}].nonResourceURLs"),
                        "",
                        "rules cannot apply to both regular resources and non-resource URLs",
                    ));
                }
                if !nonres && rule["apiGroups"].as_array().is_none_or(|v| v.is_empty()) {
                    errs.push(required(
                        &format!("rules[{i}].apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
                if !nonres && !has_res {
                    errs.push(required(
                        &format!("rules[{i}].resources"),
                        "resource rules must supply at least one resource",
                    ));
                }
            }
        }
        "clusterrolebindings" | "rolebindings" => {
            let rr = &obj["roleRef"];
            let kind = rr["kind"].as_str().unwrap_or("");
            let allowed: &[&str] = if r.resource == "rolebindings" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            if kind.is_empty() {
                errs.push(required("roleRef.kind", ""));
            } else if !allowed.contains(&kind) {
                errs.push(unsupported("roleRef.kind", kind, allowed));
            }
            if rr["apiGroup"].as_str().is_some_and(|g| g != RBAC) {
                errs.push(unsupported(
                    "roleRef.apiGroup",
                    rr["apiGroup"].as_str().unwrap_or(""),
                    &[RBAC],
                ));
            }
            if rr["name"].as_str().unwrap_or("").is_empty() {
                errs.push(required("roleRef.name", ""));
            }
            for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
                let k = s["kind"].as_str().unwrap_or("");
                if !["User", "Group", "ServiceAccount"].contains(&k) {
                    errs.push(unsupported(
                        &format!("subjects[{i}].kind"),
                        k,
                        &["ServiceAccount", "User", "Group"],
                    ));
                }
                if s["name"].as_str().unwrap_or("").is_empty() {
                    errs.push(required(&format!("subjects[{i}].name"), ""));
                }
            }
            if let Some(old) = old {
                if old["roleRef"] != obj["roleRef"] {
                    errs.push(invalid(
                        "roleRef",
                        &obj["roleRef"].to_string(),
                        "cannot change roleRef",
                    ));
                }
            }
        }
        "certificatesigningrequests" => {
            let spec = &obj["spec"];
            match spec["request"].as_str() {
                None | Some("") => errs.push(required("spec.request", "")),
                Some(b64) => {
                    let ok = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .is_some_and(|pem| crate::pki::csr_subject(&pem).is_ok());
                    if !ok {
                        errs.push(invalid(
                            "spec.request",
                            "",
                            "PEM block type must be CERTIFICATE REQUEST",
                        ));
                    }
                }
            }
            let signer = spec["signerName"].as_str().unwrap_or("");
            if signer.is_empty() {
                errs.push(required("spec.signerName", ""));
            } else if signer.split('/').count() != 2
                || !is_subdomain(signer.split('/').next().unwrap_or(""))
            {
                errs.push(invalid(
                    "spec.signerName",
                    signer,
                    "must be a fully qualified domain and path of the form 'example.com/signer-name'",
                ));
            }
            const USAGES: &[&str] = &[
                "signing",
                "digital signature",
                "content commitment",
                "key encipherment",
                "key agreement",
                "data encipherment",
                "cert sign",
                "crl sign",
                "encipher only",
                "decipher only",
                "any",
                "server auth",
                "client auth",
                "code signing",
                "email protection",
                "s/mime",
                "ipsec end system",
                "ipsec tunnel",
                "ipsec user",
                "timestamping",
                "ocsp signing",
                "microsoft sgc",
                "netscape sgc",
            ];
            match spec["usages"].as_array() {
                None => errs.push(required("spec.usages", "usages must be provided")),
                Some(u) if u.is_empty() => {
                    errs.push(required("spec.usages", "usages must be provided"))
                }
                Some(u) => {
                    for (i, x) in u.iter().enumerate() {
                        let s = x.as_str().unwrap_or("");
                        if !USAGES.contains(&s) {
                            errs.push(unsupported(&format!("spec.usages[{i}]"), s, USAGES));
                        }
                    }
                }
            }
            if let Some(e) = spec["expirationSeconds"].as_i64() {
                if e < 600 {
                    errs.push(invalid(
                        "spec.expirationSeconds",
                        &e.to_string(),
                        "may not specify a duration less than 600 seconds (10 minutes)",
                    ));
                }
            }
            let conds = obj["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            if has("Approved") && has("Denied") {
                errs.push(invalid(
                    "status.conditions",
                    "",
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
            if let Some(cert) = obj["status"]["certificate"]
                .as_str()
                .filter(|c| !c.is_empty())
            {
                let pem_ok = base64::engine::general_purpose::STANDARD
                    .decode(cert)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .is_some_and(|p| crate::pki::cert_subject(&p).is_ok());
                if !pem_ok {
                    errs.push(invalid(
                        "status.certificate",
                        "<certificate data>",
                        "must contain at least one CERTIFICATE PEM block",
                    ));
                }
                if let Some(old) = old {
                    let prev = old["status"]["certificate"].as_str().unwrap_or("");
                    if !prev.is_empty() && prev != cert {
                        errs.push(invalid(
                            "status.certificate",
                            "<certificate data>",
                            "updates may not modify existing certificate content",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    errs
}
