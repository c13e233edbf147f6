//! Serving-CSR approvals made by bootstrapctl itself: over a tunnel through the control
//! plane's SSH session to the API server it runs, with the credentials of the kubeconfig
//! the task's kubectl would use (read from the host, kept in memory for the task only).
//! Each approval is one request on one connection, where `kubectl certificate approve` is a
//! process and three requests per CSR, throttled on the client after the first few. What
//! bootstrapctl cannot do the way kubectl would (see `k8s::kubeconfig`), or a tunnel that
//! cannot be opened, leaves the approvals to kubectl in the task's script, as before.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value as Json};

use crate::hoststate::{Cluster, ObjectRef};
use crate::k8s::api::{ApiConn, ApiError, Auth, Credentials};
use crate::k8s::kubeconfig::{self, Source, UserAuth};
use crate::plan::Op;
use crate::shell::quote as sh_quote;
use crate::transport::{Become, Transport};

const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// Tries of one approval that meets a conflict (the CSR changed since it was read).
const CONFLICT_TRIES: usize = 3;

pub enum Outcome {
    /// No approvals, or approvals beside other cluster changes: the script does them all.
    NotHere,
    /// Left to kubectl, and why.
    Declined,
    /// Every approval was made.
    Done,
    /// The API refused one, after the ones before it were made.
    Failed(String),
}

/// The approvals among `ops` when they are all of its non-command ops and of one cluster.
fn approvals(ops: &[Op]) -> Option<Vec<(&ObjectRef, &Json)>> {
    let mut found = Vec::new();
    for op in ops {
        match op {
            Op::ApproveCsr { object, approved } => found.push((object, approved)),
            Op::Exec { .. } | Op::Artifact(_) => {}
            _ => return None,
        }
    }
    let first = found.first()?.0;
    found
        .iter()
        .all(|(o, _)| o.cluster == first.cluster)
        .then_some(found)
}

pub fn approve(
    t: &mut dyn Transport,
    ops: &[Op],
    become_: Option<&Become>,
    timeout: Duration,
    trace: &mut dyn FnMut(&str, &str),
) -> Outcome {
    let Some(csrs) = approvals(ops) else {
        return Outcome::NotHere;
    };
    let cluster = &csrs[0].0.cluster;
    let creds = match credentials(t, cluster, become_, timeout) {
        Ok(c) => c,
        Err(why) => return declined(trace, why),
    };
    let (host, port, creds) = creds;
    let config = match crate::k8s::api::tls_config(&creds) {
        Ok(c) => c,
        Err(e) => return declined(trace, e.to_string()),
    };
    let requests: Vec<String> = csrs
        .iter()
        .map(|(o, _)| format!("PUT {}", approval_path(&o.name)))
        .collect();
    trace(
        "api",
        &format!("# https://{host}:{port}\n{}", requests.join("\n")),
    );
    let tunnel = match t.tunnel(&host, port, timeout) {
        Ok(s) => s,
        Err(e) => return declined(trace, e.to_string()),
    };
    let mut conn = match ApiConn::new(tunnel, &creds, config) {
        Ok(c) => c,
        Err(e) => return declined(trace, e.to_string()),
    };
    for (i, (object, approved)) in csrs.iter().enumerate() {
        match approve_one(&mut conn, &object.name, approved) {
            Ok(()) => {}
            // Nothing was answered yet: kubectl may reach what this could not.
            Err(ApiError::Connection(e)) if i == 0 => return declined(trace, e),
            Err(e) => {
                let before: Vec<&str> = csrs[..i].iter().map(|(o, _)| o.name.as_str()).collect();
                let made = if before.is_empty() {
                    String::new()
                } else {
                    format!(" (approved before it: {})", before.join(", "))
                };
                return Outcome::Failed(format!(
                    "approving CertificateSigningRequest {} through the API: {e}{made}",
                    object.name
                ));
            }
        }
    }
    Outcome::Done
}

fn declined(trace: &mut dyn FnMut(&str, &str), why: String) -> Outcome {
    trace("api", &format!("# approvals left to kubectl: {why}"));
    Outcome::Declined
}

fn approval_path(name: &str) -> String {
    format!("{CSR_PATH}/{name}/approval")
}

