//! `kubelet_join_state`: whether a worker must (still) join the cluster, found from what it
//! has: a joined worker holds a usable kubelet client certificate for its node name (valid
//! now, CN `system:node:<name>`, signed by the cluster CA) and its Node is registered. A fact,
//! not a change: it always plans `NoChange` and registers `must_join` and `reason`, which the
//! shipped workers plays use to leave joined workers alone.

use std::time::SystemTime;

use serde::Deserialize;

use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

pub const DEFAULT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The kubelet's current client certificate (certificate then key, as the kubelet writes).
    pub cert: Option<Tpl<String>>,
    /// The node name the kubelet registers as.
    pub node: Tpl<String>,
    /// The cluster CA certificate (PEM) the client certificate must be signed by.
    pub ca: Tpl<String>,
    /// Names of the Nodes registered in the cluster; when given, a worker whose Node is not
    /// among them must join again.
    pub nodes: Option<Tpl<Option<Vec<String>>>>,
}

#[derive(Debug)]
pub struct JoinState {
    cert: String,
    node: String,
    ca: String,
    nodes: Option<Vec<String>>,
    now: SystemTime,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<JoinState, ModuleError> {
        let node = self.node.resolve(cx.templates, cx.vars, cx.what)?;
        if node.is_empty() {
            return Err(ModuleError::Invalid("node: empty node name".into()));
        }
        Ok(JoinState {
            cert: opt(&self.cert, cx)?.unwrap_or_else(|| DEFAULT_CERT.into()),
            node,
            ca: self.ca.resolve(cx.templates, cx.vars, cx.what)?,
            nodes: opt(&self.nodes, cx)?.flatten(),
            now: SystemTime::now(),
        })
    }
}

impl JoinState {
    /// `Ok(why it is joined)` or `Err(why it must join)`.
    fn judge(&self, view: &HostView) -> Result<Result<String, String>, ModuleError> {
        let file = view
            .file(&self.cert)
            .ok_or_else(|| ModuleError::Invalid(format!("{} was not read", self.cert)))?;
        let Some(pem) = file.content.as_deref().filter(|_| file.exists()) else {
            return Ok(Err(format!(
                "no kubelet client certificate at {}",
                self.cert
            )));
        };
        let verdict = check_cert(pem, self.ca.as_bytes(), &self.node, self.now)
            .map(|until| {
                format!(
                    "kubelet client certificate for system:node:{} valid until {until}",
                    self.node
                )
            })
            .map_err(|why| format!("{}: {why}", self.cert));
        Ok(match (verdict, &self.nodes) {
            (Ok(_), Some(nodes)) if !nodes.contains(&self.node) => {
                Err(format!("no Node {} in the cluster", self.node))
            }
            (Ok(ok), Some(_)) => Ok(format!("{ok}, Node registered")),
            (v, _) => v,
        })
    }
}

/// Whether `pem` starts with a certificate usable by the kubelet of `node` at `now`: CN
/// `system:node:<node>`, within its validity, issued and signed by one of `ca`'s certificates.
/// Returns its notAfter.
pub(crate) fn check_cert(
    pem: &[u8],
    ca: &[u8],
    node: &str,
    now: SystemTime,
) -> Result<String, String> {
    use x509_parser::prelude::*;
    let cert_pem = Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .ok_or("no PEM certificate in it")?;
    let (_, cert) =
        parse_x509_certificate(&cert_pem.contents).map_err(|e| format!("unreadable: {e}"))?;
    let want = format!("system:node:{node}");
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .filter_map(|c| c.as_str().ok())
        .collect();
    if cn != [want.as_str()] {
        return Err(format!("issued to {:?}, not {want}", cn.join(",")));
    }
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let at = ASN1Time::from_timestamp(secs).map_err(|e| e.to_string())?;
    let validity = cert.validity();
    if !validity.is_valid_at(at) {
        return Err(format!(
            "not valid now (valid from {} until {})",
            validity.not_before, validity.not_after
        ));
    }
    let cas: Vec<Vec<u8>> = Pem::iter_from_buffer(ca)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect();
    if cas.is_empty() {
        return Err("no cluster CA certificate to check it against".into());
    }
    let signed = cas.iter().any(|der| {
        parse_x509_certificate(der).is_ok_and(|(_, ca)| {
            ca.subject() == cert.issuer() && cert.verify_signature(Some(ca.public_key())).is_ok()
        })
    });
    if !signed {
        return Err(format!(
            "not signed by the cluster CA (issuer {})",
            cert.issuer()
        ));
    }
    let until = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(validity.not_after.timestamp().max(0) as u64);
    Ok(crate::k8s::token::format_rfc3339(until))
}

