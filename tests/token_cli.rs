//! `token generate` / `token validate`: the API server's rules, offline, exact messages.

use crate::support::run;

#[test]
fn generate_gives_distinct_valid_tokens() {
    let a = run(["token", "generate"]);
    let b = run(["token", "generate"]);
    assert_eq!((a.code, b.code), (0, 0));
    assert_ne!(a.stdout, b.stdout);
    let t = a.stdout.trim();
    assert!(t.len() == 23 && t.as_bytes()[6] == b'.', "{t}");
    assert!(
        t.bytes()
            .all(|c| c == b'.' || c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{t}"
    );
    let v = run(["token", "validate", t]);
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(
        !v.stdout.contains(&t[7..]),
        "the secret is never printed: {}",
        v.stdout
    );
}

#[test]
fn invalid_tokens_groups_and_expirations_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (&["abcdef.0123456789ABCDEF"], "invalid: token does not match the format [a-z0-9]{6}.[a-z0-9]{16}\n"),
        (
            &["abcdef.0123456789abcdef", "--groups", "system:bootstrappers:worker,system:nodes"],
            "invalid: extra group \"system:nodes\" does not match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]; the API server would reject the whole token\n",
        ),
        (
            &["abcdef.0123456789abcdef", "--expiration", "2026-13-01T00:00:00Z"],
            "invalid: expiration \"2026-13-01T00:00:00Z\" is not an RFC 3339 time such as 2026-12-01T00:00:00Z; the API server treats the token as expired\n",
        ),
        (
            &["abcdef.0123456789abcdef", "--expiration", "2001-01-01T00:00:00Z"],
            "invalid: token expired at 2001-01-01T00:00:00Z\n",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["token", "validate"];
        a.extend_from_slice(args);
        let r = run(a);
        assert_eq!(r.code, 1, "{}", r.all());
        assert_eq!(r.stdout, want);
    }
}
