//! The kubelet's client certificate: use `--kubeconfig` when its certificate is usable, else
//! TLS-bootstrap through `--bootstrap-kubeconfig`, as upstream; and rotation through a new CSR
//! as the node. Retries stay inside the process (the real kubelet exits and systemd restarts
//! it; the lab's systemctl stand-in does not honour Restart=, so the stand-in waits and retries
//! with the same key, hence the same CSR name, every few seconds).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::super::kcm::csr::{CSRS, KUBELET_CLIENT_SIGNER};
use super::super::kube::{self, klog, Api, Kubeconfig};
use super::super::pki;
use super::super::timefmt;
use super::{current_pem, now, Settings};

pub(crate) struct NodeClient {
    pub(crate) api: kube::Client,
    pub(crate) kubeconfig: Kubeconfig,
    deadline: i64,
}

const RETRY: Duration = Duration::from_secs(3);

/// Validity window (unix seconds) of the first certificate in `pem`.
pub(crate) fn window(pem: &str) -> Option<(i64, i64)> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// 70-90% of the certificate's life, jittered as upstream's certificate manager does.
fn rotation_deadline(pem: &str) -> i64 {
    let (nb, na) = window(pem).unwrap_or((now(), now() + 3600));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.7 + 0.2 * f64::from(nanos % 1000) / 1000.0;
    nb + ((na - nb) as f64 * jitter) as i64
}

/// The kubeconfig's client certificate when it is readable and not expired.
fn usable(path: &Path) -> Result<Kubeconfig, String> {
    let kc = kube::load_kubeconfig(path)?;
    let cert = kc
        .client_cert_pem
        .as_deref()
        .ok_or("no client certificate in kubeconfig")?;
    kc.client_key_pem
        .as_deref()
        .ok_or("no client key in kubeconfig")?;
    let (_, not_after) = window(cert).ok_or("unable to parse the client certificate")?;
    if not_after <= now() {
        return Err(format!(
            "the client certificate expired at {}",
            timefmt::format(not_after)
        ));
    }
    Ok(kc)
}

pub(crate) fn client(kc: &Kubeconfig) -> Result<kube::Client, String> {
    kube::Client::new(kc, "kubelet/v1.32.0 (linux) bootstrapctl-lab-stand-in")
}

fn log_expiry(kc: &Kubeconfig, deadline: i64) {
    if let Some((_, na)) = kc.client_cert_pem.as_deref().and_then(window) {
        klog('I', "certificate_manager.go:356", &format!("\"Certificate expiration is {}, rotation deadline is {}\" logger=\"kubernetes.io/kube-apiserver-client-kubelet\"", timefmt::format(na), timefmt::format(deadline)));
    }
}

pub(crate) fn client_certificate(s: &Settings) -> Result<NodeClient, String> {
    match usable(&s.kubeconfig) {
        Ok(kc) => {
            klog(
                'I',
                "bootstrap.go:85",
                &format!(
                    "\"Kubeconfig exists and is valid, skipping bootstrap\" path=\"{}\"",
                    s.kubeconfig.display()
                ),
            );
            return finish(s, kc);
        }
        Err(e) if s.bootstrap_kubeconfig.is_some() => {
            if s.kubeconfig.exists() {
                klog(
                    'I',
                    "bootstrap.go:89",
                    &format!(
                        "\"Kubeconfig is not usable, bootstrapping\" path=\"{}\" err=\"{e}\"",
                        s.kubeconfig.display()
                    ),
                );
            }
        }
        Err(e) => {
            return Err(format!("invalid kubeconfig: {e}"));
        }
    }
    let boot_path = s.bootstrap_kubeconfig.clone().unwrap_or_default();
    klog(
        'I',
        "bootstrap.go:95",
        "\"Using bootstrap kubeconfig to generate TLS client cert, key and kubeconfig file\"",
    );
    std::fs::metadata(&boot_path).map_err(|e| {
        format!(
            "unable to load bootstrap kubeconfig: stat {}: {}",
            boot_path.display(),
            os_msg(&e)
        )
    })?;
    let boot = kube::load_kubeconfig(&boot_path)
        .map_err(|e| format!("unable to load bootstrap kubeconfig: {e}"))?;
    let api = client(&boot).map_err(|e| format!("unable to load bootstrap kubeconfig: {e}"))?;
    std::fs::create_dir_all(&s.cert_dir).map_err(|e| format!("{}: {e}", s.cert_dir.display()))?;
    let key_tmp = s.cert_dir.join("kubelet-client.key.tmp");
    let key = match std::fs::read_to_string(&key_tmp) {
        Ok(k) if pki::csr_pem(&k, "x", &[]).is_ok() => k,
        _ => {
            klog('I', "bootstrap.go:120", "\"No valid private key and/or certificate found, reusing existing private key or creating a new one\"");
            let k = pki::new_key_pem().map_err(|e| e.to_string())?;
            write_private(&key_tmp, &k)?;
            k
        }
    };
    let cert = loop {
        match request(&api, &key, &s.node_name, s.csr_wait) {
            Ok(c) => break c,
            Err(e) => {
                klog('E', "bootstrap.go:140", &format!("\"Failed while requesting a signed certificate from the control plane\" err=\"{e}\""));
                std::thread::sleep(RETRY);
            }
        }
    };
    store(&s.cert_dir, &cert, &key)?;
    let _ = std::fs::remove_file(&key_tmp);
    let pem = current_pem(&s.cert_dir);
    let mut user = serde_json::Map::new();
    user.insert(
        "client-certificate".into(),
        pem.display().to_string().into(),
    );
    user.insert("client-key".into(), pem.display().to_string().into());
    let text = kube::render_kubeconfig(
        &boot.server,
        boot.ca_pem.as_deref().unwrap_or(""),
        "default-auth",
        user,
    );
    if let Some(d) = s.kubeconfig.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    write_private(&s.kubeconfig, &text)?;
    klog(
        'I',
        "bootstrap.go:160",
        &format!(
            "\"Wrote kubeconfig with the issued client certificate\" path=\"{}\" cert=\"{}\"",
            s.kubeconfig.display(),
            pem.display()
        ),
    );
    let kc = usable(&s.kubeconfig)?;
    finish(s, kc)
}

