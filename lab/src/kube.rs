//! What the kube-controller-manager and kubelet stand-ins share to talk to the API server as
//! real clients do: kubeconfig files (embedded data or file paths, relative to the kubeconfig),
//! an HTTPS client (ureq + rustls, custom CA, client certificate or bearer token), the `Api`
//! trait the controllers are written against (so tests can run them on an in-memory API), and
//! klog-style log lines.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// What a kubeconfig's current context resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Kubeconfig {
    pub(crate) server: String,
    pub(crate) ca_pem: Option<String>,
    pub(crate) insecure: bool,
    pub(crate) client_cert_pem: Option<String>,
    pub(crate) client_key_pem: Option<String>,
    pub(crate) token: Option<String>,
}

fn b64(v: &Value, what: &str) -> Result<Option<String>, String> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| format!("{what}: invalid base64: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|e| format!("{what}: {e}")))
            .map(Some),
    }
}

fn file_or_data(
    obj: &Value,
    data_key: &str,
    file_key: &str,
    base: &Path,
) -> Result<Option<String>, String> {
    if let Some(d) = b64(&obj[data_key], data_key)? {
        return Ok(Some(d));
    }
    match obj[file_key].as_str() {
        None => Ok(None),
        Some(f) => {
            let p = base.join(f);
            std::fs::read_to_string(&p)
                .map(Some)
                .map_err(|e| format!("{file_key} {}: {e}", p.display()))
        }
    }
}

fn named<'a>(list: &'a Value, name: &str, field: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .map(|e| &e[field])
}

/// Reads the current context of a kubeconfig file.
pub(crate) fn load_kubeconfig(path: &Path) -> Result<Kubeconfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_kubeconfig(&text, path.parent().unwrap_or(Path::new("/")))
}

pub(crate) fn parse_kubeconfig(text: &str, base: &Path) -> Result<Kubeconfig, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid kubeconfig: {e}"))?;
    let ctx_name = doc["current-context"].as_str().unwrap_or("");
    let ctx = if ctx_name.is_empty() {
        doc["contexts"][0]["context"].clone()
    } else {
        named(&doc["contexts"], ctx_name, "context")
            .cloned()
            .ok_or_else(|| format!("context was not found for specified context: {ctx_name}"))?
    };
    let cluster = match ctx["cluster"].as_str() {
        Some(c) => named(&doc["clusters"], c, "cluster").cloned(),
        None => Some(doc["clusters"][0]["cluster"].clone()),
    }
    .filter(|c| c.is_object())
    .ok_or("invalid configuration: no configuration has been provided")?;
    let user = match ctx["user"].as_str() {
        Some(u) => named(&doc["users"], u, "user").cloned(),
        None => Some(doc["users"][0]["user"].clone()),
    }
    .unwrap_or(Value::Null);
    let server = cluster["server"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("invalid configuration: no server found for cluster")?
        .to_string();
    let mut token = user["token"].as_str().map(str::to_string);
    if token.is_none() {
        if let Some(f) = user["tokenFile"].as_str() {
            token = Some(
                std::fs::read_to_string(base.join(f))
                    .map_err(|e| format!("tokenFile {f}: {e}"))?
                    .trim()
                    .to_string(),
            );
        }
    }
    Ok(Kubeconfig {
        server: server.trim_end_matches('/').to_string(),
        ca_pem: file_or_data(
            &cluster,
            "certificate-authority-data",
            "certificate-authority",
            base,
        )?,
        insecure: cluster["insecure-skip-tls-verify"].as_bool() == Some(true),
        client_cert_pem: file_or_data(
            &user,
            "client-certificate-data",
            "client-certificate",
            base,
        )?,
        client_key_pem: file_or_data(&user, "client-key-data", "client-key", base)?,
        token,
    })
}

/// A kubeconfig with one cluster, user and context, as kubelet and kubeadm write them.
pub(crate) fn render_kubeconfig(
    server: &str,
    ca_pem: &str,
    user_name: &str,
    user: serde_json::Map<String, Value>,
) -> String {
    let e = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": e(ca_pem)}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "default", "context": {"cluster": "kubernetes", "user": user_name}}],
        "current-context": "default",
    });
    serde_yaml::to_string(&doc).expect("kubeconfig serializes")
}

/// An API failure: `code` is the HTTP status (0 for a transport failure), `reason` and
/// `message` come from the server's Status object when it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == 0 {
            write!(f, "{}", self.message)
        } else if self.message.is_empty() {
            write!(f, "the server responded with HTTP {}", self.code)
        } else {
            write!(f, "{}", self.message)
        }
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub(crate) fn not_found(&self) -> bool {
        self.code == 404
    }
}

/// The REST calls the stand-ins make; paths are absolute API paths (`/api/v1/nodes/x`).
pub(crate) trait Api {
    fn get(&self, path: &str) -> Result<Value, ApiError>;
    fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError>;
    fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError>;
    fn delete(&self, path: &str) -> Result<(), ApiError>;

