//! Authentication, as the real kube-apiserver chains it: x509 client certificate (verified by
//! rustls against --client-ca-file during the handshake; CN = user, O = groups), then a bearer
//! token (only the bootstrap token authenticator exists here), then anonymous when
//! --anonymous-auth is on. A bearer token that no authenticator accepts is a 401, never
//! anonymous. Every authenticated user also gets `system:authenticated`.

use serde_json::Value;

use crate::tokens::{self, Expiry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
    pub(crate) uid: String,
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bootstrap token authenticator. `lookup(name)` returns the Secret `name` in kube-system.
/// Ok(user) or Err(reason) — every rejection is a 401 (the reason is only logged).
pub(crate) fn bootstrap_token(
    token: &str,
    lookup: impl Fn(&str) -> Option<Value>,
    now: time::OffsetDateTime,
) -> Result<User, String> {
    let Some((id, secret)) = tokens::parse(token) else {
        return Err("not a bootstrap token".into());
    };
    let name = format!("{}{id}", tokens::SECRET_PREFIX);
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
    if s["type"].as_str() != Some(tokens::SECRET_TYPE) || !s["data"].is_object() {
        return Err(what(
            "has invalid type, expected bootstrap.kubernetes.io/token.",
        ));
    }
    let data = tokens::secret_data(&s);
    let get = |k: &str| data.get(k).map_or("", String::as_str);
    if !constant_time_eq(get("token-secret").as_bytes(), secret.as_bytes()) {
        return Err(what("has invalid value for key token-secret."));
    }
    if get("token-id") != id {
        return Err(what("has invalid value for key token-id."));
    }
    if Expiry::of(&data).expired(now) {
        return Err(what("has expired"));
    }
    if !tokens::has_usage(&data, "authentication") {
        return Err(what("not marked usage-bootstrap-authentication=true."));
    }
    let mut groups = std::collections::BTreeSet::new();
    groups.insert("system:bootstrappers".to_string());
    let extra = get("auth-extra-groups");
    if !extra.is_empty() {
        for g in extra.split(',') {
            if !tokens::valid_extra_group(g) {
                return Err(what(&format!(
                    "has invalid value for key auth-extra-groups: {g:?} does not match {}.",
                    tokens::EXTRA_GROUP_PATTERN
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
