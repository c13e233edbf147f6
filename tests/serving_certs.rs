//! Kubelet serving certificates on the lab: the kubelet stand-in files a kubelet-serving CSR
//! (serverTLSBootstrap in the shipped KubeletConfiguration), the controller-manager stand-in
//! leaves it Pending, and the site apply approves exactly each joined node's own, which is
//! then signed and lands in the worker's cert dir. Forged CSRs created through the API stay
//! Pending with their reason in every run's report, a joined node's renewal CSR is approved
//! by the next run (a change of that node alone), and a re-run changes nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{changed_tasks, json, run, tempdir, Lab};

const SERVING: &str = "kubernetes.io/kubelet-serving";

fn apply(lab: &Lab, report: &std::path::Path) -> crate::support::Run {
    run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "--output",
        "json",
        &report.display().to_string(),
    ])
}

fn csrs(lab: &Lab) -> Vec<Value> {
    let v: Value = serde_json::from_str(&lab.kubectl("get csr -o json")).unwrap();
    v["items"].as_array().unwrap().clone()
}

fn approved_and_issued(c: &Value) -> bool {
    c["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|k| k["type"] == "Approved" && k["status"] == "True")
        && c["status"]["certificate"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
}

fn approval_reasons(c: &Value) -> Vec<String> {
    c["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["type"] == "Approved")
        .map(|k| k["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A PEM CSR from openssl with the given subject and subjectAltName list, base64 for spec.request.
fn openssl_csr(subject: &str, sans: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            subject,
            "-addext",
            &format!("subjectAltName={sans}"),
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// Create a serving CSR on `host` with its kubelet's own credentials (as that node).
fn create_as_node(lab: &Lab, host: &str, name: &str, request: &str) {
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {SERVING}\n  usages: [digital signature, key encipherment, server auth]\n  request: {request}\n"
    );
    lab.ssh(
        host,
        &format!(
            "kubectl --kubeconfig /var/lib/kubelet/kubeconfig create -f - <<'EOF'\n{manifest}EOF"
        ),
    );
}

fn message(report: &Value, host: &str, task: &str) -> String {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host && r["task"] == task)
        .unwrap_or_else(|| panic!("no result for {host} / {task}"))["msg"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn site_apply_approves_each_nodes_serving_csr_and_no_forged_one() {
    let Some(lab) = Lab::cluster("serving", 2) else {
        return;
    };
    let out = tempdir("serving");
    let first = apply(&lab, &out.join("1.json"));
    assert_eq!(first.code, 0, "{}", first.all());
    let (_, addr1) = lab.hosts.iter().find(|(n, _)| n == "worker-01").unwrap();
    for node in ["worker-01", "worker-02"] {
        let user = format!("system:node:{node}");
        let all = csrs(&lab);
        let serving: Vec<&Value> = all
            .iter()
            .filter(|c| {
                c["spec"]["signerName"] == SERVING && c["spec"]["username"] == user.as_str()
            })
            .collect();
        assert_eq!(serving.len(), 1, "{node}: {}", lab.kubectl("get csr"));
        assert!(
            approved_and_issued(serving[0]),
            "{}",
            lab.kubectl("get csr")
        );
        // Approved by bootstrapctl itself, through the control plane's SSH session to the API.
        assert_eq!(
            approval_reasons(serving[0]),
            ["BootstrapctlApprove"],
            "{node}"
        );
        // The kubelet stores the issued certificate beside its client one; it polls its CSR,
        // so give it a moment after the API shows the certificate.
        let end = Instant::now() + Duration::from_secs(30);
        let path = "/var/lib/kubelet/pki/kubelet-server-current.pem";
        let found = loop {
            let t = lab.ssh(node, &format!("test -s {path} && echo yes || echo no"));
            if t.trim() == "yes" || Instant::now() > end {
                break t.trim() == "yes";
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(found, "{node}: no {path}");
        let subject = lab.ssh(
            node,
            &format!("openssl x509 -in {path} -noout -subject -ext subjectAltName"),
        );
        assert!(
            subject.contains(&format!("CN = system:node:{node}")),
            "{subject}"
        );
        assert!(subject.contains(&format!("DNS:{node}")), "{subject}");
        if node == "worker-01" {
            assert!(
                subject.contains(&format!("IP Address:{addr1}")),
                "{subject}"
            );
            // Its port is served with it: verified against the cluster CA, by name and by IP.
            let ca = lab.dir.join("ca.crt");
            for (url, resolve) in [
                (
                    format!("https://{node}:10250/healthz"),
                    format!("{node}:10250:{addr1}"),
                ),
                (
                    format!("https://{addr1}:10250/healthz"),
                    format!("{addr1}:10250:{addr1}"),
                ),
            ] {
                // The kubelet listens right after storing the certificate: allow it that moment.
                let end = Instant::now() + Duration::from_secs(30);
                let out = loop {
                    let out = Command::new("curl")
                        .args(["-sS", "--cacert"])
                        .arg(&ca)
                        .args(["--resolve", &resolve, &url])
                        .output()
                        .expect("curl");
                    if out.status.success() || Instant::now() > end {
                        break out;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                };
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "ok",
                    "{url}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let after_first = lab.kubectl("get csr");
    eprintln!("kubectl get csr after the first apply:\n{after_first}");
    assert_eq!(
        after_first.matches("Approved,Issued").count(),
        4,
        "{after_first}"
    );

    // Forged: worker-02 asks for worker-01's name; worker-02 asks for an address not its own.
    let request = openssl_csr("/O=system:nodes/CN=system:node:worker-01", "DNS:worker-01");
    create_as_node(&lab, "worker-02", "forged-other-node", &request);
    let request = openssl_csr(
        "/O=system:nodes/CN=system:node:worker-02",
        "DNS:worker-02,IP:10.9.9.9",
    );
    create_as_node(&lab, "worker-02", "forged-extra-san", &request);

    // A joined worker is left alone, so its CSRs are looked at again when it must join again:
    // both lose their client certificate, and the run that joins them again weighs the forged
    // requests beside their own.
    for node in ["worker-01", "worker-02"] {
        lab.ssh(
            node,
            "rm -f /var/lib/kubelet/pki/kubelet-client-current.pem",
        );
    }
    let second = apply(&lab, &out.join("2.json"));
    assert_eq!(second.code, 0, "{}", second.all());
    let report = json(&out.join("2.json"));
    let m1 = message(&report, "worker-01", "serving certificate approved");
    assert!(
        m1.contains("forged-other-node left Pending: requested by \"system:node:worker-02\", not by the node (system:node:worker-01)"),
        "{m1}"
    );
    let m2 = message(&report, "worker-02", "serving certificate approved");
    assert!(
        m2.contains("forged-extra-san left Pending: IP subjectAltName 10.9.9.9 is not an address of the node"),
        "{m2}"
    );
    assert!(
        m2.contains("forged-other-node left Pending: subject CN is \"system:node:worker-01\", not \"system:node:worker-02\""),
        "{m2}"
    );
    let third = apply(&lab, &out.join("3.json"));
    assert_eq!(third.code, 0, "{}", third.all());
    let report = json(&out.join("3.json"));
    assert!(
        changed_tasks(&report).is_empty(),
        "{:?}",
        changed_tasks(&report)
    );
    let listing = lab.kubectl("get csr");
    eprintln!("kubectl get csr after the third apply:\n{listing}");
    for line in listing.lines().skip(1) {
        if line.starts_with("forged-") {
            assert!(line.contains("Pending"), "{line}");
        } else {
            assert!(line.contains("Approved,Issued"), "{line}");
        }
    }

    // A renewal: a joined kubelet rotating its serving certificate files a new CSR for its own
    // name and address. The next run approves it (a change of that node alone, no waiting) and
    // still leaves the forged ones Pending; the run after changes nothing.
    let request = openssl_csr(
        "/O=system:nodes/CN=system:node:worker-01",
        &format!("DNS:worker-01,IP:{addr1}"),
    );
    create_as_node(&lab, "worker-01", "renewal-worker-01", &request);
    let fourth = apply(&lab, &out.join("4.json"));
    assert_eq!(fourth.code, 0, "{}", fourth.all());
    let report = json(&out.join("4.json"));
    assert_eq!(
        changed_tasks(&report),
        [(
            "worker-01".to_string(),
            "serving certificate approved".to_string()
        )],
        "{}",
        fourth.stdout
    );
    let renewal = csrs(&lab)
        .into_iter()
        .find(|c| c["metadata"]["name"] == "renewal-worker-01")
        .unwrap();
    assert!(
        renewal["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["type"] == "Approved"),
        "{}",
        lab.kubectl("get csr")
    );
    let m2 = message(&report, "worker-02", "serving certificate approved");
    assert!(m2.contains("forged-extra-san left Pending"), "{m2}");
    let fifth = apply(&lab, &out.join("5.json"));
    assert_eq!(fifth.code, 0, "{}", fifth.all());
    assert!(changed_tasks(&json(&out.join("5.json"))).is_empty());
}

#[test]
fn serving_certs_off_keeps_the_self_signed_pair_and_approves_nothing() {
    let Some(lab) = Lab::cluster("serving-off", 1) else {
        return;
    };
    let out = tempdir("serving-off");
    let r = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "-e",
        "kubelet_serving_certs=false",
        "--output",
        "json",
        &out.join("1.json").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let cfg = lab.ssh("worker-01", "cat /var/lib/kubelet/kubelet-config.yaml");
    assert!(cfg.contains("serverTLSBootstrap: false"), "{cfg}");
    assert!(
        csrs(&lab)
            .iter()
            .all(|c| c["spec"]["signerName"] != SERVING),
        "{}",
        lab.kubectl("get csr")
    );
    let files = lab.ssh("worker-01", "ls /var/lib/kubelet/pki");
    assert!(
        files.contains("kubelet.crt") && files.contains("kubelet.key"),
        "{files}"
    );
    assert!(!files.contains("kubelet-server-current.pem"), "{files}");
    // The port is served with the self-signed pair, which the cluster CA does not vouch for.
    let addr = &lab.hosts.iter().find(|(n, _)| n == "worker-01").unwrap().1;
    let url = format!("https://{addr}:10250/healthz");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl")
    };
    assert_eq!(String::from_utf8_lossy(&curl(&["-k"]).stdout), "ok");
    let ca = lab.dir.join("ca.crt").display().to_string();
    assert!(!curl(&["--cacert", &ca]).status.success());
    let report = json(&out.join("1.json"));
    let statuses: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["task"]
                .as_str()
                .is_some_and(|t| t.starts_with("serving certificate"))
        })
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert!(statuses.iter().all(|s| s == "skipped"), "{statuses:?}");
}

#[test]
fn a_kubeconfig_only_kubectl_can_use_leaves_the_approvals_to_kubectl() {
    let Some(lab) = Lab::cluster("serving-kubectl", 1) else {
        return;
    };
    // The admin kubeconfig without its CA and with verification off: kubectl still reaches
    // the API with it; bootstrapctl does not talk to a server it cannot verify.
    let insecure = "/etc/kubernetes/admin-insecure.kubeconfig";
    lab.ssh(
        "cp-1",
        &format!(
            "sed -e '/certificate-authority-data:/d' -e 's/^\\( *\\)server:/\\1insecure-skip-tls-verify: true\\n\\1server:/' /etc/kubernetes/admin.kubeconfig > {insecure} && chmod 600 {insecure}"
        ),
    );
    let out = tempdir("serving-kubectl");
    let report = out.join("1.json");
    let first = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        "-e",
        &format!("admin_kubeconfig={insecure}"),
        "-vvv",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(
        first
            .all()
            .contains("approvals left to kubectl: /etc/kubernetes/admin-insecure.kubeconfig: the cluster sets insecure-skip-tls-verify"),
        "{}",
        first.all()
    );
    let serving: Vec<Value> = csrs(&lab)
        .into_iter()
        .filter(|c| c["spec"]["signerName"] == SERVING)
        .collect();
    assert_eq!(serving.len(), 1, "{}", lab.kubectl("get csr"));
    assert!(
        approved_and_issued(&serving[0]),
        "{}",
        lab.kubectl("get csr")
    );
    assert_eq!(approval_reasons(&serving[0]), ["KubectlApprove"]);
}

#[test]
fn an_approval_the_api_refuses_fails_the_task_with_its_message_and_leaves_the_csr_pending() {
    let Some(lab) = Lab::cluster("serving-refused", 1) else {
        return;
    };
    let out = tempdir("serving-refused");
    let first = apply(&lab, &out.join("1.json"));
    assert_eq!(first.code, 0, "{}", first.all());

    // A user who may read CSRs and write their approval subresource, but may not approve for
    // the kubelet-serving signer: its kubeconfig names its certificate and key as files.
    lab.ssh(
        "cp-1",
        "cd /etc/kubernetes && \
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout reader.key -subj /CN=csr-reader -out reader.csr 2>/dev/null && \
         printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\nextendedKeyUsage=clientAuth\\n' > reader.ext && \
         openssl x509 -req -in reader.csr -CA pki/ca.crt -CAkey pki/ca.key -set_serial 4242 -days 1 -extfile reader.ext -out reader.crt 2>/dev/null && \
         k='kubectl config --kubeconfig reader.kubeconfig' && \
         $k set-cluster k --server=\"$(sed -n 's/^ *server: //p' admin.kubeconfig)\" --certificate-authority=/etc/kubernetes/pki/ca.crt --embed-certs=true >/dev/null && \
         $k set-credentials r --client-certificate=/etc/kubernetes/reader.crt --client-key=/etc/kubernetes/reader.key >/dev/null && \
         $k set-context c --cluster=k --user=r >/dev/null && $k use-context c >/dev/null",
    );
    let rbac = out.join("rbac.yaml");
    std::fs::write(
        &rbac,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: csr-reader}\nrules:\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests]\n  verbs: [get, list, watch]\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests/approval]\n  verbs: [update]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: csr-reader}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-reader}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: csr-reader}\n",
    )
    .unwrap();
    lab.kubectl(&format!("apply -f {}", rbac.display()));

    let (_, addr) = lab.hosts.iter().find(|(n, _)| n == "worker-01").unwrap();
    let request = openssl_csr(
        "/O=system:nodes/CN=system:node:worker-01",
        &format!("DNS:worker-01,IP:{addr}"),
    );
    create_as_node(&lab, "worker-01", "renewal-refused", &request);
    let playbook = out.join("approve.yaml");
    std::fs::write(
        &playbook,
        format!(
            "- hosts: worker-01\n  gather_facts: false\n  tasks:\n    - name: serving certificate approved\n      kube_csr_approve:\n        node: worker-01\n        addresses: [worker-01, '{addr}']\n        kubeconfig: /etc/kubernetes/reader.kubeconfig\n      delegate_to: cp-1\n"
        ),
    )
    .unwrap();
    let refused = run([
        "apply",
        "-i",
        &lab.inventory().display().to_string(),
        &playbook.display().to_string(),
    ]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    let all = refused.all();
    eprintln!("the refused run:\n{all}");
    assert!(
        all.contains("failed: [worker-01] serving certificate approved: approving CertificateSigningRequest renewal-refused through the API: 403: "),
        "{all}"
    );
    assert!(all.contains("kubernetes.io/kubelet-serving"), "{all}");
    let renewal = csrs(&lab)
        .into_iter()
        .find(|c| c["metadata"]["name"] == "renewal-refused")
        .unwrap();
    assert!(approval_reasons(&renewal).is_empty(), "{renewal}");
}
