//! The detached JWS that the bootstrap signer keeps in cluster-info for each signing token:
//! HS256 keyed with the token secret, protected header `{"alg":"HS256","kid":"<id>"}`,
//! stored as `<header>..<signature>` (the payload, the kubeconfig, left out).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::token::BootstrapToken;

/// The detached JWS of `content` for `token`, exactly as the bootstrap signer computes it.
pub fn detached(content: &[u8], token: &BootstrapToken) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id()));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.secret().as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}..{sig}")
}

/// Whether `jws` is the detached signature of `content` by `token`, compared in constant time
/// as kubeadm's discovery does.
pub fn verify(jws: &str, content: &[u8], token: &BootstrapToken) -> bool {
    let want = detached(content, token);
    want.len() == jws.len()
        && want
            .bytes()
            .zip(jws.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let content = b"apiVersion: v1\nkind: Config\n";
        let jws = detached(content, &token);
        let (header, sig) = jws.split_once("..").unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"HS256","kid":"abcdef"}"#
        );
        // The same signature from openssl, when it is there to ask.
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
        if let Ok(out) = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "0123456789abcdef", "-binary"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(signing_input.as_bytes())?;
                c.wait_with_output()
            })
        {
            if out.status.success() {
                assert_eq!(URL_SAFE_NO_PAD.encode(out.stdout), sig);
            }
        }
        assert!(verify(&jws, content, &token));
        assert!(!verify(&jws, b"other", &token));
        let other = BootstrapToken::parse("abcdef.0123456789abcdee").unwrap();
        assert!(!verify(&jws, content, &other));
    }
}
