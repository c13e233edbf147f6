//! PRIVATE STOP-GAP COPY of the colleague's `src/pki.rs` API (same names and signatures), so the
//! lab stand-ins build before it lands. Delete this file and replace `mod pki;` in
//! `src/lab/mod.rs` by `pub(crate) use crate::pki;` once `crate::pki` exists.
//!
//! rcgen 0.13 (ring backend) makes keys (ECDSA P-256), certificates and CSRs; x509-parser reads
//! them back. Limitation of this copy: rcgen 0.13 keeps one value per DN attribute type, so only
//! the first organization is written.

#![allow(dead_code)] // the full API of the colleague's module, not all of it used by the lab

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("pki: {0}")]
pub struct PkiError(pub String);

fn e(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |err| PkiError(format!("{what}: {err}"))
}

pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct CertSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub server: bool,
    pub client: bool,
    pub validity: Duration,
}

/// Backdate, as the upstream signer does, so that small clock differences do not matter.
const BACKDATE: Duration = Duration::from_secs(300);

fn window(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

fn dn(cn: &str, orgs: &[String]) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    if let Some(o) = orgs.first() {
        d.push(DnType::OrganizationName, o.as_str());
    }
    d.push(DnType::CommonName, cn);
    d
}

impl Ca {
    pub fn generate(cn: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(e("generating CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e("CA params"))?;
        params.distinguished_name = dn(cn, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        window(&mut params, Duration::from_secs(10 * 365 * 86400));
        let cert = params.self_signed(&key).map_err(e("self-signing CA"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn from_pem(cert: &str, key: &str) -> Result<Ca, PkiError> {
        KeyPair::from_pem(key).map_err(e("CA key"))?;
        CertificateParams::from_ca_cert_pem(cert).map_err(e("CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.to_string(),
            key_pem: key.to_string(),
        })
    }

    /// The issuer as rcgen needs it: same subject and key as the CA certificate on disk.
    fn issuer(&self) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(e("CA key"))?;
        let params =
            CertificateParams::from_ca_cert_pem(&self.cert_pem).map_err(e("CA certificate"))?;
        let cert = params.self_signed(&key).map_err(e("CA issuer"))?;
        Ok((cert, key))
    }

    pub fn issue(&self, spec: &CertSpec) -> Result<Issued, PkiError> {
        let (ca, ca_key) = self.issuer()?;
        let key = KeyPair::generate().map_err(e("generating key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e("params"))?;
        params.distinguished_name = dn(&spec.common_name, &spec.organizations);
        for d in &spec.dns_names {
            let name = d
                .clone()
                .try_into()
                .map_err(|err| PkiError(format!("DNS name {d}: {err}")))?;
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
        window(&mut params, spec.validity);
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(e("signing certificate"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a PKCS#10 request (signature checked) as a client certificate valid for `validity`.
    pub fn sign_csr(&self, csr_pem: &str, validity: Duration) -> Result<String, PkiError> {
        let (ca, ca_key) = self.issuer()?;
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(e("CSR"))?;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.use_authority_key_identifier_extension = true;
        window(&mut csr.params, validity);
        let cert = csr.signed_by(&ca, &ca_key).map_err(e("signing CSR"))?;
        Ok(cert.pem())
    }
}

pub fn new_key_pem() -> Result<String, PkiError> {
    Ok(KeyPair::generate()
        .map_err(e("generating key"))?
        .serialize_pem())
}

pub fn csr_pem(key_pem: &str, cn: &str, orgs: &[String]) -> Result<String, PkiError> {
    let key = KeyPair::from_pem(key_pem).map_err(e("key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e("params"))?;
    params.distinguished_name = dn(cn, orgs);
    let csr = params.serialize_request(&key).map_err(e("CSR"))?;
    csr.pem().map_err(e("CSR PEM"))
}

fn der_blocks(pem: &str, tag: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.map_err(|err| PkiError(format!("PEM: {err}")))?;
        if p.label == tag {
            out.push(p.contents);
        }
    }
    if out.is_empty() {
        return Err(PkiError(format!("no {tag} PEM block")));
    }
    Ok(out)
}

fn names(name: &x509_parser::x509::X509Name) -> (String, Vec<String>) {
    let cn = name
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default()
        .to_string();
    let orgs = name
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    (cn, orgs)
}

pub fn csr_subject(csr_pem: &str) -> Result<(String, Vec<String>), PkiError> {
    use x509_parser::prelude::FromDer;
    let der = der_blocks(csr_pem, "CERTIFICATE REQUEST")?.remove(0);
    let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|err| PkiError(format!("CSR: {err}")))?;
    Ok(names(&req.certification_request_info.subject))
}

fn with_cert<T>(
    pem: &str,
    f: impl Fn(&x509_parser::certificate::X509Certificate) -> T,
) -> Result<Vec<T>, PkiError> {
    der_blocks(pem, "CERTIFICATE")?
        .iter()
        .map(|der| {
            let (_, c) = x509_parser::parse_x509_certificate(der)
                .map_err(|err| PkiError(format!("certificate: {err}")))?;
            Ok(f(&c))
        })
        .collect()
}

/// `sha256:<hex>` of each certificate's SubjectPublicKeyInfo (kubeadm's CA pin format).
pub fn ca_hashes(pem: &str) -> Result<Vec<String>, PkiError> {
    with_cert(pem, |c| {
        let d = Sha256::digest(c.tbs_certificate.subject_pki.raw);
        format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    })
}

pub fn cert_subject(cert_pem: &str) -> Result<(String, Vec<String>), PkiError> {
    Ok(with_cert(cert_pem, |c| names(c.subject()))?.remove(0))
}

pub fn cert_not_after(cert_pem: &str) -> Result<SystemTime, PkiError> {
    let ts = with_cert(cert_pem, |c| c.validity().not_after.timestamp())?.remove(0);
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(ts.max(0) as u64))
}
