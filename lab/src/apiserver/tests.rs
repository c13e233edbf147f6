//! Tests of the kube-apiserver stand-in: authenticator and RBAC tables, store persistence (the
//! real kubectl against a running stand-in is in the crate's integration tests).

use base64::Engine;
use serde_json::{json, Value};

use super::authn::{self, User};
use super::authz::{self, Attrs, Decision, RbacData};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn token_secret(data: &[(&str, &str)], ty: &str) -> Value {
    let d: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(b64(v))))
        .collect();
    json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}, "type": ty, "data": d})
}

#[test]
fn bootstrap_token_authenticator_table() {
    let now = time::OffsetDateTime::parse(
        "2030-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let base = [
        ("token-id", "abcdef"),
        ("token-secret", "0123456789abcdef"),
        ("usage-bootstrap-authentication", "true"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        for (k, val) in extra {
            v.retain(|(x, _)| x != k);
            v.push((k, val));
        }
        v
    };
    let ty = "bootstrap.kubernetes.io/token";
    // (case, token, secret data, type, expected groups or None for 401)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        Option<Vec<&'a str>>,
    );
    let cases: Vec<Case> = vec![
        ("valid", "abcdef.0123456789abcdef", with(&[]), ty,
         Some(vec!["system:bootstrappers", "system:authenticated"])),
        ("valid with extra groups (sorted, deduplicated)", "abcdef.0123456789abcdef",
         with(&[("auth-extra-groups", "system:bootstrappers:worker,system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:worker")]), ty,
         Some(vec!["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:worker", "system:authenticated"])),
        ("wrong secret", "abcdef.0123456789abcdee", with(&[]), ty, None),
        ("expires in one second", "abcdef.0123456789abcdef", with(&[("expiration", "2030-01-01T00:00:01Z")]), ty,
         Some(vec!["system:bootstrappers", "system:authenticated"])),
        ("expired at the exact instant", "abcdef.0123456789abcdef", with(&[("expiration", "2030-01-01T00:00:00Z")]), ty, None),
        ("expired at the instant, other offset", "abcdef.0123456789abcdef", with(&[("expiration", "2030-01-01T01:00:00+01:00")]), ty, None),
        ("unparseable expiration", "abcdef.0123456789abcdef", with(&[("expiration", "tomorrow")]), ty, None),
        ("usage True instead of true", "abcdef.0123456789abcdef", with(&[("usage-bootstrap-authentication", "True")]), ty, None),
        ("usage missing", "abcdef.0123456789abcdef", base[..2].to_vec(), ty, None),
        ("extra group with upper case", "abcdef.0123456789abcdef", with(&[("auth-extra-groups", "system:bootstrappers:Worker")]), ty, None),
        ("extra group without the prefix", "abcdef.0123456789abcdef", with(&[("auth-extra-groups", "system:bootstrappers:ok,foo")]), ty, None),
        ("extra group ending in a colon", "abcdef.0123456789abcdef", with(&[("auth-extra-groups", "system:bootstrappers:a:")]), ty, None),
        ("token-id in the secret differs", "abcdef.0123456789abcdef", with(&[("token-id", "abcdeg")]), ty, None),
        ("wrong secret type", "abcdef.0123456789abcdef", with(&[]), "Opaque", None),
        ("malformed token (upper case)", "ABCDEF.0123456789abcdef", with(&[]), ty, None),
        ("malformed token (short secret)", "abcdef.0123456789abcde", with(&[]), ty, None),
        ("no such secret", "zzzzzz.0123456789abcdef", with(&[]), ty, None),
    ];
    for (case, token, data, ty, want) in cases {
        let secret = token_secret(&data, ty);
        let got = authn::bootstrap_token(
            token,
            |name| (name == "bootstrap-token-abcdef").then(|| secret.clone()),
            now,
        );
        match (want, got) {
            (Some(groups), Ok(u)) => {
                assert_eq!(u.name, "system:bootstrap:abcdef", "{case}");
                assert_eq!(u.groups, groups, "{case}");
            }
            (None, Err(_)) => {}
            (want, got) => panic!("{case}: want {want:?}, got {got:?}"),
        }
    }
    assert!(crate::tokens::valid_extra_group(&format!(
        "system:bootstrappers:{}",
        "a".repeat(256)
    )));
    assert!(!crate::tokens::valid_extra_group(&format!(
        "system:bootstrappers:{}",
        "a".repeat(257)
    )));
}

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        uid: String::new(),
    }
}

fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str, ns: &str) -> Attrs {
    Attrs {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: name.into(),
        namespace: ns.into(),
        resource_request: true,
        path: String::new(),
    }
}

#[test]
fn rbac_table() {
    let data = RbacData {
        cluster_roles: vec![
            json!({"metadata": {"name": "csr-create"}, "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get"]}]}),
            json!({"metadata": {"name": "nodeclient"}, "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/nodeclient"], "verbs": ["create"]}]}),
            json!({"metadata": {"name": "any-status"}, "rules": [{"apiGroups": [""], "resources": ["*/status"], "verbs": ["update"]}]}),
            json!({"metadata": {"name": "everything-core"}, "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]}),
            json!({"metadata": {"name": "healthz"}, "rules": [{"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}]}),
        ],
        cluster_role_bindings: vec![
            json!({"metadata": {"name": "b1"}, "roleRef": {"kind": "ClusterRole", "name": "csr-create"}, "subjects": [{"kind": "Group", "name": "system:bootstrappers"}]}),
            json!({"metadata": {"name": "b2"}, "roleRef": {"kind": "ClusterRole", "name": "nodeclient"}, "subjects": [{"kind": "User", "name": "alice"}]}),
            json!({"metadata": {"name": "b3"}, "roleRef": {"kind": "ClusterRole", "name": "any-status"}, "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "kube-system"}]}),
            json!({"metadata": {"name": "b4"}, "roleRef": {"kind": "ClusterRole", "name": "healthz"}, "subjects": [{"kind": "Group", "name": "system:unauthenticated"}]}),
            json!({"metadata": {"name": "b5"}, "roleRef": {"kind": "Role", "name": "csr-create"}, "subjects": [{"kind": "User", "name": "mallory"}]}),
        ],
        roles: vec![
            json!({"metadata": {"name": "cluster-info", "namespace": "kube-public"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}]}),
        ],
        role_bindings: vec![
            json!({"metadata": {"name": "rb", "namespace": "kube-public"}, "roleRef": {"kind": "Role", "name": "cluster-info"}, "subjects": [{"kind": "User", "name": "system:anonymous"}]}),
            json!({"metadata": {"name": "rb2", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "everything-core"}, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
        ],
    };
    let anon = user("system:anonymous", &["system:unauthenticated"]);
    let boot = user(
        "system:bootstrap:abcdef",
        &["system:bootstrappers", "system:authenticated"],
    );
    let alice = user("alice", &["system:authenticated"]);
    let sa = user(
        "system:serviceaccount:kube-system:ctl",
        &["system:serviceaccounts"],
    );
    let team_sa = user("system:serviceaccount:team:default", &[]);
    let mallory = user("mallory", &[]);
    let c = "certificates.k8s.io";
    let mut nonres = attrs("get", "", "", "", "", "");
    nonres.resource_request = false;
    nonres.path = "/healthz".into();
    let mut nonres_apis = nonres.clone();
    nonres_apis.path = "/apis/certificates.k8s.io".into();
    let mut nonres_api = nonres.clone();
    nonres_api.path = "/api".into();
    let cases: Vec<(&str, &User, Attrs, bool)> = vec![
        (
            "resourceNames: the named configmap",
            &anon,
            attrs("get", "", "configmaps", "", "cluster-info", "kube-public"),
            true,
        ),
        (
            "resourceNames: another configmap",
            &anon,
            attrs("get", "", "configmaps", "", "other", "kube-public"),
            false,
        ),
        (
            "resourceNames: list has no name",
            &anon,
            attrs("list", "", "configmaps", "", "", "kube-public"),
            false,
        ),
        (
            "role binding is namespaced",
            &anon,
            attrs("get", "", "configmaps", "", "cluster-info", "default"),
            false,
        ),
        (
            "group subject",
            &boot,
            attrs("create", c, "certificatesigningrequests", "", "", ""),
            true,
        ),
        (
            "group subject, verb not granted",
            &boot,
            attrs("delete", c, "certificatesigningrequests", "", "x", ""),
            false,
        ),
        (
            "resource grant does not cover a subresource",
            &boot,
            attrs(
                "create",
                c,
                "certificatesigningrequests",
                "nodeclient",
                "",
                "",
            ),
            false,
        ),
        (
            "subresource grant",
            &alice,
            attrs(
                "create",
                c,
                "certificatesigningrequests",
                "nodeclient",
                "",
                "",
            ),
            true,
        ),
        (
            "subresource grant is not the resource",
            &alice,
            attrs("create", c, "certificatesigningrequests", "", "", ""),
            false,
        ),
        (
            "other subresource",
            &alice,
            attrs(
                "create",
                c,
                "certificatesigningrequests",
                "selfnodeclient",
                "",
                "",
            ),
            false,
        ),
        (
            "*/status matches nodes/status",
            &sa,
            attrs("update", "", "nodes", "status", "n1", ""),
            true,
        ),
        (
            "*/status is not nodes",
            &sa,
            attrs("update", "", "nodes", "", "n1", ""),
            false,
        ),
        (
            "*/status needs the group",
            &sa,
            attrs("update", c, "certificatesigningrequests", "status", "x", ""),
            false,
        ),
        (
            "* resource and verb in the RoleBinding's namespace (SA namespace defaulted)",
            &team_sa,
            attrs("delete", "", "secrets", "", "s", "team"),
            true,
        ),
        (
            "* resource covers subresources",
            &team_sa,
            attrs("update", "", "pods", "status", "p", "team"),
            true,
        ),
        (
            "* in a ClusterRole via RoleBinding stays in the namespace",
            &team_sa,
            attrs("get", "", "secrets", "", "s", "other"),
            false,
        ),
        (
            "* group not granted",
            &team_sa,
            attrs("get", "apps", "deployments", "", "d", "team"),
            false,
        ),
        ("nonResourceURL exact", &anon, nonres.clone(), true),
        ("nonResourceURL prefix *", &anon, nonres_apis, true),
        ("nonResourceURL not listed", &anon, nonres_api, false),
        (
            "ClusterRoleBinding to a Role is ignored",
            &mallory,
            attrs("create", c, "certificatesigningrequests", "", "", ""),
            false,
        ),
    ];
    for (case, u, a, want) in cases {
        let got = authz::rbac(&data, u, &a) == Decision::Allow;
        assert_eq!(got, want, "{case}");
    }
    assert_eq!(
        authz::forbidden_message(&anon, &attrs("create", c, "certificatesigningrequests", "", "", "")),
        "certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:anonymous\" cannot create resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\" at the cluster scope"
    );
    assert_eq!(
        authz::forbidden_message(&anon, &attrs("get", "", "configmaps", "", "cluster-info", "kube-public")),
        "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""
    );
}

#[test]
fn node_authorizer_subset() {
    let n1 = user("system:node:n1", &["system:nodes", "system:authenticated"]);
    let not_node = user("system:node:n1", &["system:authenticated"]);
    let csr_owner = |name: &str| (name == "mine").then(|| "system:node:n1".to_string());
    let c = "certificates.k8s.io";
    let cases = [
        (&n1, attrs("get", "", "nodes", "", "n1", ""), true),
        (&n1, attrs("patch", "", "nodes", "status", "n1", ""), true),
        (&n1, attrs("patch", "", "nodes", "status", "n2", ""), false),
        (&n1, attrs("create", "", "nodes", "", "", ""), true),
        (&n1, attrs("list", "", "nodes", "", "", ""), true),
        (&n1, attrs("delete", "", "nodes", "", "n1", ""), false),
        (
            &n1,
            attrs("create", c, "certificatesigningrequests", "", "", ""),
            true,
        ),
        (
            &n1,
            attrs("get", c, "certificatesigningrequests", "", "mine", ""),
            true,
        ),
        (
            &n1,
            // As upstream's NodeRules (and the real v1.20.2 API server): any CSR.
            attrs("get", c, "certificatesigningrequests", "", "theirs", ""),
            true,
        ),
        (&n1, attrs("get", "", "secrets", "", "s", "default"), false),
        (&not_node, attrs("get", "", "nodes", "", "n1", ""), false),
    ];
    for (i, (u, a, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            authz::node(u, &a, &csr_owner) == Decision::Allow,
            want,
            "case {i}: {a:?}"
        );
    }
}

#[test]
fn store_persists_across_restarts() {
    let tmp = crate::testutil::TempDir::new("store");
    let dir = tmp.0.clone();
    let s = super::store::Store::open(Some(&dir)).unwrap();
    let o = s
        .create(
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}}),
        )
        .unwrap();
    let rv1: u64 = o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut o2 = o.clone();
    o2["data"]["k"] = json!("w");
    assert_eq!(
        s.update("configmaps", o2.clone(), Some("999")),
        Err(super::store::StoreError::Conflict)
    );
    let o3 = s
        .update(
            "configmaps",
            o2,
            Some(o["metadata"]["resourceVersion"].as_str().unwrap()),
        )
        .unwrap();
    drop(s);
    let s = super::store::Store::open(Some(&dir)).unwrap();
    let back = s.get("configmaps", "default", "a").unwrap();
    assert_eq!(back, o3);
    assert_eq!(back["metadata"]["uid"], o["metadata"]["uid"]);
    assert_eq!(s.resource_version(), rv1 + 1);
    assert!(!dir.join("state.json.tmp").exists());
}

#[test]
fn a_status_only_update_is_written_and_an_unchanged_object_is_a_no_op() {
    let s = super::store::Store::open(None).unwrap();
    let csr = s
        .create(
            "certificatesigningrequests",
            json!({"metadata": {"name": "c"}, "spec": {"signerName": "x"}, "status": {}}),
        )
        .unwrap();
    let rv = |o: &serde_json::Value| {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A signer sets the certificate only: the status changes, the generation does not.
    let mut signed = csr.clone();
    signed["status"]["certificate"] = json!("Y2VydA==");
    let after = s
        .update(
            "certificatesigningrequests",
            signed.clone(),
            Some(&rv(&csr)),
        )
        .unwrap();
    assert_ne!(rv(&after), rv(&csr));
    assert_eq!(
        after["metadata"]["generation"],
        csr["metadata"]["generation"]
    );
    let back = s.get("certificatesigningrequests", "", "c").unwrap();
    assert_eq!(back["status"]["certificate"], "Y2VydA==");
    // The same object again: nothing is written, the resourceVersion stays.
    let again = s
        .update("certificatesigningrequests", back.clone(), Some(&rv(&back)))
        .unwrap();
    assert_eq!(rv(&again), rv(&back));
}

#[test]
fn store_journal_replays_changes_and_ignores_a_torn_last_record() {
    let tmp = crate::testutil::TempDir::new("store-journal");
    let dir = tmp.0.clone();
    let s = super::store::Store::open(Some(&dir)).unwrap();
    let cm = |name: &str, v: u32| json!({"metadata": {"name": name, "namespace": "default"}, "data": {"k": v.to_string()}});
    s.create("configmaps", cm("a", 0)).unwrap();
    s.create("configmaps", cm("gone", 0)).unwrap();
    // More changes than the journal keeps before it is folded into a snapshot.
    let mut last = json!(null);
    for i in 1..1500 {
        last = s.update("configmaps", cm("a", i), None).unwrap();
    }
    s.delete("configmaps", "default", "gone").unwrap();
    let rv = s.resource_version();
    drop(s);
    let log = std::fs::read_to_string(dir.join("state.log")).unwrap();
    assert!(log.lines().count() < 1500, "the journal was never folded");
    // A record cut short by a kill while appending.
    std::fs::write(
        dir.join("state.log"),
        format!("{log}{{\"rv\": 99999, \"kind\": \"MOD"),
    )
    .unwrap();
    let s = super::store::Store::open(Some(&dir)).unwrap();
    assert_eq!(s.get("configmaps", "default", "a").unwrap(), last);
    assert!(s.get("configmaps", "default", "gone").is_none());
    assert_eq!(s.resource_version(), rv);
    assert!(!dir.join("state.log").exists(), "folded at start");
}
