//! Secrets: values registered here are replaced by `<redacted>` in everything the tool prints.

use std::sync::RwLock;

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
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
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
        out
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.read().expect("redactor lock").is_empty()
    }
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
}