/// The server (as the host reaches it) and the credentials of `cluster`'s kubeconfig.
fn credentials(
    t: &mut dyn Transport,
    cluster: &Cluster,
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<(String, u16, Credentials), String> {
    let mut read = |path: &str| -> Result<Vec<u8>, String> {
        let out = t
            .exec(&format!("cat -- {}", sh_quote(path)), &[], become_, timeout)
            .map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!("reading {path}: {}", out.stderr_lossy().trim()));
        }
        Ok(out.stdout)
    };
    let yaml = read(&cluster.kubeconfig)?;
    let access = kubeconfig::access(&String::from_utf8_lossy(&yaml), &cluster.kubeconfig)
        .map_err(|e| format!("{}: {e}", cluster.kubeconfig))?;
    let mut bytes = |s: &Source| match s {
        Source::Inline(b) => Ok(b.clone()),
        Source::File(p) => read(p),
    };
    let auth = match &access.auth {
        UserAuth::ClientCert { cert, key } => Auth::ClientCert {
            cert_pem: bytes(cert)?,
            key_pem: bytes(key)?,
        },
        UserAuth::Token(s) => Auth::Bearer(String::from_utf8_lossy(&bytes(s)?).trim().to_string()),
    };
    let creds = Credentials {
        server_name: access.server_name.clone(),
        ca_pem: bytes(&access.ca)?,
        auth,
    };
    Ok((access.host, access.port, creds))
}

