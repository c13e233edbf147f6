//! The lab's PKI: a CA, server and client certificates and PKCS#10 CSRs, built on rcgen
//! (generation, signing) and x509-parser (reading certificates and CSRs). bootstrapctl reads
//! certificates with code of its own, on purpose: the lab checks bootstrapctl rather than
//! agreeing with it.
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), which Go's
//! `tls.X509KeyPair` (kubectl, kubelet) and rustls both accept. Certificates carry a random
//! serial, an authority key identifier, and `not_before` five minutes in the past so that a
//! freshly issued certificate is accepted by a peer whose clock is slightly behind.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;

/// Everything that can go wrong building or reading PKI material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    #[error("generating or signing: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("reading a private key: {0}")]
    Key(rcgen::Error),
    #[error("no PEM {0} found")]
    NoPem(&'static str),
    #[error("reading a certificate: {0}")]
    Cert(String),
    #[error("reading a certificate signing request: {0}")]
    Csr(String),
    #[error("invalid {field}: {detail}")]
    Invalid { field: &'static str, detail: String },
}

/// A certificate authority: its certificate and private key, both PEM.
#[derive(Debug, Clone)]
pub(crate) struct Ca {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A certificate issued with a new key.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// What to put in an issued certificate.
#[derive(Debug, Clone)]
pub(crate) struct CertSpec {
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addresses: Vec<IpAddr>,
    /// Extended key usage serverAuth.
    pub(crate) server: bool,
    /// Extended key usage clientAuth.
    pub(crate) client: bool,
    pub(crate) validity: Duration,
}

/// How far back `not_before` is set (clock skew between lab processes and peers).
const BACKDATE: Duration = Duration::from_secs(300);

impl Ca {
    /// A new self-signed CA (ECDSA P-256, ten years), as kubeadm's `ca.crt`.
    pub(crate) fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::CrlSign,
        ];
        set_validity(&mut params, Duration::from_secs(10 * 365 * 24 * 3600));
        params.serial_number = Some(random_serial(&key.public_key_der()));
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CA from existing PEM files (the certificate must be the first one in `cert_pem`).
    pub(crate) fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let ca = Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        };
        // Fail early on unusable material, and on a key that is not the certificate's.
        let (_, key) = ca.signer()?;
        let der = first_pem(cert_pem, "CERTIFICATE")?;
        let (_, x509) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Cert(e.to_string()))?;
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(PkiError::Invalid {
                field: "CA key",
                detail: "the private key does not match the CA certificate".into(),
            });
        }
        Ok(ca)
    }

    /// The CA as rcgen needs it to sign: its parameters re-signed with its own key (same
    /// subject, key and key identifier, so issued certificates chain to the real CA cert).
    fn signer(&self) -> Result<(Certificate, KeyPair), PkiError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(PkiError::Key)?;
        let params =
            CertificateParams::from_ca_cert_pem(&self.cert_pem).map_err(PkiError::Rcgen)?;
        let cert = params.self_signed(&key)?;
        Ok((cert, key))
    }

    /// Issue a certificate with a new key.
    pub(crate) fn issue(&self, spec: &CertSpec) -> Result<Issued, PkiError> {
        let (ca_cert, ca_key) = self.signer()?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&spec.common_name, &spec.organizations)?;
        for d in &spec.dns_names {
            let name = d.clone().try_into().map_err(|_| PkiError::Invalid {
                field: "DNS name",
                detail: d.clone(),
            })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &spec.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if spec.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, spec.validity);
        params.serial_number = Some(random_serial(&key.public_key_der()));
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Sign a PKCS#10 CSR (PEM) as a client certificate keeping its subject; returns the cert PEM.
    /// The CSR's signature is verified; its requested extensions other than SANs are refused.
    pub(crate) fn sign_csr(&self, csr_pem: &str, validity: Duration) -> Result<String, PkiError> {
        self.sign_csr_for(csr_pem, validity, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Sign a CSR as a serving certificate (extended key usage serverAuth), keeping its
    /// subject and its SANs.
    pub(crate) fn sign_serving_csr(
        &self,
        csr_pem: &str,
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_for(csr_pem, validity, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn sign_csr_for(
        &self,
        csr_pem: &str,
        validity: Duration,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<String, PkiError> {
        let (ca_cert, ca_key) = self.signer()?;
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Csr(e.to_string()))?;
        // rcgen's parser folds repeated O attributes into one; rebuild CN + O from the CSR.
        let (cn, orgs) = csr_subject(csr_pem)?;
        csr.params.distinguished_name = dn(&cn, &orgs)?;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![usage];
        csr.params.use_authority_key_identifier_extension = true;
        set_validity(&mut csr.params, validity);
        csr.params.serial_number = Some(random_serial(csr_pem.as_bytes()));
        let cert = csr.signed_by(&ca_cert, &ca_key)?;
        Ok(cert.pem())
    }
}

/// A new ECDSA P-256 private key, PKCS#8 PEM.
pub(crate) fn new_key_pem() -> Result<String, PkiError> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?.serialize_pem())
}

/// A PKCS#10 CSR (PEM) for `key_pem` with subject CN and O (the kubelet's request shape).
pub(crate) fn csr_pem(
    key_pem: &str,
    common_name: &str,
    organizations: &[String],
) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(key_pem).map_err(PkiError::Key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name, organizations)?;
    let csr = params.serialize_request(&key)?;
    Ok(csr.pem()?)
}

