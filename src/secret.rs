//! Secrets: values registered here are replaced by `<redacted>` in everything the tool prints.

use std::sync::{Arc, OnceLock, RwLock};

pub const REDACTED: &str = "<redacted>";

/// Variable names whose values are secrets wherever they appear.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "password", "passwd", "secret", "private_key"]
        .iter()
        .any(|s| n.ends_with(s))
}

/// Every line printed, every diff, every error and the JSON report pass through one Redactor.
/// Secrets shorter than 4 bytes are not registered: replacing them would mangle ordinary text.
/// Besides the registered values, anything shaped like a bootstrap token (`[a-z0-9]{6}.
/// [a-z0-9]{16}` as one word) is replaced: such a value may reach an error message before
/// the run has read the variable that holds it (a `-e` argument that fails to parse).
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

/// The process's redactor: a run registers its secrets here, and the final error print at
/// the top reads it, so an error raised anywhere after registration prints redacted.
pub fn process_redactor() -> Arc<Redactor> {
    static R: OnceLock<Arc<Redactor>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Redactor::new())).clone()
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < 4 {
            return;
        }
        let mut secrets = self.secrets.write().expect("redactor lock");
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().expect("redactor lock");
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        redact_token_shapes(&out)
    }
}

/// Replace every word shaped like a bootstrap token (`id.secret`, 6 + 16 of [a-z0-9]).
fn redact_token_shapes(text: &str) -> String {
    let b = text.as_bytes();
    let tok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i + 23 <= b.len() {
        let starts_word = i == 0 || !word(b[i - 1]);
        let ends_word = i + 23 == b.len() || !word(b[i + 23]);
        if starts_word
            && ends_word
            && b[i..i + 6].iter().all(|&c| tok(c))
            && b[i + 6] == b'.'
            && b[i + 7..i + 23].iter().all(|&c| tok(c))
        {
            out.push_str(&text[last..i]);
            out.push_str(REDACTED);
            i += 23;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `text` with the value of every `NAME=VALUE` word whose NAME is a secret name masked
/// (`bootstrap_token=<redacted>`): for arguments shown in errors before they could be parsed.
pub fn mask_assignments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        match word.split_once('=') {
            Some((name, _)) if is_secret_name(name.trim_start_matches(['\'', '"'])) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_longest_first_and_ignores_tiny_values() {
        let r = Redactor::new();
        r.register("abc");
        r.register("abcdef.0123456789abcdef");
        r.register("abcdef");
        assert_eq!(
            r.redact("token abcdef.0123456789abcdef id abcdef abc"),
            "token <redacted> id <redacted> abc"
        );
    }

    #[test]
    fn token_shaped_words_are_redacted_unregistered() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("a 07401b.f395accd246ae52d, \"9a8b7c.0123456789abcdef\" b"),
            "a <redacted>, \"<redacted>\" b"
        );
        // Longer words that merely contain the shape are left alone.
        let text = "host x07401b.f395accd246ae52d and 07401b.f395accd246ae52dz";
        assert_eq!(r.redact(text), text);
    }

    #[test]
    fn masks_secret_assignments_only() {
        assert_eq!(
            mask_assignments("api=https://x bootstrap_token=abc.def  DB_PASSWORD='x y"),
            "api=https://x bootstrap_token=<redacted>  DB_PASSWORD=<redacted> y"
        );
    }
}