impl Module for JoinState {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.cert.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let reason = match self.judge(view)? {
            Ok(why) => format!("joined: {why}"),
            Err(why) => format!("must join: {why}"),
        };
        Ok(Planned::NoChange { reason })
    }

    fn output(&self, view: &HostView) -> Vec<(String, minijinja::Value)> {
        let Ok(verdict) = self.judge(view) else {
            return Vec::new();
        };
        let (must, why) = match verdict {
            Ok(w) => (false, w),
            Err(w) => (true, w),
        };
        vec![
            ("must_join".into(), minijinja::Value::from(must)),
            ("reason".into(), minijinja::Value::from(why)),
        ]
    }

    fn changes_host(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hoststate::{FileKind, FileState};

    struct Ca {
        key: rcgen::KeyPair,
        cert: rcgen::Certificate,
    }

    fn ca(cn: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca { key, cert }
    }

    fn client(ca: &Ca, cn: &str, days: (i64, i64)) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days.0);
        p.not_after = now + time::Duration::days(days.1);
        let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    fn state(ca_pem: &str, nodes: Option<Vec<String>>) -> JoinState {
        JoinState {
            cert: DEFAULT_CERT.into(),
            node: "worker-01".into(),
            ca: ca_pem.into(),
            nodes,
            now: SystemTime::now(),
        }
    }

    fn view(pem: Option<&str>) -> HostView {
        let mut v = HostView::new();
        v.set_file(
            DEFAULT_CERT,
            match pem {
                None => FileState::absent(),
                Some(p) => FileState {
                    kind: FileKind::File,
                    mode: 0o600,
                    owner: "root".into(),
                    group: "root".into(),
                    content: Some(p.as_bytes().to_vec()),
                },
            },
        );
        v
    }

    fn verdict(m: &JoinState, v: &HostView) -> (bool, String) {
        let out = m.output(v);
        let Planned::NoChange { reason } = m.plan(v).unwrap() else {
            panic!("a fact never changes the host")
        };
        assert!(reason.ends_with(out[1].1.as_str().unwrap()), "{reason}");
        (out[0].1.is_true(), reason)
    }

    #[test]
    fn a_valid_certificate_for_the_node_from_the_cluster_ca_is_joined() {
        let c = ca("kubernetes");
        let m = state(&c.cert.pem(), Some(vec!["worker-01".into()]));
        let (must, reason) = verdict(
            &m,
            &view(Some(&client(&c, "system:node:worker-01", (-1, 300)))),
        );
        assert!(!must, "{reason}");
        assert!(
            reason.starts_with(
                "joined: kubelet client certificate for system:node:worker-01 valid until"
            ),
            "{reason}"
        );
        assert!(reason.ends_with(", Node registered"), "{reason}");
    }

    #[test]
    fn every_unusable_certificate_or_a_missing_node_must_join() {
        let c = ca("kubernetes");
        let other = ca("kubernetes");
        let pem = c.cert.pem();
        // (cert file, registered Nodes, why it must join)
        type Case<'a> = (Option<String>, Option<Vec<String>>, &'a str);
        let cases: Vec<Case> = vec![
            (
                None,
                None,
                "no kubelet client certificate at /var/lib/kubelet/pki/kubelet-client-current.pem",
            ),
            (Some("garbage".into()), None, "no PEM certificate in it"),
            (
                Some(client(&c, "system:node:worker-02", (-1, 300))),
                None,
                "issued to \"system:node:worker-02\", not system:node:worker-01",
            ),
            (
                Some(client(&c, "system:node:worker-01", (-10, -1))),
                None,
                "not valid now",
            ),
            (
                Some(client(&c, "system:node:worker-01", (1, 300))),
                None,
                "not valid now",
            ),
            // Same subject, another key: only the signature tells them apart.
            (
                Some(client(&other, "system:node:worker-01", (-1, 300))),
                None,
                "not signed by the cluster CA",
            ),
            (
                Some(client(&c, "system:node:worker-01", (-1, 300))),
                Some(vec!["worker-02".into()]),
                "no Node worker-01 in the cluster",
            ),
        ];
        for (file, nodes, why) in cases {
            let m = state(&pem, nodes);
            let (must, reason) = verdict(&m, &view(file.as_deref()));
            assert!(must, "{reason}");
            assert!(reason.starts_with("must join: "), "{reason}");
            assert!(reason.contains(why), "{reason} lacks {why}");
        }
    }
}
