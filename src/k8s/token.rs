//! Bootstrap tokens as the API server's bootstrap token authenticator reads them:
//! `[a-z0-9]{6}.[a-z0-9]{16}`, a Secret `bootstrap-token-<id>` in kube-system of type
//! `bootstrap.kubernetes.io/token`, an RFC 3339 expiration, usages, extra groups.

use std::fmt;
use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const SECRET_PREFIX: &str = "bootstrap-token-";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A bootstrap token. Its Debug and Display show the id only: the secret never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token does not match the format [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    Format,
    #[error("extra group {0:?} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]; the API server would reject the whole token")]
    Group(String),
    #[error("expiration {0:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z; the API server treats the token as expired")]
    Expiration(String),
    #[error("token expired at {0}")]
    Expired(String),
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(String),
}

impl BootstrapToken {
    /// Parse `id.secret` with the authenticator's exact rules.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let (id, secret) = s.split_once('.').ok_or(TokenError::Format)?;
        let ok = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
        };
        if !ok(id, 6) || !ok(secret, 16) {
            return Err(TokenError::Format);
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A new token from the OS CSPRNG, each character uniform over [a-z0-9].
    pub fn generate() -> Result<Self, TokenError> {
        let mut chars = String::with_capacity(22);
        while chars.len() < 22 {
            let mut buf = [0u8; 32];
            getrandom::fill(&mut buf).map_err(|e| TokenError::Random(e.to_string()))?;
            // Rejection sampling: 252 = 7 * 36 keeps every character equally likely.
            for b in buf.iter().filter(|b| **b < 252) {
                if chars.len() < 22 {
                    chars.push(ALPHABET[(*b % 36) as usize] as char);
                }
            }
        }
        Ok(BootstrapToken {
            id: chars[..6].to_string(),
            secret: chars[6..].to_string(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn secret(&self) -> &str {
        &self.secret
    }
    /// `id.secret`: only for writing where the token belongs (a Secret, a kubeconfig).
    pub fn full(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.<redacted>", self.id)
    }
}

/// The authenticator rejects the whole token when any extra group does not match
/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
pub fn validate_group(g: &str) -> Result<(), TokenError> {
    let bad = || TokenError::Group(g.to_string());
    let rest = g.strip_prefix("system:bootstrappers:").ok_or_else(bad)?;
    let valid_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-';
    let last = *rest.as_bytes().last().ok_or_else(bad)?;
    if rest.len() > 256
        || !rest.bytes().all(valid_char)
        || !(last.is_ascii_lowercase() || last.is_ascii_digit())
    {
        return Err(bad());
    }
    Ok(())
}

/// Parse an RFC 3339 expiration. Unparseable means expired, as in the authenticator.
pub fn parse_expiration(s: &str) -> Result<SystemTime, TokenError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| TokenError::Expiration(s.to_string()))
}

/// Expired at the expiration instant, as the authenticator decides.
pub fn check_expiration(s: &str, now: SystemTime) -> Result<SystemTime, TokenError> {
    let at = parse_expiration(s)?;
    if now >= at {
        return Err(TokenError::Expired(s.to_string()));
    }
    Ok(at)
}

pub fn format_rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::from(t))
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// `24h`, `15m`, `90s`, `1h30m`, `0` (no expiry): kubeadm's TTL syntax (Go durations).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {c:?}")),
        };
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        total += n * unit;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. 24h, 15m, 1h30m"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_rules_as_the_authenticator() {
        assert!(BootstrapToken::parse("abcdef.0123456789abcdef").is_ok());
        for bad in [
            "abcdef.0123456789abcde",
            "abcdefg.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef-0123456789abcdef",
            "abcdef.0123456789abcdeF",
            "abc_ef.0123456789abcdef",
            "",
        ] {
            assert_eq!(BootstrapToken::parse(bad), Err(TokenError::Format), "{bad}");
        }
    }

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = BootstrapToken::generate().unwrap();
        let b = BootstrapToken::generate().unwrap();
        assert!(BootstrapToken::parse(&a.full()).is_ok());
        assert_ne!(a, b);
        assert!(!format!("{a} {a:?}").contains(a.secret()));
    }

    #[test]
    fn extra_groups() {
        for ok in [
            "system:bootstrappers:worker",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:bootstrappers:a",
        ] {
            assert!(validate_group(ok).is_ok(), "{ok}");
        }
        for bad in [
            "system:bootstrappers",
            "system:bootstrappers:",
            "system:bootstrappers:Worker",
            "system:bootstrappers:worker-",
            "system:nodes",
            "foo",
        ] {
            assert!(validate_group(bad).is_err(), "{bad}");
        }
        let long = format!("system:bootstrappers:{}", "a".repeat(257));
        assert!(validate_group(&long).is_err());
    }

    #[test]
    fn expiration_is_exclusive_at_the_instant() {
        let at = parse_expiration("2026-12-01T00:00:00Z").unwrap();
        assert!(check_expiration("2026-12-01T00:00:00Z", at - Duration::from_secs(1)).is_ok());
        assert!(check_expiration("2026-12-01T00:00:00Z", at).is_err());
        assert_eq!(parse_expiration("2026-12-01T01:00:00+01:00").unwrap(), at);
        assert!(matches!(
            parse_expiration("tomorrow"),
            Err(TokenError::Expiration(_))
        ));
        assert_eq!(format_rfc3339(at), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_ttl("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("0").unwrap(), Duration::ZERO);
        assert!(parse_ttl("1d").is_err());
        assert!(parse_ttl("10").is_err());
    }
}
