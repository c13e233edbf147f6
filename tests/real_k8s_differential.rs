//! The differential table: the lab's stand-ins against the real components (v1.20.2), case by
//! case on the same inputs. Two control planes side by side, both configured by the shipped
//! site playbook: a stand-in lab and a `--real-components` lab. Each case runs the same real
//! `kubectl` commands against both and records the outcome; the table is printed, and every row
//! must agree or name the version difference (1.20 against the current release the stand-ins
//! follow) that explains it. Runs only with `BSCTL_REAL_K8S` (see `real_k8s`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::real_k8s::{real_cache, real_lab};
use crate::support::{run, tempdir, Lab};

/// Rows whose outcomes differ for a version reason, with the reason.
const VERSION_DIFFERENCES: &[(&str, &str)] = &[(
    "csr: client CSR without key encipherment (ECDSA), all bindings",
    "1.20's csrapproving wants usages exactly {digital signature, key encipherment, client auth}; current releases also take {digital signature, client auth}, which current kubelets send for ECDSA keys",
)];

const SECRET: &str = "0123456789abcdef";

struct Side {
    name: &'static str,
    lab: Lab,
    dir: PathBuf,
}

fn out_of(o: std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text.trim().to_string())
}

impl Side {
    fn admin(&self) -> PathBuf {
        self.lab.dir.join("admin.kubeconfig")
    }
    fn kc(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        self.kc_with(&self.admin(), args, stdin)
    }
    fn kc_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(kubeconfig).args(args);
        if let Some(input) = stdin {
            use std::io::Write;
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().expect("kubectl");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            return out_of(child.wait_with_output().unwrap());
        }
        out_of(c.output().expect("kubectl"))
    }
    fn server(&self) -> String {
        let text = std::fs::read_to_string(self.admin()).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .trim()
            .to_string()
    }
    /// A kubeconfig for bearer token `token`.
    fn token_kubeconfig(&self, tag: &str, token: &str) -> PathBuf {
        let p = self.dir.join(format!("{tag}.kubeconfig"));
        let ca = self.lab.dir.join("ca.crt");
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n",
                self.server(),
                ca.display()
            ),
        )
        .unwrap();
        p
    }
}

/// One bootstrap token Secret of the token table.
struct TokenCase {
    name: &'static str,
    id: &'static str,
    /// YAML of the Secret with `{id}` filled in.
    secret: String,
    /// The token presented (defaults to id.SECRET).
    presented: Option<String>,
}

fn secret_yaml(
    id: &str,
    name: &str,
    ns: &str,
    ty: &str,
    expiration: Option<&str>,
    auth: Option<&str>,
    groups: &str,
) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: {ty}\nstringData:\n  token-id: \"{id}\"\n  token-secret: \"{SECRET}\"\n  usage-bootstrap-signing: \"true\"\n  auth-extra-groups: \"{groups}\"\n"
    );
    if let Some(e) = expiration {
        s.push_str(&format!("  expiration: \"{e}\"\n"));
    }
    if let Some(a) = auth {
        s.push_str(&format!("  usage-bootstrap-authentication: \"{a}\"\n"));
    }
    s
}

