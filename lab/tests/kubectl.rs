//! The real kubectl against the kube-apiserver stand-in, run as its own process: discovery,
//! RBAC for anonymous and token users, bootstrap-token authentication and CSRs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;
use serde_json::{json, Value};

use crate::support::{b64, csr_pem, new_key_pem, standin, Ca, TempDir, APISERVER_STATE_ENV};

/// A kube-apiserver stand-in running as its own process (the crate's stand-in binary under
/// the name `kube-apiserver`), with a fresh CA and state directory; killed on drop.
struct Apiserver {
    dir: TempDir,
    url: String,
    ca: Ca,
    child: Child,
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Apiserver {
    fn start(extra: &[&str]) -> Apiserver {
        let dir = TempDir::new("kubectl");
        let ca = Ca::generate("kubernetes");
        let server = ca.issue(
            "kube-apiserver",
            &[],
            &["localhost", "kubernetes", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let w = |n: &str, c: &str| {
            let p = dir.0.join(n);
            std::fs::write(&p, c).unwrap();
            p.display().to_string()
        };
        let ca_f = w("ca.crt", &ca.cert_pem);
        let crt = w("apiserver.crt", &server.0);
        let key = w("apiserver.key", &server.1);
        let sa = w("sa.key", &new_key_pem());
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
        let child = standin("kube-apiserver", &dir.0)
            .args(&args)
            .env(APISERVER_STATE_ENV, dir.0.join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("kube-apiserver.log")).unwrap())
            .spawn()
            .expect("starting the kube-apiserver stand-in");
        let mut apiserver = Apiserver {
            dir,
            url: format!("https://127.0.0.1:{port}"),
            ca,
            child,
        };
        // Readiness is the port answering, not a time: a stand-in that exits fails the test.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = apiserver.child.try_wait().unwrap() {
                panic!(
                    "the stand-in exited with {status}: {}",
                    std::fs::read_to_string(apiserver.dir.0.join("kube-apiserver.log"))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let admin = apiserver.ca.issue(
            "kubernetes-admin",
            &["system:masters"],
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        apiserver.kubeconfig(
            "admin",
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(&admin.0),
                b64(&admin.1)
            ),
        );
        // kubectl prompts for a password when a kubeconfig has no credentials at all; a basic-auth
        // username is no credential to kube-apiserver (only Bearer tokens are), so it is anonymous.
        apiserver.kubeconfig("anonymous", "    username: anonymous\n");
        apiserver
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
        let p = self.dir.0.join(format!("{name}.kubeconfig"));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.0.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    /// Run the real kubectl as `who` (a kubeconfig name): (exit code, stdout, stderr).
    fn kubectl(&self, who: &str, args: &[&str]) -> (i32, String, String) {
        let kc = self.dir.0.join(format!("{who}.kubeconfig"));
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new("/usr/bin/kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.0.join("cache").display()
            ))
            .args(args)
            .env("HOME", &self.dir.0)
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
    let lab = Apiserver::start(&["--enable-bootstrap-token-auth=true"]);

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
            lab.dir.0.join("admin.kubeconfig").display()
        ))
        .arg(format!("--cache-dir={}", lab.dir.0.join("cache").display()))
        .args(["get", "configmaps", "-n", "default", "-w", "-o", "name"])
        .env("HOME", &lab.dir.0)
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
    let csr_pem = csr_pem("system:node:worker-01", "system:nodes");
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
