//! The kubeadm-style CA pin (`--discovery-token-ca-cert-hash`): sha256 of each certificate's
//! DER SubjectPublicKeyInfo, read with x509-parser.

use sha2::{Digest, Sha256};

/// Why a PEM bundle gave no pin.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no PEM CERTIFICATE found")]
    NoCertificate,
    #[error("reading a certificate: {0}")]
    Cert(String),
    #[error("invalid PEM: {0}")]
    Pem(String),
}

/// `sha256:<hex>` of each certificate's DER SubjectPublicKeyInfo, in bundle order: kubeadm's
/// `--discovery-token-ca-cert-hash`.
pub fn ca_hashes(pem_bundle: &str) -> Result<Vec<String>, PkiError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(pem_bundle.as_bytes()) {
        let pem = pem.map_err(|e| PkiError::Pem(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let (_, x509) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| PkiError::Cert(e.to_string()))?;
        let digest = Sha256::digest(x509.public_key().raw);
        out.push(format!(
            "sha256:{}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
    }
    if out.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn ca_pem(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn openssl() -> bool {
        Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn ca_hash_matches_openssl_pipeline() {
        let a = ca_pem("a");
        let b = ca_pem("b");
        let hashes = ca_hashes(&format!("{a}{b}")).unwrap();
        assert_eq!(hashes.len(), 2);
        assert!(hashes
            .iter()
            .all(|h| h.starts_with("sha256:") && h.len() == 71));
        assert_ne!(hashes[0], hashes[1]);
        assert!(ca_hashes("nothing").is_err());
        if !openssl() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("bootstrapctl-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("hash-ca.crt");
        std::fs::write(&f, &a).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | sha256sum",
                f.display()
            ))
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let want = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(hashes[0], format!("sha256:{want}"));
    }
}