fn rfc3339(offset_secs: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{offset_secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn token_cases() -> Vec<TokenCase> {
    let later = rfc3339(3600);
    let past = rfc3339(-3600);
    let g = "system:bootstrappers:diff";
    let bt = "bootstrap.kubernetes.io/token";
    let std = |id: &'static str| format!("bootstrap-token-{id}");
    let case = |name, id: &'static str, secret: String| TokenCase {
        name,
        id,
        secret,
        presented: None,
    };
    vec![
        case(
            "token: valid",
            "diff01",
            secret_yaml(
                "diff01",
                &std("diff01"),
                "kube-system",
                bt,
                Some(&later),
                Some("true"),
                g,
            ),
        ),
        case(
            "token: expired",
            "diff02",
            secret_yaml(
                "diff02",
                &std("diff02"),
                "kube-system",
                bt,
                Some(&past),
                Some("true"),
                g,
            ),
        ),
        case(
            "token: no usage-bootstrap-authentication",
            "diff03",
            secret_yaml(
                "diff03",
                &std("diff03"),
                "kube-system",
                bt,
                Some(&later),
                None,
                g,
            ),
        ),
        case(
            "token: usage-bootstrap-authentication false",
            "diff04",
            secret_yaml(
                "diff04",
                &std("diff04"),
                "kube-system",
                bt,
                Some(&later),
                Some("false"),
                g,
            ),
        ),
        case(
            "token: extra group system:nodes (not system:bootstrappers:*)",
            "diff05",
            secret_yaml(
                "diff05",
                &std("diff05"),
                "kube-system",
                bt,
                Some(&later),
                Some("true"),
                "system:nodes",
            ),
        ),
        case(
            "token: Secret type Opaque",
            "diff06",
            secret_yaml(
                "diff06",
                &std("diff06"),
                "kube-system",
                "Opaque",
                Some(&later),
                Some("true"),
                g,
            ),
        ),
        case(
            "token: Secret in namespace default",
            "diff07",
            secret_yaml(
                "diff07",
                &std("diff07"),
                "default",
                bt,
                Some(&later),
                Some("true"),
                g,
            ),
        ),
        TokenCase {
            name: "token: wrong secret presented",
            id: "diff08",
            secret: secret_yaml(
                "diff08",
                &std("diff08"),
                "kube-system",
                bt,
                Some(&later),
                Some("true"),
                g,
            ),
            presented: Some("diff08.fedcba9876543210".into()),
        },
        case(
            "token: Secret name not bootstrap-token-<id>",
            "diff09",
            secret_yaml(
                "diff09",
                "bootstrap-token-other9",
                "kube-system",
                bt,
                Some(&later),
                Some("true"),
                g,
            ),
        ),
        case(
            "token: malformed expiration",
            "diff10",
            secret_yaml(
                "diff10",
                &std("diff10"),
                "kube-system",
                bt,
                Some("tomorrow"),
                Some("true"),
                g,
            ),
        ),
        case(
            "token: extra group system:bootstrappers: (empty suffix)",
            "diff11",
            secret_yaml(
                "diff11",
                &std("diff11"),
                "kube-system",
                bt,
                Some(&later),
                Some("true"),
                "system:bootstrappers:",
            ),
        ),
        case(
            "token: no expiration",
            "diff12",
            secret_yaml(
                "diff12",
                &std("diff12"),
                "kube-system",
                bt,
                None,
                Some("true"),
                g,
            ),
        ),
    ]
}

/// `kubectl auth can-i` outcome: yes, no or the HTTP refusal.
fn can_i(r: (bool, String)) -> String {
    let (_, text) = r;
    if text.contains("Unauthorized") {
        "401 Unauthorized".into()
    } else if text.contains("(Forbidden)") {
        "403 Forbidden (no SelfSubjectAccessReview)".into()
    } else if text.starts_with("yes") {
        "yes".into()
    } else if text.starts_with("no") {
        "no".into()
    } else {
        format!("error: {}", text.lines().last().unwrap_or(""))
    }
}

/// Polls `f` until it returns Some, up to `secs`; None after.
fn poll<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// base64url without padding, through the `basenc` of coreutils.
fn b64url(data: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("basenc")
        .args(["--base64url", "-w0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('=')
        .to_string()
}

fn hmac_sha256(key: &str, data: &str) -> Vec<u8> {
    use std::io::Write;
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data.as_bytes()).unwrap();
    c.wait_with_output().unwrap().stdout
}

/// The detached JWS of cluster-info for `id`: absent, valid for the token, or invalid.
fn jws_state(cm: &serde_json::Value, id: &str) -> String {
    let Some(jws) = cm["data"][format!("jws-kubeconfig-{id}")].as_str() else {
        return "no JWS".into();
    };
    let kubeconfig = cm["data"]["kubeconfig"].as_str().unwrap_or("");
    let parts: Vec<&str> = jws.split('.').collect();
    if parts.len() != 3 || !parts[1].is_empty() {
        return format!("malformed JWS {jws}");
    }
    let signing_input = format!("{}.{}", parts[0], b64url(kubeconfig.as_bytes()));
    let want = b64url(&hmac_sha256(SECRET, &signing_input));
    if want == parts[2] {
        "JWS valid (HS256, token secret)".into()
    } else {
        "JWS does not verify".into()
    }
}

fn csr_yaml(name: &str, csr_pem: &str, usages: &[&str]) -> String {
    use base64::Engine as _;
    let req = base64::engine::general_purpose::STANDARD.encode(csr_pem);
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {req}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [{}]\n",
        usages.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ")
    )
}

/// A CSR PEM (ECDSA P-256) for `cn` in system:nodes; also writes its key to `key`.
fn node_csr(key: &Path, cn: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
        ])
        .arg(key)
        .args(["-subj", &format!("/O=system:nodes/CN={cn}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// State of CSR `name` after up to `secs`: Approved,Issued / Denied / Pending.
fn csr_state(side: &Side, name: &str, secs: u64) -> String {
    let read = || {
        let (ok, text) = side.kc(&["get", "csr", name, "-o", "json"], None);
        ok.then(|| serde_json::from_str::<serde_json::Value>(&text).unwrap())
    };
    let done = poll(secs, || {
        let v = read()?;
        let issued = v["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty());
        let denied = v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Denied" || c["type"] == "Failed");
        (issued || denied).then_some(v)
    });
    match done {
        Some(v)
            if v["status"]["certificate"]
                .as_str()
                .is_some_and(|c| !c.is_empty()) =>
        {
            "Approved,Issued".into()
        }
        Some(_) => "Denied/Failed".into(),
        None => format!("Pending after {secs}s"),
    }
}

const BINDINGS: &[&str] = &[
    "create-csrs-for-bootstrapping",
    "auto-approve-csrs-for-group",
    "auto-approve-renewals-for-nodes",
];

/// Every case on one side: (case, outcome), in table order.
fn run_cases(side: &Side) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let tokens = token_cases();
    for t in &tokens {
        let (ok, text) = side.kc(&["apply", "-f", "-"], Some(&t.secret));
        assert!(ok, "{}: {} {text}", side.name, t.name);
    }
    // Authentication (and RBAC for the authenticated): may the token create CSRs?
    for t in &tokens {
        let token = t.presented.clone().unwrap_or(format!("{}.{SECRET}", t.id));
        let kc = side.token_kubeconfig(t.id, &token);
        let r = side.kc_with(
            &kc,
            &["auth", "can-i", "create", "certificatesigningrequests"],
            None,
        );
        rows.push((format!("authn {}", t.name), can_i(r)));
    }
    // bootstrapsigner: cluster-info's JWS per token, once the valid one is signed.
    let cm = poll(60, || {
        let (_, text) = side.kc(
            &[
                "-n",
                "kube-public",
                "get",
                "cm",
                "cluster-info",
                "-o",
                "json",
            ],
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["data"]["jws-kubeconfig-diff01"].is_string().then_some(v)
    })
    .unwrap_or(serde_json::Value::Null);
    for t in &tokens {
        rows.push((format!("bootstrapsigner {}", t.name), jws_state(&cm, t.id)));
    }
    // tokencleaner: the expired token's Secret goes, the valid one stays.
    let gone = poll(60, || {
        let (ok, _) = side.kc(
            &[
                "-n",
                "kube-system",
                "get",
                "secret",
                "bootstrap-token-diff02",
            ],
            None,
        );
        (!ok).then_some(())
    });
    rows.push((
        "tokencleaner: expired token Secret".into(),
        if gone.is_some() {
            "deleted"
        } else {
            "kept after 60s"
        }
        .into(),
    ));
    let (kept, _) = side.kc(
        &[
            "-n",
            "kube-system",
            "get",
            "secret",
            "bootstrap-token-diff01",
        ],
        None,
    );
    rows.push((
        "tokencleaner: valid token Secret".into(),
        if kept { "kept" } else { "deleted" }.into(),
    ));
    // RBAC and Node authorization, impersonated by the admin.
    let who: &[(&str, &[&str])] = &[
        (
            "bootstrap user",
            &[
                "--as",
                "system:bootstrap:diff01",
                "--as-group",
                "system:bootstrappers",
                "--as-group",
                "system:bootstrappers:diff",
                "--as-group",
                "system:authenticated",
            ],
        ),
        (
            "node worker-x",
            &[
                "--as",
                "system:node:worker-x",
                "--as-group",
                "system:nodes",
                "--as-group",
                "system:authenticated",
            ],
        ),
        (
            "anonymous",
            &[
                "--as",
                "system:anonymous",
                "--as-group",
                "system:unauthenticated",
            ],
        ),
    ];
    let checks: &[&[&str]] = &[
        &["create", "certificatesigningrequests"],
        &["get", "certificatesigningrequests"],
        &[
            "create",
            "certificatesigningrequests.certificates.k8s.io",
            "--subresource",
            "nodeclient",
        ],
        &[
            "create",
            "certificatesigningrequests.certificates.k8s.io",
            "--subresource",
            "selfnodeclient",
        ],
        &["list", "nodes"],
        &["get", "nodes/worker-x"],
        &["-n", "kube-system", "get", "secrets"],
        &["-n", "kube-public", "get", "configmaps/cluster-info"],
    ];
    for (who_name, as_args) in who {
        for check in checks {
            let mut args = vec!["auth", "can-i"];
            args.extend_from_slice(check);
            args.extend_from_slice(as_args);
            rows.push((
                format!("rbac {who_name}: {}", check.join(" ")),
                can_i(side.kc(&args, None)),
            ));
        }
    }
    // CSR auto-approval, with all bindings and without each one. The bindings come from the
    // shipped rbac-bootstrap template; each is deleted for its case and put back after.
    let saved: Vec<String> = BINDINGS
        .iter()
        .map(|b| {
            side.kc(&["get", "clusterrolebinding", b, "-o", "yaml"], None)
                .1
        })
        .collect();
    let bootstrap_kc = side.token_kubeconfig("diff01-csr", &format!("diff01.{SECRET}"));
    let full = ["digital signature", "key encipherment", "client auth"];
    let no_ke = ["digital signature", "client auth"];
    let mut client_cert = None;
    let csr_cases: &[(&str, Option<usize>, &[&str])] = &[
        (
            "csr: client CSR by a bootstrap token, all bindings",
            None,
            &full,
        ),
        (
            "csr: client CSR without key encipherment (ECDSA), all bindings",
            None,
            &no_ke,
        ),
        ("csr: without create-csrs-for-bootstrapping", Some(0), &full),
        ("csr: without auto-approve-csrs-for-group", Some(1), &full),
    ];
    for (i, (name, without, usages)) in csr_cases.iter().enumerate() {
        if let Some(b) = without {
            side.kc(&["delete", "clusterrolebinding", BINDINGS[*b]], None);
        }
        let key = side.dir.join(format!("csr{i}.key"));
        let pem = node_csr(&key, &format!("system:node:diff-{i}"));
        let csr_name = format!("diff-csr-{i}");
        let (ok, text) = side.kc_with(
            &bootstrap_kc,
            &["create", "-f", "-"],
            Some(&csr_yaml(&csr_name, &pem, usages)),
        );
        let outcome = if !ok {
            if text.contains("Forbidden") || text.contains("forbidden") {
                "create: 403 Forbidden".to_string()
            } else {
                format!("create failed: {text}")
            }
        } else {
            csr_state(side, &csr_name, 20)
        };
        if i == 0 && outcome == "Approved,Issued" {
            let (_, cert) = side.kc(
                &[
                    "get",
                    "csr",
                    &csr_name,
                    "-o",
                    "jsonpath={.status.certificate}",
                ],
                None,
            );
            client_cert = Some((cert, key.clone(), i));
        }
        rows.push((name.to_string(), outcome));
        if let Some(b) = without {
            side.kc(&["apply", "-f", "-"], Some(&saved[*b]));
        }
    }
    // Renewal by the node itself (its client certificate from the first case), with and
    // without auto-approve-renewals-for-nodes.
    for (j, without) in [(0, false), (1, true)] {
        let name = if without {
            "csr: node renewal without auto-approve-renewals-for-nodes"
        } else {
            "csr: node renewal (selfnodeclient), all bindings"
        };
        let Some((cert, key, i)) = &client_cert else {
            rows.push((name.into(), "no client certificate to renew with".into()));
            continue;
        };
        if without {
            side.kc(&["delete", "clusterrolebinding", BINDINGS[2]], None);
        }
        use base64::Engine as _;
        let cert_pem = base64::engine::general_purpose::STANDARD
            .decode(cert.trim())
            .unwrap();
        let cert_file = side.dir.join(format!("node{j}.crt"));
        std::fs::write(&cert_file, cert_pem).unwrap();
        let node_kc = side.dir.join(format!("node{j}.kubeconfig"));
        std::fs::write(
            &node_kc,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    client-certificate: {}\n    client-key: {}\n",
                side.server(),
                side.lab.dir.join("ca.crt").display(),
                cert_file.display(),
                key.display()
            ),
        )
        .unwrap();
        let pem = node_csr(
            &side.dir.join(format!("renew{j}.key")),
            &format!("system:node:diff-{i}"),
        );
        let csr_name = format!("diff-renew-{j}");
        let (ok, text) = side.kc_with(
            &node_kc,
            &["create", "-f", "-"],
            Some(&csr_yaml(&csr_name, &pem, &full)),
        );
        let outcome = if ok {
            csr_state(side, &csr_name, 20)
        } else {
            format!("create failed: {text}")
        };
        rows.push((name.into(), outcome));
        if without {
            side.kc(&["apply", "-f", "-"], Some(&saved[2]));
        }
    }
    rows
}

fn side(name: &'static str, lab: Lab) -> Side {
    let dir = tempdir(&format!("diff-{name}"));
    // The shipped site playbook configures the control plane (bootstrap flags, RBAC,
    // cluster-info); no worker joins.
    let r = run(["apply", "-i", &lab.inventory().display().to_string()]);
    assert_eq!(r.code, 0, "{name}: {}", r.all());
    Side { name, lab, dir }
}

#[test]
fn real_k8s_stand_ins_and_real_components_agree_case_by_case() {
    let Some(cache) = real_cache("real_k8s_stand_ins_and_real_components_agree_case_by_case")
    else {
        return;
    };
    let t0 = Instant::now();
    let (standin, real) = std::thread::scope(|s| {
        let a = s.spawn(|| side("stand-in", Lab::cluster("diff-standin", 0).expect("lab")));
        let b = s.spawn(|| side("real", real_lab("diff-real", 0, &cache)));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (rows_s, rows_r) = std::thread::scope(|s| {
        let a = s.spawn(|| run_cases(&standin));
        let b = s.spawn(|| run_cases(&real));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(rows_s.len(), rows_r.len());
    let mut table =
        String::from("| case | stand-in | real v1.20.2 | |\n| --- | --- | --- | --- |\n");
    let mut unexplained = Vec::new();
    for ((case, s), (case_r, r)) in rows_s.iter().zip(&rows_r) {
        assert_eq!(case, case_r);
        let verdict = if s == r {
            "agree".to_string()
        } else if let Some((_, why)) = VERSION_DIFFERENCES.iter().find(|(c, _)| c == case) {
            format!("version difference: {why}")
        } else {
            unexplained.push(case.clone());
            "DIFFERS".to_string()
        };
        table.push_str(&format!("| {case} | {s} | {r} | {verdict} |\n"));
    }
    eprintln!(
        "differential table, stand-ins vs real components ({:.0}s):\n{table}",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        unexplained.is_empty(),
        "stand-ins differ from the real components in: {unexplained:?}\n{table}"
    );
}
