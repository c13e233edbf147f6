//! The bootstrap RBAC policy reconciled at every start, as upstream's bootstrappolicy: missing
//! roles and bindings are created; existing ones whose annotation
//! `rbac.authorization.kubernetes.io/autoupdate` is not "false" get missing rules/subjects added
//! (never removed). Also the namespaces that exist from the start.

use serde_json::{json, Value};

use super::store::Store;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn named_rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs})
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

const CERTS: &str = "certificates.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];

/// (name, rules) of the built-in ClusterRoles.
pub(crate) fn cluster_roles() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        (
            "system:discovery",
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        (
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        (
            "system:public-info-viewer",
            vec![url_rule(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        (
            "system:node-bootstrapper",
            vec![rule(
                &[CERTS],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &[CERTS],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &[CERTS],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        (
            "system:node",
            vec![
                rule(
                    &[""],
                    &["nodes"],
                    &[
                        "create", "get", "list", "watch", "update", "patch", "delete",
                    ],
                ),
                rule(&[""], &["nodes/status"], &["update", "patch"]),
                rule(&[""], &["events"], &["create", "update", "patch"]),
                rule(&[""], &["configmaps", "secrets"], READ),
                rule(
                    &[CERTS],
                    &["certificatesigningrequests"],
                    &["create", "get", "list", "watch"],
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "delete", "get", "patch", "update"],
                ),
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews", "localsubjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        (
            // The stand-in controller manager runs every controller as this one user (no
            // per-controller service accounts), so this is the union of upstream's
            // system:kube-controller-manager and the roles of the controllers the lab runs:
            // csrapproving, csrsigning, csrcleaner, bootstrapsigner, tokencleaner, node lifecycle.
            "system:kube-controller-manager",
            vec![
                rule(&[""], &["secrets"], &["get", "list", "watch", "delete"]),
                rule(
                    &[""],
                    &["configmaps"],
                    &["get", "list", "watch", "create", "update", "patch"],
                ),
                rule(&[""], &["namespaces"], READ),
                rule(
                    &[""],
                    &["nodes"],
                    &["get", "list", "watch", "update", "patch", "delete"],
                ),
                rule(&[""], &["nodes/status"], &["update", "patch"]),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "update", "patch"],
                ),
                rule(
                    &[CERTS],
                    &["certificatesigningrequests"],
                    &["get", "list", "watch", "delete"],
                ),
                rule(
                    &[CERTS],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                    &["update"],
                ),
                named_rule(
                    &[CERTS],
                    &["signers"],
                    &[
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ],
                    &["approve", "sign"],
                ),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "get", "update"],
                ),
            ],
        ),
    ]
}

/// (binding name, role name, subjects) of the built-in ClusterRoleBindings.
pub(crate) fn cluster_role_bindings() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let group =
        |n: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": n});
    let user =
        |n: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": n});
    vec![
        (
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        (
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        (
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        // Upstream keeps this binding with no subjects (the Node authorizer replaced it).
        ("system:node", "system:node", vec![]),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
    ]
}

fn bootstrap_meta(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn autoupdate(obj: &Value) -> bool {
    obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"].as_str()
        != Some("false")
}

/// Add what is missing from `list` (by equality).
fn union(existing: &Value, wanted: &[Value]) -> (Vec<Value>, bool) {
    let mut out: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    let mut changed = false;
    for w in wanted {
        if !out.contains(w) {
            out.push(w.clone());
            changed = true;
        }
    }
    (out, changed)
}

/// Create the default namespaces and reconcile the bootstrap policy.
pub(crate) fn reconcile(store: &Store) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if store.get("namespaces", "", ns).is_none() {
            let _ = store.create(
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                       "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            );
        }
    }
    for (name, rules) in cluster_roles() {
        match store.get("clusterroles", "", name) {
            None => {
                let _ = store.create(
                    "clusterroles",
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": bootstrap_meta(name), "rules": rules}),
                );
            }
            Some(mut cur) if autoupdate(&cur) => {
                let (merged, changed) = union(&cur["rules"], &rules);
                if changed {
                    cur["rules"] = Value::Array(merged);
                    let _ = store.update("clusterroles", cur, None);
                }
            }
            Some(_) => {}
        }
    }
    for (name, role, subjects) in cluster_role_bindings() {
        match store.get("clusterrolebindings", "", name) {
            None => {
                let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1",
                       "kind": "ClusterRoleBinding", "metadata": bootstrap_meta(name),
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}});
                if !subjects.is_empty() {
                    b["subjects"] = Value::Array(subjects);
                }
                let _ = store.create("clusterrolebindings", b);
            }
            Some(mut cur) if autoupdate(&cur) && !subjects.is_empty() => {
                let (merged, changed) = union(&cur["subjects"], &subjects);
                if changed {
                    cur["subjects"] = Value::Array(merged);
                    let _ = store.update("clusterrolebindings", cur, None);
                }
            }
            Some(_) => {}
        }
    }
}
