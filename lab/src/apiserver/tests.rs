//! Tests of the kube-apiserver stand-in: authenticator and RBAC tables, store persistence, and
//! one integration test that drives the machine's real kubectl against a running stand-in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::authn::{self, User};
use super::authz::{self, Attrs, Decision, RbacData};
use crate::pki::{Ca, CertSpec};

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
            attrs("get", c, "certificatesigningrequests", "", "theirs", ""),
            false,
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
    let dir = temp_dir("store");
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

// ---------------------------------------------------------------------------------------------
// Integration: the real kubectl against a running stand-in.

fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "bootstrapctl-apiserver-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Lab {
    dir: PathBuf,
    url: String,
    ca: Ca,
}

impl Lab {
    fn start(extra: &[&str]) -> Lab {
        let dir = temp_dir("kubectl");
        let ca = Ca::generate("kubernetes").unwrap();
        let server = ca
            .issue(&CertSpec {
                common_name: "kube-apiserver".into(),
                organizations: vec![],
                dns_names: vec!["localhost".into(), "kubernetes".into()],
                ip_addresses: vec!["127.0.0.1".parse().unwrap()],
                server: true,
                client: false,
                validity: Duration::from_secs(3600),
            })
            .unwrap();
        let w = |n: &str, c: &str| {
            let p = dir.join(n);
            std::fs::write(&p, c).unwrap();
            p.display().to_string()
        };
        let ca_f = w("ca.crt", &ca.cert_pem);
        let crt = w("apiserver.crt", &server.cert_pem);
        let key = w("apiserver.key", &server.key_pem);
        let sa = w("sa.key", &crate::pki::new_key_pem().unwrap());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = [
            "--advertise-address=127.0.0.1",
            "--bind-address",
            "127.0.0.1",
            &format!("--secure-port={port}"),
            "--tls-cert-file",
            &crt,
            &format!("--tls-private-key-file={key}"),
            &format!("--client-ca-file={ca_f}"),
            "--authorization-mode=Node,RBAC",
            "--etcd-servers=https://127.0.0.1:2379",
            "--service-account-issuer=https://kubernetes.default.svc",
            &format!("--service-account-signing-key-file={sa}"),
            &format!("--service-account-key-file={sa}"),
            "--service-cluster-ip-range=10.96.0.0/12",
            "--allow-privileged=true",
            "--v=4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let state = dir.join("state");
        std::thread::spawn(move || super::run(&args, state));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the stand-in did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let lab = Lab {
            dir,
            url: format!("https://127.0.0.1:{port}"),
            ca,
        };
        let admin = lab
            .ca
            .issue(&CertSpec {
                common_name: "kubernetes-admin".into(),
                organizations: vec!["system:masters".into()],
                dns_names: vec![],
                ip_addresses: vec![],
                server: false,
                client: true,
                validity: Duration::from_secs(3600),
            })
            .unwrap();
        lab.kubeconfig(
            "admin",
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(&admin.cert_pem),
                b64(&admin.key_pem)
            ),
        );
        // kubectl prompts for a password when a kubeconfig has no credentials at all; a basic-auth
        // username is no credential to kube-apiserver (only Bearer tokens are), so it is anonymous.
        lab.kubeconfig("anonymous", "    username: anonymous\n");
        lab
    }

