//! Bootstrap-token rules, once for every stand-in that reads token Secrets (the API server's
//! authenticator, the bootstrapsigner and the tokencleaner): the token format, the Secret's
//! shape, expiry, usages and extra groups, as k8s.io/cluster-bootstrap defines them.
//!
//! bootstrapctl has its own copy of these rules, and that is on purpose: the lab is what
//! bootstrapctl is checked against, so it follows the upstream definitions on its own rather
//! than agreeing with bootstrapctl's code (a mistake shared by both would pass every test).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The type of a bootstrap-token Secret.
pub(crate) const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// A token's Secret is `kube-system/bootstrap-token-<token-id>`.
pub(crate) const SECRET_PREFIX: &str = "bootstrap-token-";
/// cluster-bootstrap's pattern for `auth-extra-groups` entries.
pub(crate) const EXTRA_GROUP_PATTERN: &str = "^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$";

fn lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `[a-z0-9]{6}`.
pub(crate) fn valid_id(s: &str) -> bool {
    lower_alnum(s, 6)
}

/// `[a-z0-9]{16}`.
pub(crate) fn valid_secret(s: &str) -> bool {
    lower_alnum(s, 16)
}

/// `^([a-z0-9]{6})\.([a-z0-9]{16})$` → (id, secret).
pub(crate) fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (valid_id(id) && valid_secret(secret)).then_some((id, secret))
}

/// An `auth-extra-groups` entry matches [`EXTRA_GROUP_PATTERN`].
pub(crate) fn valid_extra_group(g: &str) -> bool {
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

/// A Secret's data as strings: `data` (base64, as the API returns it), else `stringData`.
pub(crate) fn secret_data(s: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = s["stringData"].as_object() {
        for (k, v) in m {
            out.insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
    }
    if let Some(m) = s["data"].as_object() {
        for (k, v) in m {
            let raw = v.as_str().unwrap_or("");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            if let Some(d) = decoded {
                out.insert(k.clone(), d);
            }
        }
    }
    out
}

/// A token Secret's `usage-bootstrap-<usage>` is exactly `true` (`authentication`, `signing`).
pub(crate) fn has_usage(data: &BTreeMap<String, String>, usage: &str) -> bool {
    data.get(&format!("usage-bootstrap-{usage}"))
        .is_some_and(|v| v == "true")
}

/// A token Secret's `expiration`, as cluster-bootstrap's GetExpiration reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No (or an empty) expiration: the token never expires.
    Never,
    At(OffsetDateTime),
    /// Not RFC 3339: counts as expired.
    Unparseable,
}

impl Expiry {
    pub(crate) fn of(data: &BTreeMap<String, String>) -> Expiry {
        match data.get("expiration").map(String::as_str) {
            None | Some("") => Expiry::Never,
            Some(s) => OffsetDateTime::parse(s, &Rfc3339).map_or(Expiry::Unparseable, Expiry::At),
        }
    }

    /// Expired at the instant itself (now >= expiration).
    pub(crate) fn expired(self, now: OffsetDateTime) -> bool {
        match self {
            Expiry::Never => false,
            Expiry::At(t) => now >= t,
            Expiry::Unparseable => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_groups() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef0123456789abcdef",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(valid_extra_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!valid_extra_group("system:bootstrappers:"));
        assert!(!valid_extra_group("system:bootstrappers:a:"));
        assert!(!valid_extra_group("system:masters"));
    }

    #[test]
    fn expiry_as_cluster_bootstrap_reads_it() {
        let data = |e: &str| BTreeMap::from([("expiration".to_string(), e.to_string())]);
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(Expiry::of(&BTreeMap::new()), Expiry::Never);
        assert_eq!(Expiry::of(&data("")), Expiry::Never);
        assert!(Expiry::of(&data("soon")).expired(t));
        let at = Expiry::of(&data("2023-11-14T22:13:20Z"));
        assert_eq!(at, Expiry::At(t));
        assert!(at.expired(t), "expired at the instant itself");
        assert!(!at.expired(t - time::Duration::seconds(1)));
    }
}