fn finish(s: &Settings, kc: Kubeconfig) -> Result<NodeClient, String> {
    let api = client(&kc)?;
    let deadline = rotation_deadline(kc.client_cert_pem.as_deref().unwrap_or(""));
    if s.rotate {
        klog('I', "certificate_manager.go:422", "\"Certificate rotation is enabled\" logger=\"kubernetes.io/kube-apiserver-client-kubelet\"");
        log_expiry(&kc, deadline);
    }
    Ok(NodeClient {
        api,
        kubeconfig: kc,
        deadline,
    })
}

fn os_msg(e: &std::io::Error) -> String {
    let m = e.to_string();
    m.split(" (os error").next().unwrap_or(&m).to_lowercase()
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("lab-tmp");
    let res = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, path));
    res.map_err(|e| format!("writing {}: {e}", path.display()))
}

/// kubelet-client-<timestamp>.pem (certificate then key) and the -current symlink to it.
pub(crate) fn store(cert_dir: &Path, cert: &str, key: &str) -> Result<(), String> {
    let ts = timefmt::format(now())
        .replace(['T', ':'], "-")
        .trim_end_matches('Z')
        .to_string();
    let name = format!("kubelet-client-{ts}.pem");
    let mut body = cert.trim_end().to_string();
    body.push('\n');
    body.push_str(key);
    write_private(&cert_dir.join(&name), &body)?;
    let link = current_pem(cert_dir);
    let tmp = cert_dir.join(".kubelet-client-current.pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(cert_dir.join(&name), &tmp)
        .and_then(|_| std::fs::rename(&tmp, &link))
        .map_err(|e| format!("updating {}: {e}", link.display()))?;
    klog(
        'I',
        "certificate_store.go:130",
        &format!(
            "\"Updating the symlink to the current client certificate\" link=\"{}\" target=\"{}\"",
            link.display(),
            cert_dir.join(&name).display()
        ),
    );
    Ok(())
}

/// Stable per key and node, so a retry finds its earlier CSR instead of making another.
fn csr_name(key: &str, node: &str) -> String {
    let d = Sha256::digest(format!("{key}\n{node}"));
    format!(
        "node-csr-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    )
}

/// Posts a kubelet client CSR and waits up to `wait` for its certificate.
pub(crate) fn request(
    api: &dyn Api,
    key: &str,
    node: &str,
    wait: Duration,
) -> Result<String, String> {
    let cn = format!("system:node:{node}");
    let csr = pki::csr_pem(key, &cn, &["system:nodes".to_string()]).map_err(|e| e.to_string())?;
    let name = csr_name(key, node);
    post_csr(
        api,
        &name,
        &csr,
        KUBELET_CLIENT_SIGNER,
        &["digital signature", "client auth"],
    )?;
    await_certificate(api, &name, wait)
}

/// Creates a CSR as the caller; one that exists already (a retry with the same key) is fine.
pub(crate) fn post_csr(
    api: &dyn Api,
    name: &str,
    csr_pem: &str,
    signer: &str,
    usages: &[&str],
) -> Result<(), String> {
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr_pem),
                 "signerName": signer,
                 "usages": usages},
    });
    match api.post(CSRS, &body) {
        Ok(_) => klog('I', "csr.go:90", &format!("\"Certificate signing request created, waiting for it to be approved and issued\" csr=\"{name}\" signerName=\"{signer}\"")),
        Err(e) if e.code == 409 => klog('I', "csr.go:95", &format!("\"Certificate signing request already exists, waiting for it\" csr=\"{name}\"")),
        Err(e) => return Err(format!("cannot create certificate signing request: {e}")),
    }
    Ok(())
}

/// The longest a watch of the CSR waits before the CSR is read again. As the real kubelet does,
/// the CSR is watched (from the resourceVersion just read), so a change is seen at once and a
/// waiting kubelet costs the API server nothing: reading it several times a second from five
/// hundred kubelets kept the stand-in API server from answering their CSR creations.
const CSR_WATCH: Duration = Duration::from_secs(1);