    fn kubeconfig(&self, name: &str, user_fields: &str) -> PathBuf {
        let user = if user_fields.trim() == "{}" {
            "  user: {}\n".to_string()
        } else {
            format!("  user:\n{user_fields}")
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: lab\n    user: {name}\ncurrent-context: {name}\nusers:\n- name: {name}\n{user}",
            self.url,
            b64(&self.ca.cert_pem)
        );
        let p = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    /// Run the real kubectl as `who` (a kubeconfig name): (exit code, stdout, stderr).
    fn kubectl(&self, who: &str, args: &[&str]) -> (i32, String, String) {
        let kc = self.dir.join(format!("{who}.kubeconfig"));
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("/usr/bin/kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .arg(format!("--cache-dir={}", self.dir.join("cache").display()))
            .args(args)
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running /usr/bin/kubectl");
        // A kubeconfig without credentials makes kubectl prompt for a basic-auth username and
        // password; empty answers leave the request without credentials (anonymous).
        let _ = child.stdin.take().map(|mut s| s.write_all(b"\n\n"));
        let out = child.wait_with_output().expect("waiting for kubectl");
        let r = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        eprintln!(
            "$ kubectl [{who}] {}\n-> {} {}{}",
            args.join(" "),
            r.0,
            r.1,
            r.2
        );
        r
    }

    fn ok(&self, who: &str, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(who, args);
        assert_eq!(code, 0, "kubectl {args:?} failed: {out}{err}");
        out
    }

    fn fails(&self, who: &str, args: &[&str], stderr_has: &str) {
        let (code, out, err) = self.kubectl(who, args);
        assert_eq!(code, 1, "kubectl {args:?} should fail: {out}{err}");
        assert!(
            err.contains(stderr_has),
            "kubectl {args:?}: want {stderr_has:?} in stderr, got {err:?}"
        );
    }
}

fn kubectl_available() -> bool {
    Path::new("/usr/bin/kubectl").exists()
}

#[test]
fn real_kubectl_against_the_stand_in() {
    if !kubectl_available() {
        eprintln!("skipped: /usr/bin/kubectl is not installed");
        return;
    }
    let lab = Lab::start(&["--enable-bootstrap-token-auth=true"]);

    // Discovery, table printing.
    let out = lab.ok("admin", &["get", "ns"]);
    assert!(out.starts_with("NAME"), "{out}");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} in {out}"
        );
    }
    assert!(lab
        .ok("admin", &["version"])
        .contains("Server Version: v1.32.0-bootstrapctl-lab-standin"));

    // Secrets: create, get -o json, validation, duplicates.
    assert_eq!(
        lab.ok(
            "admin",
            &["create", "secret", "generic", "s1", "--from-literal=a=b"]
        ),
        "secret/s1 created\n"
    );
    let s1: Value =
        serde_json::from_str(&lab.ok("admin", &["get", "secret", "s1", "-o", "json"])).unwrap();
    assert_eq!(s1["data"]["a"], json!(b64("b")));
    assert_eq!(s1["type"], "Opaque");
    assert_eq!(s1["metadata"]["namespace"], "default");
    assert!(s1["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(
        s1["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    lab.fails(
        "admin",
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
        "error: failed to create secret secrets \"s1\" already exists",
    );
    lab.fails("admin", &["create", "secret", "generic", "Bad_Name", "--from-literal=a=b"],
        "Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of");
    lab.fails(
        "admin",
        &["create", "configmap", "x", "-n", "nope"],
        "namespaces \"nope\" not found",
    );

    // Server-side apply of a ClusterRoleBinding.
    let crb = lab.file("crb.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: test-crb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:node-bootstrapper\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: test-group\n");
    assert_eq!(
        lab.ok("admin", &["apply", "--server-side", "-f", &crb]),
        "clusterrolebinding.rbac.authorization.k8s.io/test-crb serverside-applied\n"
    );
    assert_eq!(
        lab.ok("admin", &["apply", "--server-side", "-f", &crb]),
        "clusterrolebinding.rbac.authorization.k8s.io/test-crb serverside-applied\n"
    );
    let got: Value = serde_json::from_str(&lab.ok(
        "admin",
        &[
            "get",
            "clusterrolebinding",
            "test-crb",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    ))
    .unwrap();
    assert_eq!(got["subjects"][0]["name"], "test-group");
    assert!(
        got["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"),
        "{got}"
    );

    // Client-side apply, replace, conflicts, delete.
    let cm = |v: &str, extra: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  namespace: default\n{extra}data:\n  key: {v}\n")
    };
    let f1 = lab.file("cm1.yaml", &cm("one", ""));
    assert_eq!(
        lab.ok("admin", &["apply", "-f", &f1]),
        "configmap/cm1 created\n"
    );
    assert_eq!(
        lab.ok("admin", &["apply", "-f", &f1]),
        "configmap/cm1 unchanged\n"
    );
    let f2 = lab.file("cm2.yaml", &cm("two", ""));
    assert_eq!(
        lab.ok("admin", &["apply", "-f", &f2]),
        "configmap/cm1 configured\n"
    );
    assert_eq!(
        lab.ok("admin", &["get", "cm", "cm1", "-o", "jsonpath={.data.key}"]),
        "two"
    );
    let f3 = lab.file("cm3.yaml", &cm("three", ""));
    assert_eq!(
        lab.ok("admin", &["replace", "-f", &f3]),
        "configmap/cm1 replaced\n"
    );
    assert_eq!(
        lab.ok("admin", &["get", "cm", "cm1", "-o", "jsonpath={.data.key}"]),
        "three"
    );
    let stale = lab.file("cm4.yaml", &cm("four", "  resourceVersion: \"1\"\n"));
    lab.fails("admin", &["replace", "-f", &stale], "Operation cannot be fulfilled on configmaps \"cm1\": the object has been modified; please apply your changes to the latest version and try again");
    assert_eq!(
        lab.ok("admin", &["delete", "configmap", "cm1"]),
        "configmap \"cm1\" deleted\n"
    );
    lab.fails(
        "admin",
        &["get", "configmap", "cm1"],
        "Error from server (NotFound): configmaps \"cm1\" not found",
    );
    assert_eq!(
        lab.ok(
            "admin",
            &["auth", "can-i", "create", "certificatesigningrequests"]
        ),
        "yes\n"
    );

    // Watch: `kubectl get -w` sees an object created while it watches.
    let mut watch = Command::new("/usr/bin/kubectl")
        .arg(format!(
            "--kubeconfig={}",
            lab.dir.join("admin.kubeconfig").display()
        ))
        .arg(format!("--cache-dir={}", lab.dir.join("cache").display()))
        .args(["get", "configmaps", "-n", "default", "-w", "-o", "name"])
        .env("HOME", &lab.dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    lab.ok(
        "admin",
        &["create", "configmap", "watched", "--from-literal=a=b"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configmap/watched"),
        "watch output: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Anonymous: cluster-info readable only through a Role with resourceNames.
    lab.ok(
        "admin",
        &[
            "create",
            "configmap",
            "cluster-info",
            "-n",
            "kube-public",
            "--from-literal=kubeconfig=x",
        ],
    );
    let anon_get = [
        "get",
        "configmap",
        "cluster-info",
        "-n",
        "kube-public",
        "-o",
        "name",
    ];
    lab.fails("anonymous", &anon_get, "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\"");
    let role = lab.file("role.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: kubeadm:bootstrap-signer-clusterinfo\n  namespace: kube-public\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  resourceNames: [cluster-info]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: kubeadm:bootstrap-signer-clusterinfo\n  namespace: kube-public\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: kubeadm:bootstrap-signer-clusterinfo\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: system:anonymous\n");
    lab.ok("admin", &["apply", "-f", &role]);
    assert_eq!(lab.ok("anonymous", &anon_get), "configmap/cluster-info\n");
    lab.fails("anonymous", &["get", "configmaps", "-n", "kube-public"], "configmaps is forbidden: User \"system:anonymous\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"kube-public\"");

    // Bootstrap token: CSR creation only once system:node-bootstrapper is bound.
    let token_secret = lab.file("token.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-07401b\n  namespace: kube-system\ntype: bootstrap.kubernetes.io/token\nstringData:\n  token-id: 07401b\n  token-secret: f395accd246ae52d\n  usage-bootstrap-authentication: \"true\"\n  auth-extra-groups: system:bootstrappers:worker\n");
    lab.ok("admin", &["create", "-f", &token_secret]);
    lab.kubeconfig("token", "    token: 07401b.f395accd246ae52d\n");
    lab.kubeconfig("badtoken", "    token: 07401b.f395accd246ae52e\n");
    lab.fails(
        "badtoken",
        &["get", "csr"],
        "error: You must be logged in to the server (Unauthorized)",
    );
    let key = crate::pki::new_key_pem().unwrap();
    let csr_pem =
        crate::pki::csr_pem(&key, "system:node:worker-01", &["system:nodes".into()]).unwrap();
    let csr = lab.file("csr.yaml", &format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: node-csr-1\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, client auth]\n  username: someone-else\n", b64(&csr_pem)));
    lab.fails("token", &["create", "-f", &csr], "certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:bootstrap:07401b\" cannot create resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\" at the cluster scope");
    lab.ok(
        "admin",
        &[
            "create",
            "clusterrolebinding",
            "create-csrs-for-bootstrapping",
            "--clusterrole=system:node-bootstrapper",
            "--group=system:bootstrappers",
        ],
    );
    assert_eq!(
        lab.ok("token", &["create", "-f", &csr]),
        "certificatesigningrequest.certificates.k8s.io/node-csr-1 created\n"
    );
    let got: Value =
        serde_json::from_str(&lab.ok("admin", &["get", "csr", "node-csr-1", "-o", "json"]))
            .unwrap();
    assert_eq!(got["spec"]["username"], "system:bootstrap:07401b");
    assert_eq!(
        got["spec"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:worker",
            "system:authenticated"
        ])
    );
    let bad_csr = lab.file("badcsr.yaml", "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: node-csr-2\nspec:\n  request: aGVsbG8=\n  usages: [client auth]\n");
    lab.fails(
        "admin",
        &["create", "-f", &bad_csr],
        "spec.signerName: Required value",
    );
    let out = lab.ok("admin", &["get", "csr"]);
    assert!(
        out.lines().any(|l| l.starts_with("node-csr-1")
            && l.contains("system:bootstrap:07401b")
            && l.ends_with("Pending")),
        "{out}"
    );
    assert_eq!(
        lab.ok("admin", &["certificate", "approve", "node-csr-1"]),
        "certificatesigningrequest.certificates.k8s.io/node-csr-1 approved\n"
    );
    let out = lab.ok("admin", &["get", "csr", "node-csr-1"]);
    assert!(out.contains("Approved"), "{out}");
}
