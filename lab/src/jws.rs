//! Detached JWS as the bootstrapsigner writes it: HS256 keyed with the token secret, protected
//! header `{"alg":"HS256","kid":"<token-id>"}`, compact form with the payload left out:
//! `<base64url(header)>..<base64url(signature)>` (base64url without padding, RFC 7515).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(crate) fn detached(content: &str, token_id: &str, token_secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}"));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let mut mac = Hmac::<Sha256>::new_from_slice(token_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}..{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature checked against `openssl dgst -sha256 -hmac` (an independent HMAC) over
    /// the signing input built by hand; skipped without openssl.
    #[test]
    fn known_vector_and_openssl() {
        let content = "apiVersion: v1\nkind: Config\n";
        let jws = detached(content, "abcdef", "0123456789abcdef");
        let (header, sig) = jws.split_once("..").unwrap();
        assert_eq!(header, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9");
        assert_eq!(
            String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap(),
            r#"{"alg":"HS256","kid":"abcdef"}"#
        );
        assert!(!sig.contains('=') && !sig.contains('+') && !sig.contains('/'));
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "0123456789abcdef", "-binary"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(input.as_bytes())?;
                c.wait_with_output()
            });
        match out {
            Ok(o) if o.status.success() => {
                assert_eq!(
                    sig,
                    URL_SAFE_NO_PAD.encode(&o.stdout),
                    "HMAC differs from openssl"
                );
            }
            _ => eprintln!("openssl not available: checked the header only"),
        }
        // RFC 4231 test case 2 as a fixed vector for the HMAC itself.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
