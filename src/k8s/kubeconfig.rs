//! What bootstrapctl needs of a kubeconfig to reach the API itself: the current context's
//! server, its CA and the user's client certificate or bearer token. Anything else kubectl
//! can do (exec and auth-provider plugins, proxies, skipping verification, basic auth, the
//! system's roots) is declined with the reason, and the caller leaves the work to kubectl.

use base64::Engine as _;
use serde_yaml::Value;

/// A value given inline (`…-data`, `token`) or as a file on the host (`…`, `tokenFile`), a
/// relative path taken from the kubeconfig's own directory, as kubectl does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Inline(Vec<u8>),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAuth {
    ClientCert { cert: Source, key: Source },
    Token(Source),
}

/// The parts of a kubeconfig's current context that a direct API connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The server's host as the URL names it (no brackets for IPv6) and its port.
    pub host: String,
    pub port: u16,
    /// The name the server's certificate is checked against (`tls-server-name` or `host`).
    pub server_name: String,
    pub ca: Source,
    pub auth: UserAuth,
}

/// Why a kubeconfig is left to kubectl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined(pub String);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn declined(why: impl Into<String>) -> Declined {
    Declined(why.into())
}

/// The entry named `name` of the list `key` (`clusters`, `users`, `contexts`), its inner map.
fn entry<'a>(doc: &'a Value, key: &str, inner: &str, name: &str) -> Result<&'a Value, Declined> {
    doc.get(key)
        .and_then(Value::as_sequence)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
        })
        .and_then(|i| i.get(inner))
        .ok_or_else(|| declined(format!("no {inner} {name:?} in the kubeconfig")))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `key-data` (base64) inline, else `key` as a file relative to `dir`.
fn source(v: &Value, key: &str, dir: &str) -> Result<Option<Source>, Declined> {
    if let Some(data) = text(v, &format!("{key}-data")) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| declined(format!("{key}-data is not base64")))?;
        return Ok(Some(Source::Inline(bytes)));
    }
    Ok(text(v, key).map(|p| Source::File(resolve(p, dir))))
}

fn resolve(path: &str, dir: &str) -> String {
    if path.starts_with('/') || dir.is_empty() {
        path.to_string()
    } else {
        format!("{}/{path}", dir.trim_end_matches('/'))
    }
}

