//! The kubelet's serving certificate, as upstream's server certificate manager
//! (pkg/kubelet/certificate/kubelet.go) keeps it:
//! * with `serverTLSBootstrap: true`: a `kubernetes.io/kubelet-serving` CSR as the node
//!   (`system:node:<name>` in `system:nodes`, authenticated with its client certificate), usages
//!   digital signature + key encipherment + server auth, SANs the node's hostname (its name)
//!   and its IPs; once approved and issued the certificate goes to
//!   kubelet-server-<ts>.pem + kubelet-server-current.pem in the cert dir. A usable current one
//!   is kept. Nothing in the cluster approves these by itself (see kcm/csr.rs), so the wait
//!   runs beside the node's heartbeats, as upstream's certificate manager does.
//! * without it: a self-signed kubelet.crt / kubelet.key in the cert dir, made once.
//!
//! The kubelet's port (10250) is served on the node's first IP with that certificate, once
//! there is one; it answers `/healthz` only (the stand-in runs no pods to log or exec into).
//!
//! The CSR is filed before the Node is registered, so that whoever sees a Ready node finds its
//! serving CSR too; the key is kept in kubelet-server.key.tmp until the certificate comes, so a
//! restarted kubelet files the same CSR again (same name) instead of another one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::super::kcm::csr::KUBELET_SERVING_SIGNER;
use super::super::kube::{klog, Kubeconfig};
use super::super::pki;
use super::super::timefmt;
use super::bootstrap::{await_certificate, client, post_csr, window, write_private};
use super::{now, Settings};

pub(crate) const USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];
const LOGGER: &str = "logger=\"kubernetes.io/kubelet-serving\"";

pub(crate) fn current_pem(cert_dir: &Path) -> PathBuf {
    cert_dir.join("kubelet-server-current.pem")
}

fn key_tmp(cert_dir: &Path) -> PathBuf {
    cert_dir.join("kubelet-server.key.tmp")
}

/// The node's SANs: its name as DNS name, its IPs.
pub(crate) fn sans(s: &Settings) -> (Vec<String>, Vec<IpAddr>) {
    let ips = s.node_ips.iter().filter_map(|i| i.parse().ok()).collect();
    (vec![s.node_name.clone()], ips)
}

/// Stable per key and node, as the client CSR's name (see bootstrap.rs).
fn csr_name(key: &str, node: &str) -> String {
    let d = Sha256::digest(format!("serving\n{key}\n{node}"));
    let mut h = String::new();
    for b in &d[..8] {
        h.push_str(&format!("{b:02x}"));
    }
    format!("csr-{h}")
}

/// The serving CSR (PEM) for `key`, as the kubelet files it.
pub(crate) fn csr_pem(s: &Settings, key: &str) -> Result<String, String> {
    let (dns, ips) = sans(s);
    pki::csr_pem_with_sans(
        key,
        &format!("system:node:{}", s.node_name),
        &["system:nodes".to_string()],
        &dns,
        &ips,
    )
    .map_err(|e| e.to_string())
}

/// A current serving certificate that has not expired.
fn usable_current(cert_dir: &Path) -> bool {
    std::fs::read_to_string(current_pem(cert_dir))
        .ok()
        .and_then(|p| window(&p))
        .is_some_and(|(_, na)| na > now())
}

/// With serverTLSBootstrap: file the serving CSR (now) and wait for its certificate on a thread
/// of its own. Without: make sure a self-signed pair exists.
pub(crate) fn start(s: &Settings, kc: &Kubeconfig) -> Result<(), String> {
    if !s.server_tls_bootstrap {
        return self_signed(s);
    }
    if usable_current(&s.cert_dir) {
        serve_current(s, &current_pem(&s.cert_dir));
        return Ok(());
    }
    std::fs::create_dir_all(&s.cert_dir).map_err(|e| format!("{}: {e}", s.cert_dir.display()))?;
    let tmp = key_tmp(&s.cert_dir);
    let key = match std::fs::read_to_string(&tmp) {
        Ok(k) if pki::csr_pem(&k, "x", &[]).is_ok() => k,
        _ => {
            let k = pki::new_key_pem().map_err(|e| e.to_string())?;
            write_private(&tmp, &k)?;
            k
        }
    };
    let api = client(kc)?;
    let name = csr_name(&key, &s.node_name);
    let pem = csr_pem(s, &key)?;
    post_csr(&api, &name, &pem, KUBELET_SERVING_SIGNER, USAGES)?;
    let (cert_dir, wait, settings) = (s.cert_dir.clone(), s.csr_wait, s.clone());
    std::thread::spawn(move || loop {
        match await_certificate(&api, &name, wait) {
            Ok(cert) => {
                match store(&cert_dir, &cert, &key) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(key_tmp(&cert_dir));
                        serve_current(&settings, &current_pem(&cert_dir));
                    }
                    Err(e) => klog(
                        'E',
                        "certificate_manager.go:601",
                        &format!(
                            "\"Unable to write the serving certificate\" err=\"{e}\" {LOGGER}"
                        ),
                    ),
                }
                return;
            }
            Err(e) => {
                klog('E', "certificate_manager.go:562", &format!("\"Failed while requesting a signed certificate from the control plane\" err=\"{e}\" {LOGGER}"));
                std::thread::sleep(Duration::from_secs(3));
            }
        }
    });
    Ok(())
}

