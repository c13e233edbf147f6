//! Kubelet serving CSRs (`kubernetes.io/kubelet-serving`): which CSR objects concern a node,
//! where each stands, and the checks made before approving one. The checks are those of
//! postfinance/kubelet-csr-approver, narrowed to what bootstrapctl knows of its hosts: the
//! requester is the node itself (`system:node:<name>` in `system:nodes`), the signer and the
//! usages are exactly a serving certificate's, the subject is `system:node:<name>` /
//! `system:nodes`, and every SAN is the node's name or one of its known addresses (no email or
//! URI SANs). The kube-controller-manager never approves these (kubernetes/kubernetes#73356):
//! a node could otherwise get a certificate for any name or IP it likes.

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::Value as Json;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
pub const NODES_GROUP: &str = "system:nodes";
/// The usages a kubelet asks for, and the only ones approved.
pub const SERVING_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

/// What a CSR's PKCS#10 request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub emails: Vec<String>,
    pub uris: Vec<String>,
}

/// Why a CSR is not read or not approved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("spec.request is not a base64 PEM certificate request: {0}")]
    Encoding(String),
    #[error("spec.request: {0}")]
    Parse(String),
    #[error("signerName is {0:?}, not {SERVING_SIGNER}")]
    Signer(String),
    #[error("requested by {got:?}, not by the node ({want})")]
    Requester { got: String, want: String },
    #[error("requester is not in group {NODES_GROUP}")]
    Group,
    #[error("usages are [{0}], not exactly [digital signature, key encipherment, server auth]")]
    Usages(String),
    #[error("subject CN is {got:?}, not {want:?}")]
    CommonName { got: String, want: String },
    #[error("subject O is [{0}], not exactly [system:nodes]")]
    Organization(String),
    #[error("{kind} subjectAltNames are not allowed ({values})")]
    ForbiddenSan { kind: &'static str, values: String },
    #[error("no DNS or IP subjectAltName")]
    NoSan,
    #[error("DNS subjectAltName {0:?} is not the node's name or one of its addresses")]
    Dns(String),
    #[error("IP subjectAltName {0} is not an address of the node")]
    Ip(IpAddr),
}

/// Decodes `spec.request` (base64 of a PEM CSR) and reads its subject and SANs.
pub fn parse_request(spec_request: &str) -> Result<Request, CsrError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(spec_request.trim())
        .map_err(|e| CsrError::Encoding(e.to_string()))?;
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(&raw).map_err(|e| CsrError::Encoding(e.to_string()))?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| CsrError::Parse(e.to_string()))?;
    let subject = &req.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str()
            .map(str::to_string)
            .map_err(|e| CsrError::Parse(e.to_string()))
    };
    let mut r = Request {
        common_name: match subject.iter_common_name().next() {
            Some(a) => text(a)?,
            None => String::new(),
        },
        organizations: subject
            .iter_organization()
            .map(text)
            .collect::<Result<_, _>>()?,
        ..Request::default()
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for n in &san.general_names {
            match n {
                GeneralName::DNSName(d) => r.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => r
                        .ips
                        .push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes"))),
                    16 => r
                        .ips
                        .push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes"))),
                    _ => return Err(CsrError::Parse("an IP SAN of bad length".into())),
                },
                GeneralName::RFC822Name(e) => r.emails.push(e.to_string()),
                GeneralName::URI(u) => r.uris.push(u.to_string()),
                other => r.uris.push(other.to_string()),
            }
        }
    }
    Ok(r)
}

/// Where a CSR stands, from its conditions and certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Pending,
    Approved,
    Issued,
    Denied,
    Failed,
}

fn condition(csr: &Json, kind: &str) -> bool {
    csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"].as_str().unwrap_or("True") == "True")
}

pub fn standing(csr: &Json) -> Standing {
    if condition(csr, "Denied") {
        Standing::Denied
    } else if condition(csr, "Failed") {
        Standing::Failed
    } else if !condition(csr, "Approved") {
        Standing::Pending
    } else if csr["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        Standing::Issued
    } else {
        Standing::Approved
    }
}

pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// A serving CSR that names this node: filed as it, or asking for its name in the subject.
#[cfg(test)]
pub fn concerns(csr: &Json, node: &str) -> bool {
    if csr["spec"]["signerName"].as_str() != Some(SERVING_SIGNER) {
        return false;
    }
    let user = node_user(node);
    csr["spec"]["username"].as_str() == Some(user.as_str())
        || csr["spec"]["request"]
            .as_str()
            .and_then(|r| parse_request(r).ok())
            .is_some_and(|r| r.common_name == user)
}

