//! POSIX sh quoting: the one place that turns a string into a single shell word, used by the
//! modules' command lines, the batched reads, the executor's scripts, the templates' `quote`
//! filter and the transport's become wrapping.

/// `s` as one sh word, quoted only when it needs to be: words made of the characters below
/// stay as they are, so commands in diffs and logs read as a person would type them.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    quote_always(s)
}

/// `s` single-quoted whatever it holds (the empty string included), for text whose quoting
/// must not depend on its content, such as file contents given to `printf '%s'`.
pub fn quote_always(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_sh_would_split_or_expand() {
        assert_eq!(
            quote("/etc/kubernetes/kubelet.conf"),
            "/etc/kubernetes/kubelet.conf"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote_always("plain"), "'plain'");
    }

    #[test]
    fn quoted_words_come_back_whole_through_sh() {
        for s in ["a b", "it's", "x\ny", "*", "$(id)", "\\", ""] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
