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
use crate::k8s::csr::Standing;
use crate::k8s::kubeconfig::{self, Source, UserAuth};
use crate::plan::Op;
use crate::shell::quote as sh_quote;
use crate::transport::{Become, Transport};

const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// Tries of one approval that meets a conflict (the CSR changed since it was read).
const CONFLICT_TRIES: usize = 3;
/// Approvals sent before their answers are read: one round trip through the tunnel for
/// each window rather than for each CSR, and never more unanswered requests than this.
const WINDOW: usize = 16;

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
    let (host, port, creds) = match credentials(t, cluster, become_, timeout) {
        Ok(c) => c,
        Err(why) => return declined(trace, why),
    };
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
    let mut made: Vec<&str> = Vec::new();
    for window in csrs.chunks(WINDOW) {
        let names: Vec<&str> = window.iter().map(|(o, _)| o.name.as_str()).collect();
        let approved: Vec<&Json> = window.iter().map(|(_, a)| *a).collect();
        let (ok, error) = approve_window(&mut conn, &names, &approved);
        made.extend(names.iter().zip(&ok).filter(|(_, m)| **m).map(|(n, _)| *n));
        match error {
            None => {}
            // Nothing was answered: kubectl may reach what this could not.
            Some((0, ApiError::Connection(e))) if made.is_empty() => return declined(trace, e),
            Some((i, e)) => {
                let made = if made.is_empty() {
                    String::new()
                } else {
                    format!(" (approved in this run: {})", made.join(", "))
                };
                return Outcome::Failed(format!(
                    "approving CertificateSigningRequest {} through the API: {e}{made}",
                    names[i]
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

fn valid_name(name: &str) -> Result<(), ApiError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
    {
        Ok(())
    } else {
        Err(ApiError::Protocol(format!("CSR name {name:?}")))
    }
}

/// The planned CSR with its Approved condition stamped now, as the approval's body.
fn approval_body(approved: &Json) -> (Json, Json) {
    let cond = condition(approved);
    let mut as_read = approved.clone();
    if let Some(cs) = as_read["status"]["conditions"].as_array_mut() {
        cs.pop();
    }
    (with_condition(as_read, &cond), cond)
}

/// The Approved condition on each CSR, written to its `approval` subresource against the
/// version that was read: all sent, then all answers read, in order. A conflict (the CSR
/// changed since it was read) reads that CSR again, once every answer is in, and, still
/// undecided, tries again, as kubectl does. Returns which of `names` were approved, and the
/// error of the first one that was not, if any, with its index.
fn approve_window<S: std::io::Read + std::io::Write>(
    conn: &mut ApiConn<S>,
    names: &[&str],
    approved: &[&Json],
) -> (Vec<bool>, Option<(usize, ApiError)>) {
    let mut made = vec![false; names.len()];
    let mut conds = Vec::with_capacity(names.len());
    let mut error = None;
    for (name, approved) in names.iter().zip(approved) {
        let (body, cond) = approval_body(approved);
        let sent = valid_name(name).and_then(|()| {
            let bytes = serde_json::to_vec(&body).expect("JSON");
            conn.send("PUT", &approval_path(name), Some(&bytes))
        });
        if let Err(e) = sent {
            error = Some((conds.len(), e));
            break;
        }
        conds.push(cond);
    }
    let mut conflicts = Vec::new();
    for (i, m) in made.iter_mut().enumerate().take(conds.len()) {
        match conn.receive() {
            Ok(r) if r.status == 409 => conflicts.push(i),
            Ok(r) => match r.success() {
                Ok(_) => *m = true,
                Err(e) => keep_first(&mut error, i, e),
            },
            Err(e) => {
                // The connection broke: the later answers are not known.
                keep_first(&mut error, i, e);
                return (made, error);
            }
        }
    }
    for i in conflicts {
        match after_conflict(conn, names[i], &conds[i]) {
            Ok(()) => made[i] = true,
            Err(e) => {
                let broken = matches!(e, ApiError::Connection(_));
                keep_first(&mut error, i, e);
                if broken {
                    break;
                }
            }
        }
    }
    (made, error)
}

fn keep_first(error: &mut Option<(usize, ApiError)>, i: usize, e: ApiError) {
    if error.as_ref().is_none_or(|(at, _)| i < *at) {
        *error = Some((i, e));
    }
}

/// One CSR whose approval met a conflict: read again; approved meanwhile is done, denied or
/// failed meanwhile is refused, else approved at the version read (a few times at most).
fn after_conflict<S: std::io::Read + std::io::Write>(
    conn: &mut ApiConn<S>,
    name: &str,
    cond: &Json,
) -> Result<(), ApiError> {
    for _ in 1..CONFLICT_TRIES {
        let current = conn
            .request("GET", &format!("{CSR_PATH}/{name}"), None)?
            .success()?
            .json()?;
        match crate::k8s::csr::standing(&current) {
            Standing::Approved | Standing::Issued => return Ok(()),
            Standing::Denied | Standing::Failed => {
                return Err(ApiError::Status {
                    code: 409,
                    message: "the CSR was denied or failed meanwhile".into(),
                })
            }
            Standing::Pending => {}
        }
        let body = serde_json::to_vec(&with_condition(current, cond)).expect("JSON");
        let r = conn.request("PUT", &approval_path(name), Some(&body))?;
        if r.status != 409 {
            r.success()?;
            return Ok(());
        }
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

    /// The next request's line and JSON body, read through `buf`.
    fn read_request(
        tls: &mut rustls::StreamOwned<rustls::ServerConnection, UnixStream>,
        buf: &mut Vec<u8>,
    ) -> (String, Json) {
        let (line, len, used) = loop {
            let mut h = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Request::new(&mut h);
            if let httparse::Status::Complete(used) = r.parse(buf).unwrap() {
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
            assert!(n > 0, "the client closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < used + len {
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        let sent = serde_json::from_slice(&buf[used..used + len]).unwrap_or(Json::Null);
        buf.drain(..used + len);
        (line, sent)
    }

    /// A TLS server on one end of a socket pair that answers each request with the next of
    /// `answers` (status, framing, body) and returns what it was sent (request line, body);
    /// it reads the first `upfront` requests before it answers any.
    fn serve(
        sock: UnixStream,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        answers: Vec<(u16, bool, Json)>,
        upfront: usize,
    ) -> std::thread::JoinHandle<Vec<(String, Json)>> {
        std::thread::spawn(move || {
            let mut tls = server_tls(sock, cert, key);
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            // A client that waited for each answer before its next request would leave the
            // first read of `upfront` requests waiting: the read times out and the test fails.
            tls.sock
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut queued = std::collections::VecDeque::new();
            for _ in 0..upfront {
                queued.push_back(read_request(&mut tls, &mut buf));
            }
            for (status, chunked, body) in answers {
                let (line, sent) = queued
                    .pop_front()
                    .unwrap_or_else(|| read_request(&mut tls, &mut buf));
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

    fn pending(name: &str, rv: &str) -> Json {
        json!({"metadata": {"name": name, "resourceVersion": rv}, "spec": {"signerName": "kubernetes.io/kubelet-serving"}, "status": {}})
    }

    fn planned(name: &str) -> Json {
        let mut c = pending(name, "7");
        c["status"]["conditions"] =
            json!([{"type": "Approved", "status": "True", "reason": "BootstrapctlApprove"}]);
        c
    }

    const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

    #[test]
    fn a_window_is_sent_before_its_answers_are_read_and_a_conflict_approves_the_version_read_again()
    {
        let (ca, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let server = serve(
            b,
            cert,
            key,
            vec![
                (200, true, planned("csr-1")),
                (
                    409,
                    false,
                    json!({"kind": "Status", "message": "the object has been modified"}),
                ),
                (200, true, pending("csr-2", "9")),
                (200, true, planned("csr-2")),
            ],
            2,
        );
        let mut conn = client(ca, a);
        let (p1, p2) = (planned("csr-1"), planned("csr-2"));
        let (made, error) = approve_window(&mut conn, &["csr-1", "csr-2"], &[&p1, &p2]);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(made, [true, true]);
        drop(conn);
        let seen = server.join().unwrap();
        let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                format!("PUT {CSRS}/csr-1/approval"),
                format!("PUT {CSRS}/csr-2/approval"),
                format!("GET {CSRS}/csr-2"),
                format!("PUT {CSRS}/csr-2/approval"),
            ]
        );
        assert_eq!(seen[1].1["metadata"]["resourceVersion"], "7");
        let last = &seen[3].1;
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
    fn a_refusal_is_its_status_and_message_the_others_answered_still_count_and_a_denied_csr_is_not_approved(
    ) {
        let (ca, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let mut denied = pending("csr-3", "9");
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
                (200, false, planned("csr-2")),
                (409, false, json!({"kind": "Status"})),
                (200, false, denied),
            ],
            2,
        );
        let mut conn = client(ca, a);
        let (p1, p2, p3) = (planned("csr-1"), planned("csr-2"), planned("csr-3"));
        let (made, error) = approve_window(&mut conn, &["csr-1", "csr-2"], &[&p1, &p2]);
        assert_eq!(made, [false, true]);
        let (at, e) = error.unwrap();
        assert_eq!(at, 0);
        assert_eq!(
            e.to_string(),
            "403: cannot update certificatesigningrequests/approval"
        );
        let (made, error) = approve_window(&mut conn, &["csr-3"], &[&p3]);
        assert_eq!(made, [false]);
        let e = error.unwrap().1;
        assert!(e.to_string().contains("denied or failed meanwhile"), "{e}");
        drop(conn);
        assert_eq!(server.join().unwrap().len(), 4);
    }

    #[test]
    fn a_server_the_ca_did_not_sign_is_a_connection_error_of_the_first() {
        let (ca, _, _) = pki();
        let (_, cert, key) = pki();
        let (a, b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut tls = server_tls(b, cert, key);
            let _ = tls.read(&mut [0u8; 64]);
        });
        let mut conn = client(ca, a);
        let p = planned("csr-1");
        let (made, error) = approve_window(&mut conn, &["csr-1"], &[&p]);
        assert_eq!(made, [false]);
        let (at, e) = error.unwrap();
        assert!(at == 0 && matches!(e, ApiError::Connection(_)), "{e}");
        server.join().unwrap();
    }
}