/// The condition the plan added to the CSR (its last), stamped now.
fn condition(approved: &Json) -> Json {
    let mut c = approved["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.last())
        .cloned()
        .unwrap_or_else(|| json!({"type": "Approved", "status": "True"}));
    c["lastUpdateTime"] = json!(crate::k8s::token::format_rfc3339(SystemTime::now()));
    c
}

fn with_condition(mut csr: Json, cond: &Json) -> Json {
    csr["apiVersion"] = json!("certificates.k8s.io/v1");
    csr["kind"] = json!("CertificateSigningRequest");
    match csr["status"]["conditions"].as_array_mut() {
        Some(cs) => cs.push(cond.clone()),
        None => csr["status"]["conditions"] = json!([cond]),
    }
    csr
}

fn has_condition(csr: &Json, kind: &str) -> bool {
    csr["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// The Approved condition on one CSR, written to its `approval` subresource against the
/// version that was read; on a conflict the CSR is read again and, still undecided, tried
/// again (as kubectl does).
fn approve_one<S: std::io::Read + std::io::Write>(
    conn: &mut ApiConn<S>,
    name: &str,
    approved: &Json,
) -> Result<(), ApiError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
    {
        return Err(ApiError::Protocol(format!("CSR name {name:?}")));
    }
    let cond = condition(approved);
    let mut body = approved.clone();
    body["apiVersion"] = json!("certificates.k8s.io/v1");
    body["kind"] = json!("CertificateSigningRequest");
    if let Some(cs) = body["status"]["conditions"].as_array_mut() {
        if let Some(last) = cs.last_mut() {
            *last = cond.clone();
        }
    }
    for _ in 0..CONFLICT_TRIES {
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let r = conn.request("PUT", &approval_path(name), Some(&bytes))?;
        if r.status != 409 {
            r.success()?;
            return Ok(());
        }
        let current = conn
            .request("GET", &format!("{CSR_PATH}/{name}"), None)?
            .success()?
            .json()?;
        if has_condition(&current, "Approved") {
            return Ok(());
        }
        if has_condition(&current, "Denied") || has_condition(&current, "Failed") {
            return Err(ApiError::Status {
                code: 409,
                message: "the CSR was denied or failed meanwhile".into(),
            });
        }
        body = with_condition(current, &cond);
    }
    Err(ApiError::Status {
        code: 409,
        message: format!("the CSR kept changing ({CONFLICT_TRIES} tries)"),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use serde_json::{json, Value as Json};

    use super::*;

    /// A CA, and a server certificate for `api.test` signed by it.
    fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["api.test".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (
            ca.pem(),
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// The server end of a TLS connection over `sock`, with `cert` and its `key`.
    fn server_tls(
        sock: UnixStream,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> rustls::StreamOwned<rustls::ServerConnection, UnixStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        rustls::StreamOwned::new(conn, sock)
    }

    /// A TLS server on one end of a socket pair that answers each request with the next of
    /// `answers` (status, framing, body) and returns what it was sent (request line, body).
    fn serve(
        sock: UnixStream,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        answers: Vec<(u16, bool, Json)>,
    ) -> std::thread::JoinHandle<Vec<(String, Json)>> {
        std::thread::spawn(move || {
            let mut tls = server_tls(sock, cert, key);
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            for (status, chunked, body) in answers {
                let (line, len, used) = loop {
                    let mut h = [httparse::EMPTY_HEADER; 32];
                    let mut r = httparse::Request::new(&mut h);
                    if let httparse::Status::Complete(used) = r.parse(&buf).unwrap() {
                        let len = r
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                            .unwrap_or(0usize);
                        break (
                            format!("{} {}", r.method.unwrap(), r.path.unwrap()),
                            len,
                            used,
                        );
                    }
                    let mut chunk = [0u8; 4096];
                    let n = tls.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                };
                while buf.len() < used + len {
                    let mut chunk = [0u8; 4096];
                    let n = tls.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let sent = serde_json::from_slice(&buf[used..used + len]).unwrap_or(Json::Null);
                buf.drain(..used + len);
                seen.push((line, sent));
                let body = body.to_string();
                let answer = if chunked {
                    let (a, b) = body.split_at(body.len() / 2);
                    format!(
                        "HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                        a.len(),
                        b.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                tls.write_all(answer.as_bytes()).unwrap();
                tls.flush().unwrap();
            }
            seen
        })
    }

    fn client(ca: String, sock: UnixStream) -> ApiConn<UnixStream> {
        let creds = Credentials {
            server_name: "api.test".into(),
            ca_pem: ca.into_bytes(),
            auth: Auth::Bearer("abcdef.0123456789abcdef".into()),
        };
        let config = crate::k8s::api::tls_config(&creds).unwrap();
        ApiConn::new(sock, &creds, config).unwrap()
    }

    fn pending(rv: &str) -> Json {
        json!({"metadata": {"name": "csr-1", "resourceVersion": rv}, "spec": {"signerName": "kubernetes.io/kubelet-serving"}, "status": {}})
    }

    fn planned() -> Json {
        let mut c = pending("7");
        c["status"]["conditions"] =
            json!([{"type": "Approved", "status": "True", "reason": "BootstrapctlApprove"}]);
        c
    }

    #[test]
    fn a_conflict_reads_the_csr_again_and_approves_the_version_read() {
        let (ca, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let server = serve(
            b,
            cert,
            key,
            vec![
                (
                    409,
                    false,
                    json!({"kind": "Status", "message": "the object has been modified"}),
                ),
                (200, true, pending("9")),
                (200, true, planned()),
            ],
        );
        let mut conn = client(ca, a);
        approve_one(&mut conn, "csr-1", &planned()).unwrap();
        let seen = server.join().unwrap();
        let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval",
                "GET /apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1",
                "PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval",
            ]
        );
        assert_eq!(seen[0].1["metadata"]["resourceVersion"], "7");
        let last = &seen[2].1;
        assert_eq!(last["metadata"]["resourceVersion"], "9");
        assert_eq!(last["kind"], "CertificateSigningRequest");
        let conds = last["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["reason"], "BootstrapctlApprove");
        assert!(conds[0]["lastUpdateTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn a_refusal_is_its_status_and_message_and_a_denied_csr_is_not_approved() {
        let (ca, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let mut denied = pending("9");
        denied["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        let server = serve(
            b,
            cert,
            key,
            vec![
                (
                    403,
                    true,
                    json!({"kind": "Status", "message": "cannot update certificatesigningrequests/approval"}),
                ),
                (409, false, json!({"kind": "Status"})),
                (200, false, denied),
            ],
        );
        let mut conn = client(ca, a);
        let e = approve_one(&mut conn, "csr-1", &planned()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "403: cannot update certificatesigningrequests/approval"
        );
        let e = approve_one(&mut conn, "csr-1", &planned()).unwrap_err();
        assert!(e.to_string().contains("denied or failed meanwhile"), "{e}");
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[test]
    fn a_server_the_ca_did_not_sign_is_a_connection_error() {
        let (ca, _, _) = pki();
        let (_, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut tls = server_tls(b, cert, key);
            let _ = tls.read(&mut [0u8; 64]);
        });
        let mut conn = client(ca, a);
        let e = approve_one(&mut conn, "csr-1", &planned()).unwrap_err();
        assert!(matches!(e, ApiError::Connection(_)), "{e}");
        server.join().unwrap();
    }
}