/// Waits up to `wait` for CSR `name` to be approved and issued; returns the certificate PEM.
pub(crate) fn await_certificate(
    api: &dyn Api,
    name: &str,
    wait: Duration,
) -> Result<String, String> {
    let start = std::time::Instant::now();
    let mut approved_logged = false;
    while start.elapsed() < wait {
        let seen: String;
        match api.get(&format!("{CSRS}/{name}")) {
            Ok(obj) => {
                seen = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if let Some(c) = condition(&obj, "Denied") {
                    return Err(format!(
                        "certificate signing request is denied, reason: {}, message: {}",
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    ));
                }
                if let Some(c) = condition(&obj, "Failed") {
                    return Err(format!(
                        "certificate signing request failed, reason: {}, message: {}",
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    ));
                }
                if condition(&obj, "Approved").is_some() {
                    if let Some(c) = obj["status"]["certificate"]
                        .as_str()
                        .filter(|c| !c.is_empty())
                    {
                        let pem = base64::engine::general_purpose::STANDARD
                            .decode(c)
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .ok_or("invalid status.certificate")?;
                        klog('I', "csr.go:130", &format!("\"Certificate signing request is approved and issued\" csr=\"{name}\""));
                        return Ok(pem);
                    }
                    if !approved_logged {
                        klog('I', "csr.go:125", &format!("\"Certificate signing request is approved, waiting to be issued\" csr=\"{name}\""));
                        approved_logged = true;
                    }
                }
            }
            Err(e) => {
                return Err(format!(
                    "cannot watch certificate signing request {name}: {e}"
                ))
            }
        }
        api.wait_change(
            &format!("{CSRS}/{name}"),
            &seen,
            CSR_WATCH.min(wait.saturating_sub(start.elapsed())),
        );
    }
    Err(format!("timed out waiting for the condition on certificatesigningrequests/{name} (not approved and issued within {}s)", wait.as_secs()))
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| {
        c["type"].as_str() == Some(kind) && c["status"].as_str().unwrap_or("True") == "True"
    })
}

impl NodeClient {
    /// Renews the client certificate through a new CSR as the node once the deadline passed.
    pub(crate) fn rotate_if_due(&mut self, s: &Settings) -> Result<(), String> {
        if now() < self.deadline {
            return Ok(());
        }
        klog(
            'I',
            "certificate_manager.go:560",
            "\"Rotating certificates\" logger=\"kubernetes.io/kube-apiserver-client-kubelet\"",
        );
        let key = pki::new_key_pem().map_err(|e| e.to_string())?;
        let cert = request(&self.api, &key, &s.node_name, s.csr_wait)?;
        store(&s.cert_dir, &cert, &key)?;
        let mut kc = self.kubeconfig.clone();
        kc.client_cert_pem = Some(cert.clone());
        kc.client_key_pem = Some(key);
        self.api = client(&kc)?;
        self.deadline = rotation_deadline(&cert);
        log_expiry(&kc, self.deadline);
        self.kubeconfig = kc;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeApi;

    #[test]
    fn store_writes_pem_and_current_symlink() {
        let tmp = crate::testutil::TempDir::new("kubelet-store");
        store(&tmp.0, "CERT\n", "KEY\n").unwrap();
        let cur = current_pem(&tmp.0);
        let target = std::fs::read_link(&cur).unwrap();
        assert!(target
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("kubelet-client-2"));
        assert_eq!(std::fs::read_to_string(&cur).unwrap(), "CERT\nKEY\n");
    }

    #[test]
    fn request_posts_a_node_csr_and_waits_for_the_certificate() {
        let api = FakeApi::default();
        let key = pki::new_key_pem().unwrap();
        let err = request(&api, &key, "worker-01", Duration::from_millis(1500)).unwrap_err();
        assert!(
            err.starts_with("timed out waiting for the condition"),
            "{err}"
        );
        let name = csr_name(&key, "worker-01");
        let obj = api.obj(&format!("{CSRS}/{name}")).unwrap();
        assert_eq!(obj["spec"]["signerName"], KUBELET_CLIENT_SIGNER);
        assert_eq!(
            obj["spec"]["usages"],
            json!(["digital signature", "client auth"])
        );
        let pem = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(obj["spec"]["request"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            pki::csr_subject(&pem).unwrap(),
            (
                "system:node:worker-01".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        // Approved and issued (what the kcm stand-in does): the retry finds the same CSR.
        let mut obj = obj;
        obj["status"] = json!({"conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}],
            "certificate": base64::engine::general_purpose::STANDARD.encode("PEM")});
        api.insert(&format!("{CSRS}/{name}"), obj);
        assert_eq!(
            request(&api, &key, "worker-01", Duration::from_secs(5)).unwrap(),
            "PEM"
        );
        let denied = FakeApi::default();
        denied.fail.borrow_mut().insert(
            CSRS.into(),
            kube::ApiError::new(401, "Unauthorized", "Unauthorized"),
        );
        assert_eq!(
            request(&denied, &key, "w", Duration::from_secs(1)).unwrap_err(),
            "cannot create certificate signing request: Unauthorized"
        );
    }
}