/// A CSR as `csr_pem` makes, with subjectAltNames: DNS names and IP addresses.
pub(crate) fn csr_pem_with_sans(
    key_pem: &str,
    common_name: &str,
    organizations: &[String],
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(key_pem).map_err(PkiError::Key)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name, organizations)?;
    for d in dns_names {
        let name = d.clone().try_into().map_err(|_| PkiError::Invalid {
            field: "DNS name",
            detail: d.clone(),
        })?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let csr = params.serialize_request(&key)?;
    Ok(csr.pem()?)
}

/// A self-signed serving certificate for `host` (what a kubelet without serving-certificate
/// bootstrap makes for itself: `<host>@<unix time>` as CN, the host as DNS name).
pub(crate) fn self_signed_serving(host: &str, ips: &[IpAddr]) -> Result<Issued, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    params.distinguished_name = dn(&format!("{host}@{now}"), &[])?;
    if let Ok(name) = host.to_string().try_into() {
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, Duration::from_secs(365 * 24 * 3600));
    params.serial_number = Some(random_serial(&key.public_key_der()));
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The subject (CN, list of O) of a PEM CSR. Does not verify the CSR's signature.
pub(crate) fn csr_subject(csr_pem: &str) -> Result<(String, Vec<String>), PkiError> {
    let der = first_pem(csr_pem, "CERTIFICATE REQUEST")?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| PkiError::Csr(e.to_string()))?;
    name_parts(&csr.certification_request_info.subject).map_err(PkiError::Csr)
}

/// The subject (CN, list of O) of the first certificate in `cert_pem`.
pub(crate) fn cert_subject(cert_pem: &str) -> Result<(String, Vec<String>), PkiError> {
    let der = first_pem(cert_pem, "CERTIFICATE")?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Cert(e.to_string()))?;
    name_parts(x509.subject()).map_err(PkiError::Cert)
}

/// The notAfter instant of the first certificate in `cert_pem`.
#[cfg(test)]
fn cert_not_after(cert_pem: &str) -> Result<SystemTime, PkiError> {
    let der = first_pem(cert_pem, "CERTIFICATE")?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Cert(e.to_string()))?;
    let ts = x509.validity().not_after.timestamp();
    Ok(if ts >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(ts as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(ts.unsigned_abs())
    })
}