/// kubelet-server-<timestamp>.pem (certificate then key) and the -current symlink to it.
pub(crate) fn store(cert_dir: &Path, cert: &str, key: &str) -> Result<(), String> {
    let ts = timefmt::format(now())
        .replace(['T', ':'], "-")
        .trim_end_matches('Z')
        .to_string();
    let file = cert_dir.join(format!("kubelet-server-{ts}.pem"));
    let mut body = cert.trim_end().to_string();
    body.push('\n');
    body.push_str(key);
    write_private(&file, &body)?;
    let link = current_pem(cert_dir);
    let tmp = cert_dir.join(".kubelet-server-current.pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&file, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &link))
        .map_err(|e| format!("updating {}: {e}", link.display()))?;
    klog(
        'I',
        "certificate_store.go:130",
        &format!(
            "\"Updating the symlink to the current serving certificate\" link=\"{}\" target=\"{}\" {LOGGER}",
            link.display(),
            file.display()
        ),
    );
    Ok(())
}

/// kubelet.crt / kubelet.key, self-signed, as upstream makes them when no serving
/// certificate is given or bootstrapped.
fn self_signed(s: &Settings) -> Result<(), String> {
    let (crt, key) = (
        s.cert_dir.join("kubelet.crt"),
        s.cert_dir.join("kubelet.key"),
    );
    if crt.exists() && key.exists() {
        serve_pair(s, &crt, &key);
        return Ok(());
    }
    std::fs::create_dir_all(&s.cert_dir).map_err(|e| format!("{}: {e}", s.cert_dir.display()))?;
    let (_, ips) = sans(s);
    let pair = pki::self_signed_serving(&s.node_name, &ips).map_err(|e| e.to_string())?;
    write_private(&key, &pair.key_pem)?;
    std::fs::write(&crt, &pair.cert_pem).map_err(|e| format!("{}: {e}", crt.display()))?;
    klog(
        'I',
        "server.go:837",
        &format!(
            "\"Generated self-signed serving certificate\" cert=\"{}\"",
            crt.display()
        ),
    );
    serve_pair(s, &crt, &key);
    Ok(())
}

/// The kubelet's port, as upstream: 10250 on the node's address.
pub(crate) const PORT: u16 = 10250;

fn serve_current(s: &Settings, pem: &Path) {
    serve_pair(s, pem, pem);
}

/// Serves the port with the certificate and key in these files, on a thread of its own. A
/// failure is logged, never fatal: the node's registration and heartbeats go on.
fn serve_pair(s: &Settings, cert: &Path, key: &Path) {
    let Some(ip) = s.node_ips.first().and_then(|i| i.parse::<IpAddr>().ok()) else {
        return;
    };
    let res = (|| -> Result<(), String> {
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let tls = crate::apiserver::http::tls_config(&read(cert)?, &read(key)?, None)?;
        let listener = std::net::TcpListener::bind((ip, PORT))
            .map_err(|e| format!("listen tcp {ip}:{PORT}: {e}"))?;
        klog(
            'I',
            "server.go:163",
            &format!(
                "\"Starting to listen\" address=\"{ip}\" port={PORT} cert=\"{}\"",
                cert.display()
            ),
        );
        std::thread::spawn(move || {
            crate::apiserver::http::serve(
                listener,
                tls,
                std::sync::Arc::new(|r: crate::apiserver::http::Request| {
                    match r.path.as_str() {
                    "/healthz" => crate::apiserver::http::Response::text(200, "ok"),
                    _ => crate::apiserver::http::Response::text(
                        404,
                        "404 page not found (the bootstrapctl lab kubelet stand-in serves /healthz only)\n",
                    ),
                }
                }),
            )
        });
        Ok(())
    })();
    if let Err(e) = res {
        klog(
            'E',
            "server.go:170",
            &format!("\"Failed to serve the kubelet port\" err=\"{e}\""),
        );
    }
}

/// The certificate a CSR object carries, decoded (for tests and the wait).
#[cfg(test)]
fn issued(obj: &serde_json::Value) -> Option<String> {
    use base64::Engine;
    let c = obj["status"]["certificate"].as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(c).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kcm::csr::{parse_request, validate_kubelet_serving, CSRS};
    use crate::kube::{self, fake::FakeApi};
    use base64::Engine;
    use serde_json::json;

    /// Without an IP nothing listens (a unit test binds no port).
    fn settings(dir: &Path, bootstrap: bool, ip: bool) -> Settings {
        let mut args: Vec<String> = vec![
            "--kubeconfig=/k".into(),
            format!("--cert-dir={}", dir.display()),
            "--hostname-override=worker-01".into(),
            format!("--rotate-server-certificates={bootstrap}"),
        ];
        if ip {
            args.push("--node-ip=127.10.0.2".into());
        }
        match super::super::config::settings(&args) {
            Ok(Some(s)) => s,
            _ => panic!("settings"),
        }
    }

    #[test]
    fn serving_csr_names_the_node_and_its_addresses() {
        let tmp = crate::testutil::TempDir::new("kubelet-serving");
        let s = settings(&tmp.0, true, true);
        assert!(s.server_tls_bootstrap);
        let key = pki::new_key_pem().unwrap();
        let pem = csr_pem(&s, &key).unwrap();
        let r = parse_request(&pem).unwrap();
        assert_eq!(r.common_name, "system:node:worker-01");
        assert_eq!(r.organizations, ["system:nodes"]);
        assert_eq!((r.dns, r.ips, r.emails, r.uris), (1, 1, 0, 0));
        let usages: Vec<String> = USAGES.iter().map(|u| u.to_string()).collect();
        assert_eq!(validate_kubelet_serving(&r, &usages), Ok(()));
        assert_eq!(csr_name(&key, "worker-01"), csr_name(&key, "worker-01"));
        assert_ne!(csr_name(&key, "worker-01"), csr_name(&key, "worker-02"));
    }

    #[test]
    fn filed_as_the_node_then_stored_once_issued() {
        let tmp = crate::testutil::TempDir::new("kubelet-serving-flow");
        let s = settings(&tmp.0, true, true);
        let api = FakeApi::default();
        let key = pki::new_key_pem().unwrap();
        let name = csr_name(&key, &s.node_name);
        post_csr(
            &api,
            &name,
            &csr_pem(&s, &key).unwrap(),
            KUBELET_SERVING_SIGNER,
            USAGES,
        )
        .unwrap();
        let mut obj = api.obj(&format!("{CSRS}/{name}")).unwrap();
        assert_eq!(obj["spec"]["signerName"], KUBELET_SERVING_SIGNER);
        assert_eq!(obj["spec"]["usages"], json!(USAGES));
        // Not approved: the wait times out and nothing is written.
        assert!(await_certificate(&api, &name, Duration::from_millis(1200)).is_err());
        assert!(!current_pem(&tmp.0).exists());
        let ca = pki::Ca::generate("kubernetes").unwrap();
        let cert = ca
            .sign_serving_csr(&csr_pem(&s, &key).unwrap(), Duration::from_secs(3600))
            .unwrap();
        obj["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": base64::engine::general_purpose::STANDARD.encode(&cert)});
        api.insert(&format!("{CSRS}/{name}"), obj.clone());
        assert_eq!(issued(&obj).as_deref(), Some(cert.as_str()));
        let got = await_certificate(&api, &name, Duration::from_secs(5)).unwrap();
        store(&tmp.0, &got, &key).unwrap();
        let text = std::fs::read_to_string(current_pem(&tmp.0)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----") && text.contains("PRIVATE KEY"));
        assert!(usable_current(&tmp.0));
    }

    #[test]
    fn without_bootstrap_a_self_signed_pair() {
        let tmp = crate::testutil::TempDir::new("kubelet-selfsigned");
        let s = settings(&tmp.0, false, false);
        assert!(!s.server_tls_bootstrap);
        let kc = kube::parse_kubeconfig(
            "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n",
            &tmp.0,
        );
        // The kubeconfig is not used without bootstrap: no CSR is filed.
        if let Ok(kc) = kc {
            start(&s, &kc).unwrap();
        } else {
            self_signed(&s).unwrap();
        }
        let crt = std::fs::read_to_string(tmp.0.join("kubelet.crt")).unwrap();
        let (cn, _) = pki::cert_subject(&crt).unwrap();
        assert!(cn.starts_with("worker-01@"), "{cn}");
        assert!(!current_pem(&tmp.0).exists());
    }
}
