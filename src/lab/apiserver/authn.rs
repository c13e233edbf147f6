//! Authentication, as the real kube-apiserver chains it: x509 client certificate (verified by
//! rustls against --client-ca-file during the handshake; CN = user, O = groups), then a bearer
//! token (only the bootstrap token authenticator exists here), then anonymous when
//! --anonymous-auth is on. A bearer token that no authenticator accepts is a 401, never
//! anonymous. Every authenticated user also gets `system:authenticated`.

use base64::Engine;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
}

impl User {
    pub(crate) fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            uid: String::new(),
        }
    }
}

/// Add `system:authenticated` as upstream's AuthenticatedGroupAdder does (not for anonymous).
pub(crate) fn with_authenticated(mut u: User) -> User {
    if !u.groups.iter().any(|g| g == "system:authenticated") {
        u.groups.push("system:authenticated".into());
    }
    u
}

/// User from a client certificate (DER) already verified by the TLS layer.
pub(crate) fn cert_user(der: &[u8]) -> Option<User> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = x509.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(with_authenticated(User {
        name,
        groups,
        uid: String::new(),
    }))
}

/// `^([a-z0-9]{6})\.([a-z0-9]{16})$` → (id, secret).
pub(crate) fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// `^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$` (cluster-bootstrap's group pattern).
pub(crate) fn valid_bootstrap_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let b = rest.as_bytes();
    let Some((&last, body)) = b.split_last() else {
        return false;
    };
    body.len() <= 255
        && body
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b':' || c == b'-')
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
}

fn secret_data(secret: &Value, key: &str) -> String {
    secret["data"][key]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Expired when the expiration instant is reached (now >= expiration) or unparseable;
/// no expiration = never.
pub(crate) fn token_expired(expiration: &str, now: time::OffsetDateTime) -> bool {
    if expiration.is_empty() {
        return false;
    }
    match time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339) {
        Ok(t) => now >= t,
        Err(_) => true,
    }
}

/// The bootstrap token authenticator. `lookup(name)` returns the Secret `name` in kube-system.
/// Ok(user) or Err(reason) — every rejection is a 401 (the reason is only logged).
pub(crate) fn bootstrap_token(
    token: &str,
    lookup: impl Fn(&str) -> Option<Value>,
    now: time::OffsetDateTime,
) -> Result<User, String> {
    let Some((id, secret)) = parse_token(token) else {
        return Err("not a bootstrap token".into());
    };
    let name = format!("bootstrap-token-{id}");
    let Some(s) = lookup(&name) else {
        return Err(format!("no secret kube-system/{name}"));
    };
    let what = |m: &str| format!("bootstrap token secret kube-system/{name} {m}");
    if s["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Err(what("is deleted and awaiting removal"));
    }
    if s["type"].as_str() != Some("bootstrap.kubernetes.io/token") || !s["data"].is_object() {
        return Err(what(
            "has invalid type, expected bootstrap.kubernetes.io/token.",
        ));
    }
    if !constant_time_eq(
        secret_data(&s, "token-secret").as_bytes(),
        secret.as_bytes(),
    ) {
        return Err(what("has invalid value for key token-secret."));
    }
    if secret_data(&s, "token-id") != id {
        return Err(what("has invalid value for key token-id."));
    }
    if token_expired(&secret_data(&s, "expiration"), now) {
        return Err(what("has expired"));
    }
    if secret_data(&s, "usage-bootstrap-authentication") != "true" {
        return Err(what("not marked usage-bootstrap-authentication=true."));
    }
    let mut groups = std::collections::BTreeSet::new();
    groups.insert("system:bootstrappers".to_string());
    let extra = secret_data(&s, "auth-extra-groups");
    if !extra.is_empty() {
        for g in extra.split(',') {
            if !valid_bootstrap_group(g) {
                return Err(what(&format!(
                    "has invalid value for key auth-extra-groups: {g:?} does not match ^system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]$."
                )));
            }
            groups.insert(g.to_string());
        }
    }
    Ok(with_authenticated(User {
        name: format!("system:bootstrap:{id}"),
        groups: groups.into_iter().collect(),
        uid: String::new(),
    }))
}
