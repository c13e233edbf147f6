//! Authorization: the `--authorization-mode` list evaluated in order (first allow or deny wins;
//! no opinion from all = forbidden), with AlwaysAllow, AlwaysDeny, RBAC (evaluated for real over
//! the stored Roles, ClusterRoles and bindings) and a minimal Node authorizer.
//!
//! Node (subset): a user `system:node:<name>` in group `system:nodes` may get/create/update/patch
//! its own Node and `nodes/status`, get/list/watch nodes, create/get/list/watch CSRs (any CSR,
//! as upstream's NodeRules: the real API server's answers in the differential table).
//! Anything else: no opinion (RBAC may still allow).

use serde_json::Value;

use super::authn::User;

/// What a request asks to do (upstream's authorizer.Attributes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Attrs {
    pub(crate) verb: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) subresource: String,
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) resource_request: bool,
    pub(crate) path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

/// The RBAC objects, as lists of JSON objects.
#[derive(Debug, Default, Clone)]
pub(crate) struct RbacData {
    pub(crate) cluster_roles: Vec<Value>,
    pub(crate) cluster_role_bindings: Vec<Value>,
    pub(crate) roles: Vec<Value>,
    pub(crate) role_bindings: Vec<Value>,
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Does one PolicyRule allow the request? (upstream rbac.RuleAllows)
pub(crate) fn rule_allows(rule: &Value, a: &Attrs) -> bool {
    let verbs = strs(&rule["verbs"]);
    if !has(&verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return strs(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*" || *u == a.path || (u.ends_with('*') && a.path.starts_with(&u[..u.len() - 1]))
        });
    }
    if !has(&strs(&rule["apiGroups"]), &a.group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strs(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty()
                && r.len() == a.subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

fn subject_matches(s: &Value, u: &User, binding_ns: &str) -> bool {
    let name = s["name"].as_str().unwrap_or("");
    match s["kind"].as_str().unwrap_or("") {
        "User" => u.name == name,
        "Group" => u.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            u.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn binds(b: &Value, u: &User) -> bool {
    let ns = b["metadata"]["namespace"].as_str().unwrap_or("");
    b["subjects"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| subject_matches(s, u, ns)))
}

fn named<'a>(list: &'a [Value], name: &str, ns: &str) -> Option<&'a Value> {
    list.iter().find(|o| {
        o["metadata"]["name"].as_str() == Some(name)
            && o["metadata"]["namespace"].as_str().unwrap_or("") == ns
    })
}

fn rules_allow(role: Option<&Value>, a: &Attrs) -> bool {
    role.and_then(|r| r["rules"].as_array())
        .is_some_and(|rules| rules.iter().any(|r| rule_allows(r, a)))
}

/// RBAC: allow when a ClusterRoleBinding, or a RoleBinding in the request's namespace, binds the
/// user to a role with a matching rule; otherwise no opinion.
pub(crate) fn rbac(data: &RbacData, u: &User, a: &Attrs) -> Decision {
    for b in &data.cluster_role_bindings {
        if b["roleRef"]["kind"].as_str() == Some("ClusterRole") && binds(b, u) {
            let role = named(
                &data.cluster_roles,
                b["roleRef"]["name"].as_str().unwrap_or(""),
                "",
            );
            if rules_allow(role, a) {
                return Decision::Allow;
            }
        }
    }
    if !a.namespace.is_empty() {
        for b in &data.role_bindings {
            if b["metadata"]["namespace"].as_str() != Some(a.namespace.as_str()) || !binds(b, u) {
                continue;
            }
            let rname = b["roleRef"]["name"].as_str().unwrap_or("");
            let role = match b["roleRef"]["kind"].as_str() {
                Some("ClusterRole") => named(&data.cluster_roles, rname, ""),
                Some("Role") => named(&data.roles, rname, &a.namespace),
                _ => None,
            };
            if rules_allow(role, a) {
                return Decision::Allow;
            }
        }
    }
    Decision::NoOpinion
}

/// The Node authorizer subset (see module doc). `csr_username(name)` looks up a CSR's requester.
pub(crate) fn node(
    u: &User,
    a: &Attrs,
    _csr_username: &dyn Fn(&str) -> Option<String>,
) -> Decision {
    let Some(node_name) = u.name.strip_prefix("system:node:") else {
        return Decision::NoOpinion;
    };
    if !u.groups.iter().any(|g| g == "system:nodes") || !a.resource_request {
        return Decision::NoOpinion;
    }
    let allow = match (a.group.as_str(), a.resource.as_str()) {
        ("", "nodes") => match a.verb.as_str() {
            "list" | "watch" => a.subresource.is_empty(),
            "get" | "update" | "patch" => {
                a.name == node_name && (a.subresource.is_empty() || a.subresource == "status")
            }
            "create" => a.subresource.is_empty() && (a.name.is_empty() || a.name == node_name),
            _ => false,
        },
        ("certificates.k8s.io", "certificatesigningrequests") => {
            match (a.verb.as_str(), a.subresource.as_str()) {
                // Upstream's NodeRules: create, get, list and watch on every CSR (the real
                // v1.20.2 API server answers so in the differential table); no check of whose
                // CSR it is.
                ("create", "") | ("get", "") | ("list", "") | ("watch", "") => true,
                _ => false,
            }
        }
        _ => false,
    };
    if allow {
        Decision::Allow
    } else {
        Decision::NoOpinion
    }
}

/// upstream's forbiddenMessage, with the qualified resource prefix of NewForbidden.
pub(crate) fn forbidden_message(u: &User, a: &Attrs) -> String {
    if !a.resource_request {
        return format!(
            "forbidden: User {:?} cannot {} path {:?}",
            u.name, a.verb, a.path
        );
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let detail = if a.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            u.name, a.verb, resource, a.group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            u.name, a.verb, resource, a.group, a.namespace
        )
    };
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    if a.name.is_empty() {
        format!("{qualified} is forbidden: {detail}")
    } else {
        format!("{qualified} {:?} is forbidden: {detail}", a.name)
    }
}