/// A subject with O entries then the CN (Go's pkix order: O before CN).
///
/// rcgen keeps one value per attribute type, so a second O is written under the same OID
/// (2.5.4.10) through a custom type; readers see two O attributes. A third is refused.
fn dn(common_name: &str, organizations: &[String]) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    for (i, o) in organizations.iter().enumerate() {
        let ty = match i {
            0 => DnType::OrganizationName,
            1 => DnType::CustomDnType(vec![2, 5, 4, 10]),
            _ => {
                return Err(PkiError::Invalid {
                    field: "subject",
                    detail: "at most two organizations (O) are supported".into(),
                })
            }
        };
        dn.push(ty, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

/// A positive 16-byte serial from a hash of the time, a process counter and `salt`.
fn random_serial(salt: &[u8]) -> SerialNumber {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(salt);
    let mut bytes = h.finalize()[..16].to_vec();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn name_parts(name: &x509_parser::x509::X509Name<'_>) -> Result<(String, Vec<String>), String> {
    let cn = match name.iter_common_name().next() {
        Some(a) => a.as_str().map_err(|e| e.to_string())?.to_string(),
        None => String::new(),
    };
    let orgs = name
        .iter_organization()
        .map(|a| a.as_str().map(str::to_string).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((cn, orgs))
}

fn all_pem(text: &str, label: &'static str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| PkiError::Invalid {
            field: "PEM",
            detail: e.to_string(),
        })?;
        if pem.label == label
            || (label == "CERTIFICATE REQUEST" && pem.label == "NEW CERTIFICATE REQUEST")
        {
            out.push(pem.contents);
        }
    }
    Ok(out)
}

fn first_pem(text: &str, label: &'static str) -> Result<Vec<u8>, PkiError> {
    all_pem(text, label)?
        .into_iter()
        .next()
        .ok_or(PkiError::NoPem(label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn openssl() -> bool {
        Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn tmp(name: &str, content: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bootstrapctl-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn spec(cn: &str, orgs: &[&str]) -> CertSpec {
        CertSpec {
            common_name: cn.into(),
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            server: true,
            client: true,
            validity: Duration::from_secs(3600),
        }
    }

    #[test]
    fn issue_and_read_back() {
        let ca = Ca::generate("kubernetes").unwrap();
        let ca2 = Ca::from_pem(&ca.cert_pem, &ca.key_pem).unwrap();
        let issued = ca2
            .issue(&spec("admin", &["system:masters", "ops"]))
            .unwrap();
        assert_eq!(
            cert_subject(&issued.cert_pem).unwrap(),
            (
                "admin".to_string(),
                vec!["system:masters".to_string(), "ops".to_string()]
            )
        );
        let left = cert_not_after(&issued.cert_pem)
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
        assert_eq!(cert_subject(&ca.cert_pem).unwrap().0, "kubernetes");
    }

    #[test]
    fn from_pem_refuses_a_foreign_key() {
        let ca = Ca::generate("a").unwrap();
        let other = new_key_pem().unwrap();
        assert!(Ca::from_pem(&ca.cert_pem, &other).is_err());
        assert!(Ca::from_pem("junk", &ca.key_pem).is_err());
    }

    #[test]
    fn csr_round_trip_and_signing() {
        let ca = Ca::generate("kubernetes").unwrap();
        let key = new_key_pem().unwrap();
        let csr = csr_pem(&key, "system:node:worker-01", &["system:nodes".into()]).unwrap();
        assert!(csr.contains("BEGIN CERTIFICATE REQUEST"));
        assert_eq!(
            csr_subject(&csr).unwrap(),
            (
                "system:node:worker-01".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        let cert = ca.sign_csr(&csr, Duration::from_secs(8760 * 3600)).unwrap();
        assert_eq!(
            cert_subject(&cert).unwrap(),
            (
                "system:node:worker-01".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        assert!(ca.sign_csr("not a csr", Duration::from_secs(1)).is_err());
        if openssl() {
            let ca_f = tmp("csr-ca.crt", &ca.cert_pem);
            let c_f = tmp("csr-node.crt", &cert);
            let out = Command::new("openssl")
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(&ca_f)
                .arg(&c_f)
                .output()
                .unwrap();
            assert!(out.status.success(), "{:?}", out);
            // The certificate holds the CSR's public key.
            let pk_cert = Command::new("openssl")
                .args(["x509", "-pubkey", "-noout", "-in"])
                .arg(&c_f)
                .output()
                .unwrap();
            let k_f = tmp("csr-node.key", &key);
            let pk_key = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&k_f)
                .output()
                .unwrap();
            assert_eq!(pk_cert.stdout, pk_key.stdout);
        }
    }

    #[test]
    fn issued_certs_verify_with_openssl() {
        if !openssl() {
            return;
        }
        let ca = Ca::generate("kubernetes").unwrap();
        let server = ca.issue(&spec("kube-apiserver", &[])).unwrap();
        let ca_f = tmp("ca.crt", &ca.cert_pem);
        let s_f = tmp("server.crt", &server.cert_pem);
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(&ca_f)
            .arg(&s_f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&s_f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("DNS:localhost"), "{text}");
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        // Another CA does not verify it.
        let other = Ca::generate("other").unwrap();
        let o_f = tmp("other.crt", &other.cert_pem);
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&o_f)
            .arg(&s_f)
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
}