/// A serving CSR filed by the node itself (whatever it asks for).
#[cfg(test)]
pub fn filed_by(csr: &Json, node: &str) -> bool {
    csr["spec"]["signerName"].as_str() == Some(SERVING_SIGNER)
        && csr["spec"]["username"].as_str() == Some(node_user(node).as_str())
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Every check, in the order kubelet-csr-approver makes them; the first that fails is the
/// reason. `addresses` are the node's inventory and fact addresses (IPs or DNS names).
pub fn check(csr: &Json, node: &str, addresses: &[String]) -> Result<(), CsrError> {
    let spec = &csr["spec"];
    let signer = spec["signerName"].as_str().unwrap_or("");
    if signer != SERVING_SIGNER {
        return Err(CsrError::Signer(signer.into()));
    }
    let want = node_user(node);
    let user = spec["username"].as_str().unwrap_or("");
    if user != want {
        return Err(CsrError::Requester {
            got: user.into(),
            want,
        });
    }
    if !strings(&spec["groups"]).iter().any(|g| g == NODES_GROUP) {
        return Err(CsrError::Group);
    }
    let mut usages = strings(&spec["usages"]);
    usages.sort();
    usages.dedup();
    let mut wanted: Vec<String> = SERVING_USAGES.iter().map(|u| u.to_string()).collect();
    wanted.sort();
    if usages != wanted {
        return Err(CsrError::Usages(strings(&spec["usages"]).join(", ")));
    }
    let r = parse_request(spec["request"].as_str().unwrap_or(""))?;
    if r.common_name != want {
        return Err(CsrError::CommonName {
            got: r.common_name,
            want,
        });
    }
    if r.organizations != [NODES_GROUP] {
        return Err(CsrError::Organization(r.organizations.join(", ")));
    }
    if !r.emails.is_empty() {
        return Err(CsrError::ForbiddenSan {
            kind: "email",
            values: r.emails.join(", "),
        });
    }
    if !r.uris.is_empty() {
        return Err(CsrError::ForbiddenSan {
            kind: "URI",
            values: r.uris.join(", "),
        });
    }
    if r.dns_names.is_empty() && r.ips.is_empty() {
        return Err(CsrError::NoSan);
    }
    let ips: Vec<IpAddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    for d in &r.dns_names {
        let known = d.eq_ignore_ascii_case(node)
            || addresses
                .iter()
                .any(|a| a.parse::<IpAddr>().is_err() && a.eq_ignore_ascii_case(d));
        if !known {
            return Err(CsrError::Dns(d.clone()));
        }
    }
    if let Some(ip) = r.ips.iter().find(|ip| !ips.contains(ip)) {
        return Err(CsrError::Ip(*ip));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A PEM CSR made by rcgen (as a kubelet's Go code would make one).
    fn pem(cn: &str, orgs: &[&str], sans: Vec<rcgen::SanType>) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.subject_alt_names = sans;
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn dns(d: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(d.to_string().try_into().unwrap())
    }
    fn ip(i: &str) -> rcgen::SanType {
        rcgen::SanType::IpAddress(i.parse().unwrap())
    }

    fn csr(user: &str, usages: &[&str], request: &str) -> Json {
        json!({"metadata": {"name": "csr-x"}, "spec": {
            "signerName": SERVING_SIGNER, "username": user,
            "groups": ["system:nodes", "system:authenticated"], "usages": usages,
            "request": base64::engine::general_purpose::STANDARD.encode(request)}, "status": {}})
    }

    fn good() -> Json {
        csr(
            "system:node:worker-01",
            &SERVING_USAGES,
            &pem(
                "system:node:worker-01",
                &["system:nodes"],
                vec![dns("worker-01"), ip("127.80.0.2")],
            ),
        )
    }

    fn addrs() -> Vec<String> {
        vec!["127.80.0.2".into()]
    }

    fn reason(c: &Json) -> String {
        check(c, "worker-01", &addrs()).unwrap_err().to_string()
    }

    #[test]
    fn a_kubelets_own_request_passes() {
        assert_eq!(check(&good(), "worker-01", &addrs()), Ok(()));
        // DNS-name inventory addresses count too, case aside.
        let c = csr(
            "system:node:worker-01",
            &SERVING_USAGES,
            &pem(
                "system:node:worker-01",
                &["system:nodes"],
                vec![dns("worker-01.lab.example")],
            ),
        );
        assert_eq!(
            check(&c, "worker-01", &["Worker-01.lab.example".into()]),
            Ok(())
        );
        assert!(concerns(&good(), "worker-01") && filed_by(&good(), "worker-01"));
        assert!(!concerns(&good(), "worker-02"));
    }

    #[test]
    fn requester_must_be_the_node_in_system_nodes() {
        let mut c = good();
        c["spec"]["username"] = json!("system:node:worker-02");
        assert_eq!(
            reason(&c),
            "requested by \"system:node:worker-02\", not by the node (system:node:worker-01)"
        );
        assert!(
            concerns(&c, "worker-01"),
            "it names worker-01 in its subject"
        );
        assert!(!filed_by(&c, "worker-01"));
        let mut c = good();
        c["spec"]["groups"] = json!(["system:authenticated"]);
        assert_eq!(reason(&c), "requester is not in group system:nodes");
    }

    #[test]
    fn signer_and_usages_must_be_exactly_a_serving_certificates() {
        let mut c = good();
        c["spec"]["signerName"] = json!("kubernetes.io/kube-apiserver-client-kubelet");
        assert_eq!(
            reason(&c),
            "signerName is \"kubernetes.io/kube-apiserver-client-kubelet\", not kubernetes.io/kubelet-serving"
        );
        for usages in [
            json!(["digital signature", "server auth"]),
            json!([
                "digital signature",
                "key encipherment",
                "server auth",
                "client auth"
            ]),
        ] {
            let mut c = good();
            c["spec"]["usages"] = usages;
            assert!(reason(&c).starts_with("usages are ["), "{}", reason(&c));
        }
    }

    #[test]
    fn subject_must_be_the_node() {
        let sans = || vec![dns("worker-01")];
        let c = csr(
            "system:node:worker-01",
            &SERVING_USAGES,
            &pem("system:node:worker-02", &["system:nodes"], sans()),
        );
        assert_eq!(
            reason(&c),
            "subject CN is \"system:node:worker-02\", not \"system:node:worker-01\""
        );
        let c = csr(
            "system:node:worker-01",
            &SERVING_USAGES,
            &pem("system:node:worker-01", &["system:masters"], sans()),
        );
        assert_eq!(
            reason(&c),
            "subject O is [system:masters], not exactly [system:nodes]"
        );
    }

    #[test]
    fn sans_only_the_nodes_name_and_addresses() {
        let with = |sans| {
            csr(
                "system:node:worker-01",
                &SERVING_USAGES,
                &pem("system:node:worker-01", &["system:nodes"], sans),
            )
        };
        assert_eq!(
            reason(&with(vec![dns("worker-01"), ip("10.9.9.9")])),
            "IP subjectAltName 10.9.9.9 is not an address of the node"
        );
        assert_eq!(
            reason(&with(vec![dns("worker-02")])),
            "DNS subjectAltName \"worker-02\" is not the node's name or one of its addresses"
        );
        assert_eq!(
            reason(&with(vec![
                dns("worker-01"),
                rcgen::SanType::Rfc822Name("a@b.c".try_into().unwrap())
            ])),
            "email subjectAltNames are not allowed (a@b.c)"
        );
        assert_eq!(
            reason(&with(vec![
                dns("worker-01"),
                rcgen::SanType::URI("spiffe://x/y".try_into().unwrap())
            ])),
            "URI subjectAltNames are not allowed (spiffe://x/y)"
        );
        assert_eq!(reason(&with(vec![])), "no DNS or IP subjectAltName");
        let mut c = good();
        c["spec"]["request"] = json!("bm90IGEgY3NyCg==");
        assert!(
            reason(&c).starts_with("spec.request is not"),
            "{}",
            reason(&c)
        );
    }

    #[test]
    fn standing_from_conditions_and_certificate() {
        let mut c = good();
        assert_eq!(standing(&c), Standing::Pending);
        c["status"]["conditions"] = json!([{"type": "Approved", "status": "True"}]);
        assert_eq!(standing(&c), Standing::Approved);
        c["status"]["certificate"] = json!("LS0t");
        assert_eq!(standing(&c), Standing::Issued);
        c["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        assert_eq!(standing(&c), Standing::Denied);
    }
}