    /// `items` of a list.
    fn list(&self, path: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self.get(path)?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// This client as one that threads may share, when it is one (the fakes of the tests are
    /// not): controllers then work on several objects at once, as upstream's workers do.
    fn shared(&self) -> Option<&(dyn Api + Sync)> {
        None
    }

    /// The list's resourceVersion, read through a field selector no object matches (an empty
    /// list, however many objects there are).
    fn resource_version(&self, path: &str) -> Result<String, ApiError> {
        let v = self.get(&format!("{path}?fieldSelector=metadata.name%3D-"))?;
        Ok(v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Returns once the list at `path` changed after `rv`, or after `wait`: a watch closed at
    /// its first event, which is how an informer wakes its controller. Without a watch (the
    /// test fakes), it sleeps.
    fn wait_change(&self, _path: &str, _rv: &str, wait: Duration) {
        std::thread::sleep(wait);
    }
}

/// HTTPS client for one API server, authenticated by client certificate or bearer token.
pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
    user_agent: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate: only for kubeconfigs with `insecure-skip-tls-verify: true`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Client {
    pub(crate) fn new(kc: &Kubeconfig, user_agent: &str) -> Result<Client, String> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if kc.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let ca = kc
                .ca_pem
                .as_deref()
                .ok_or("no certificate-authority(-data) in kubeconfig")?;
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                let c = c.map_err(|e| format!("reading CA certificate: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("unable to load root certificates: {e}"))?;
            }
            if roots.is_empty() {
                return Err("unable to load root certificates: no certificates found".into());
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&kc.client_cert_pem, &kc.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("reading client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("reading client key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(config))
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build();
        Ok(Client {
            agent,
            base: kc.server.clone(),
            token: kc.token.clone(),
            user_agent: user_agent.to_string(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Accept", "application/json")
            .set("User-Agent", &self.user_agent);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match res {
            Ok(r) => {
                let text = r.into_string().unwrap_or_default();
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(&text)
                    .map_err(|e| ApiError::new(0, "", format!("decoding response: {e}")))
            }
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let status: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let reason = status["reason"].as_str().unwrap_or("").to_string();
                let message = status["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        if code == 401 {
                            "Unauthorized".to_string()
                        } else {
                            text.trim().to_string()
                        }
                    });
                Err(ApiError {
                    code,
                    reason,
                    message,
                })
            }
            Err(ureq::Error::Transport(t)) => Err(ApiError::new(0, "", t.to_string())),
        }
    }
}

/// How a watch stream ended.
pub(crate) enum WatchEnd {
    /// `on_event` asked for no more events.
    Stopped,
    /// The server closed it (its timeout): watch again from the last resourceVersion seen.
    Closed,
    /// The resourceVersion is older than the server keeps (410 Expired): list again.
    Expired,
    /// The connection failed or the server answered with an error.
    Failed(String),
}

impl Client {
    /// A watch of the list at `path` from `rv`, each event (`{"type", "object"}`) given to
    /// `on_event` as it arrives, until the server closes the stream after `timeout` or
    /// `on_event` returns false.
    pub(crate) fn watch(
        &self,
        path: &str,
        rv: &str,
        timeout: Duration,
        on_event: &mut dyn FnMut(Value) -> bool,
    ) -> WatchEnd {
        use std::io::BufRead;
        let url = format!(
            "{}{path}?watch=true&resourceVersion={rv}&timeoutSeconds={}",
            self.base,
            timeout.as_secs().max(1)
        );
        let mut req = self
            .agent
            .get(&url)
            .set("Accept", "application/json")
            .set("User-Agent", &self.user_agent)
            // The stream lasts the server's timeout; the client's allows for a late close.
            .timeout(timeout + Duration::from_secs(10));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(410, _)) => return WatchEnd::Expired,
            Err(e) => return WatchEnd::Failed(e.to_string()),
        };
        let mut reader = std::io::BufReader::new(res.into_reader());
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return WatchEnd::Closed,
                Ok(_) => {}
                Err(e) => return WatchEnd::Failed(e.to_string()),
            }
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["type"] == "ERROR" {
                return if event["object"]["code"] == 410 {
                    WatchEnd::Expired
                } else {
                    WatchEnd::Failed(event["object"]["message"].to_string())
                };
            }
            if !on_event(event) {
                return WatchEnd::Stopped;
            }
        }
    }
}

impl Api for Client {
    fn shared(&self) -> Option<&(dyn Api + Sync)> {
        Some(self)
    }

    fn wait_change(&self, path: &str, rv: &str, wait: Duration) {
        let start = std::time::Instant::now();
        let woke = matches!(
            self.watch(path, rv, wait, &mut |_| false),
            WatchEnd::Stopped
        );
        // A failed watch (server restarting) must not turn the caller into a busy loop.
        if !woke {
            std::thread::sleep(wait.saturating_sub(start.elapsed()));
        }
    }

    fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None)
    }
    fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body))
    }
    fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("PUT", path, Some(body))
    }
    fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.call("DELETE", path, None).map(|_| ())
    }
}

/// klog's header: `I0501 12:00:00.000000    1234 file.go:12] msg` (severity I/W/E).
pub(crate) fn klog(sev: char, file: &str, msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = super::timefmt::format(now.as_secs() as i64);
    // ts: YYYY-MM-DDTHH:MM:SSZ -> MMDD HH:MM:SS
    let line = format!(
        "{sev}{}{} {}.{:06} {:>7} {file}] {msg}",
        &ts[5..7],
        &ts[8..10],
        &ts[11..19],
        now.subsec_micros(),
        std::process::id()
    );
    eprintln!("{line}");
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory API for controller tests: objects by path, lists by prefix, resourceVersion
    //! bumps, and every call recorded.

    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::{Api, ApiError};

    #[derive(Default)]
    pub(crate) struct FakeApi {
        pub(crate) objects: RefCell<BTreeMap<String, Value>>,
        pub(crate) calls: RefCell<Vec<String>>,
        /// Paths that answer with this error (e.g. SubjectAccessReview not served: 404).
        pub(crate) fail: RefCell<BTreeMap<String, ApiError>>,
    }

    impl FakeApi {
        pub(crate) fn insert(&self, path: &str, obj: Value) {
            self.objects.borrow_mut().insert(path.to_string(), obj);
        }
        pub(crate) fn obj(&self, path: &str) -> Option<Value> {
            self.objects.borrow().get(path).cloned()
        }
        fn check(&self, path: &str) -> Result<(), ApiError> {
            match self.fail.borrow().get(path) {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        }
    }

    fn nf(path: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{path} not found"))
    }

    impl Api for FakeApi {
        fn get(&self, path: &str) -> Result<Value, ApiError> {
            self.calls.borrow_mut().push(format!("GET {path}"));
            self.check(path)?;
            let objs = self.objects.borrow();
            if let Some(o) = objs.get(path) {
                return Ok(o.clone());
            }
            const COLLECTIONS: &[&str] = &[
                "secrets",
                "configmaps",
                "certificatesigningrequests",
                "clusterrolebindings",
                "clusterroles",
                "nodes",
            ];
            if !COLLECTIONS.iter().any(|c| path.ends_with(&format!("/{c}"))) {
                return Err(nf(path));
            }
            let prefix = format!("{path}/");
            let items: Vec<Value> = objs
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                .map(|(_, v)| v.clone())
                .collect();
            Ok(serde_json::json!({ "items": items }))
        }
        fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
            self.calls.borrow_mut().push(format!("POST {path}"));
            self.check(path)?;
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            let full = format!("{path}/{name}");
            if self.objects.borrow().contains_key(&full) {
                return Err(ApiError::new(409, "AlreadyExists", "exists"));
            }
            self.insert(&full, body.clone());
            Ok(body.clone())
        }
        fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
            self.calls.borrow_mut().push(format!("PUT {path}"));
            self.check(path)?;
            // Subresources (/status, /approval) write into the parent object.
            let target = ["/status", "/approval"]
                .iter()
                .find_map(|s| path.strip_suffix(s))
                .unwrap_or(path);
            if !self.objects.borrow().contains_key(target) {
                return Err(nf(target));
            }
            self.insert(target, body.clone());
            Ok(body.clone())
        }
        fn delete(&self, path: &str) -> Result<(), ApiError> {
            self.calls.borrow_mut().push(format!("DELETE {path}"));
            self.check(path)?;
            self.objects
                .borrow_mut()
                .remove(path)
                .map(|_| ())
                .ok_or_else(|| nf(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_current_context_with_data_and_files() {
        let tmp = crate::testutil::TempDir::new("kubeconfig");
        std::fs::write(tmp.0.join("ca.crt"), "CA").unwrap();
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://a:6443/'}\n- name: b\n  cluster: {server: 'https://b:6443', certificate-authority: ca.crt}\nusers:\n- name: u\n  user: {token: abcdef.0123456789abcdef}\ncontexts:\n- name: c\n  context: {cluster: b, user: u}\ncurrent-context: c\n";
        let kc = parse_kubeconfig(text, &tmp.0).unwrap();
        assert_eq!(kc.server, "https://b:6443");
        assert_eq!(kc.ca_pem.as_deref(), Some("CA"));
        assert_eq!(kc.token.as_deref(), Some("abcdef.0123456789abcdef"));
        let mut user = serde_json::Map::new();
        user.insert("token".into(), "t".into());
        let back = parse_kubeconfig(
            &render_kubeconfig("https://x:6443", "PEM", "u", user),
            &tmp.0,
        )
        .unwrap();
        assert_eq!(back.ca_pem.as_deref(), Some("PEM"));
        assert_eq!(back.server, "https://x:6443");
        assert!(parse_kubeconfig("clusters: []\n", &tmp.0).is_err());
    }
}