/// The kubeconfig at `path` (for its relative file names), with text `yaml`.
pub fn access(yaml: &str, path: &str) -> Result<Access, Declined> {
    // The parser's message may quote the text, and a kubeconfig holds keys: only where.
    let doc: Value = serde_yaml::from_str(yaml).map_err(|e| {
        declined(match e.location() {
            Some(l) => format!("not YAML (line {}, column {})", l.line(), l.column()),
            None => "not YAML".to_string(),
        })
    })?;
    let dir = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    };
    let current = text(&doc, "current-context")
        .ok_or_else(|| declined("the kubeconfig has no current-context"))?;
    let context = entry(&doc, "contexts", "context", current)?;
    let cluster_name =
        text(context, "cluster").ok_or_else(|| declined("the current context has no cluster"))?;
    let user_name =
        text(context, "user").ok_or_else(|| declined("the current context has no user"))?;
    let cluster = entry(&doc, "clusters", "cluster", cluster_name)?;
    let user = entry(&doc, "users", "user", user_name)?;

    for key in ["proxy-url", "insecure-skip-tls-verify"] {
        if cluster.get(key).is_some_and(|v| v.as_bool() != Some(false)) {
            return Err(declined(format!("the cluster sets {key}")));
        }
    }
    for key in [
        "exec",
        "auth-provider",
        "username",
        "password",
        "as",
        "as-groups",
    ] {
        if user.get(key).is_some_and(|v| !v.is_null()) {
            return Err(declined(format!("the user sets {key}")));
        }
    }
    let server = text(cluster, "server").ok_or_else(|| declined("the cluster has no server"))?;
    let url = url::Url::parse(server).map_err(|e| declined(format!("server {server:?}: {e}")))?;
    if url.scheme() != "https" {
        return Err(declined(format!("server {server:?} is not https")));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(declined(format!("server {server:?} has a path")));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(declined(format!("server {server:?} has no host"))),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let server_name = text(cluster, "tls-server-name")
        .unwrap_or(&host)
        .to_string();
    let ca = source(cluster, "certificate-authority", dir)?
        .ok_or_else(|| declined("the cluster has no certificate-authority (system roots)"))?;

    let auth = match (
        source(user, "client-certificate", dir)?,
        source(user, "client-key", dir)?,
    ) {
        (Some(cert), Some(key)) => UserAuth::ClientCert { cert, key },
        (None, None) => {
            if let Some(t) = text(user, "token") {
                UserAuth::Token(Source::Inline(t.as_bytes().to_vec()))
            } else if let Some(f) = text(user, "tokenFile") {
                UserAuth::Token(Source::File(resolve(f, dir)))
            } else {
                return Err(declined("the user has no client certificate or token"));
            }
        }
        _ => {
            return Err(declined(
                "the user has a client certificate without its key",
            ))
        }
    };
    Ok(Access {
        host,
        port,
        server_name,
        ca,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: 'https://10.0.0.9:6443', certificate-authority-data: b3RoZXI=}
- name: lab
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0E=
contexts:
- name: admin@lab
  context: {cluster: lab, user: admin}
current-context: admin@lab
users:
- name: admin
  user:
    client-certificate: pki/admin.crt
    client-key-data: S0VZ
";

    #[test]
    fn the_current_context_gives_server_ca_and_client_certificate() {
        let a = access(ADMIN, "/etc/kubernetes/admin.kubeconfig").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 6443));
        assert_eq!(a.server_name, "127.0.0.1");
        assert_eq!(a.ca, Source::Inline(b"CA".to_vec()));
        assert_eq!(
            a.auth,
            UserAuth::ClientCert {
                cert: Source::File("/etc/kubernetes/pki/admin.crt".into()),
                key: Source::Inline(b"KEY".to_vec()),
            }
        );
    }

    #[test]
    fn a_token_user_and_an_ipv6_server_with_a_default_port() {
        let k = ADMIN
            .replace("https://127.0.0.1:6443", "https://[::1]")
            .replace(
                "    client-certificate: pki/admin.crt\n    client-key-data: S0VZ\n",
                "    tokenFile: token\n",
            );
        let a = access(&k, "admin.kubeconfig").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 443));
        assert_eq!(a.auth, UserAuth::Token(Source::File("token".into())));
    }

    #[test]
    fn what_only_kubectl_can_do_is_declined_with_the_reason() {
        let cases = [
            (
                ADMIN.replace(
                    "    client-key-data: S0VZ\n",
                    "    client-key-data: S0VZ\n    exec: {command: aws}\n",
                ),
                "the user sets exec",
            ),
            (
                ADMIN.replace(
                    "    certificate-authority-data: Q0E=\n",
                    "    insecure-skip-tls-verify: true\n",
                ),
                "the cluster sets insecure-skip-tls-verify",
            ),
            (
                ADMIN.replace("https://127.0.0.1:6443", "http://127.0.0.1:8080"),
                "is not https",
            ),
            (
                ADMIN.replace("    certificate-authority-data: Q0E=\n", ""),
                "system roots",
            ),
            (
                ADMIN.replace("    client-certificate: pki/admin.crt\n", ""),
                "without its key",
            ),
            (
                ADMIN.replace("current-context: admin@lab", "current-context: gone"),
                "no context \"gone\"",
            ),
        ];
        let broken = "users:\n- user: {client-key-data: S0VZ\n";
        assert_eq!(
            access(broken, "/k").unwrap_err().0,
            "not YAML (line 3, column 1)"
        );
        for (k, why) in cases {
            let e = access(&k, "/k").unwrap_err();
            assert!(e.0.contains(why), "{e} (wanted {why})");
        }
    }
}
