//! csrapproving for kubelet client certificates and csrsigning for kubelet client and serving
//! certificates (signerNames `kubernetes.io/kube-apiserver-client-kubelet` and
//! `kubernetes.io/kubelet-serving`), as upstream:
//! * approving: a CSR whose request is a valid node client CSR is approved (condition
//!   Approved, reason AutoApproved, via /approval) when its requester may `create`
//!   `certificatesigningrequests/selfnodeclient` (renewal: requester username == CSR CN) or
//!   `certificatesigningrequests/nodeclient`. The check is a SubjectAccessReview through the
//!   API; when the server does not serve SubjectAccessReview (404) the stand-in evaluates RBAC
//!   itself from the ClusterRoleBindings and ClusterRoles it can read.
//!   Serving CSRs are never approved here: upstream leaves them to the cluster operator (a
//!   kubelet's serving certificate names addresses the API server cannot vouch for), so they stay
//!   Pending until someone (bootstrapctl, kubelet-csr-approver) approves them.
//! * signing: an approved, not failed, not yet issued kubelet client or serving CSR that passes
//!   its signer's validation is signed with the cluster signing cert/key for
//!   min(--cluster-signing-duration, spec.expirationSeconds) and the certificate written via
//!   /status; one that fails it gets a Failed condition.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::super::kube::{klog, Api, ApiError};
use super::super::pki;
use super::super::timefmt;

pub(crate) const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub(crate) const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const CRBS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const CRS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";

/// What a CSR's PEM asks for, as far as kubelet client validation needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
    pub(crate) dns: usize,
    pub(crate) emails: usize,
    pub(crate) ips: usize,
    pub(crate) uris: usize,
}

pub(crate) fn parse_request(pem: &str) -> Result<Request, String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let (cn, orgs) = pki::csr_subject(pem).map_err(|e| e.to_string())?;
    let mut r = Request {
        common_name: cn,
        organizations: orgs,
        ..Request::default()
    };
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents)
            .map_err(|e| e.to_string())?;
    if let Some(exts) = req.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(_) => r.dns += 1,
                        GeneralName::RFC822Name(_) => r.emails += 1,
                        GeneralName::IPAddress(_) => r.ips += 1,
                        GeneralName::URI(_) => r.uris += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(r)
}

/// Upstream's kubelet client CSR validation: O exactly [system:nodes], no SANs, CN prefixed
/// `system:node:`, usages exactly {digital signature, client auth} with key encipherment allowed.
/// Version difference (found by the real tier's differential table): v1.20's approver wants
/// key encipherment too (exactly {digital signature, key encipherment, client auth}), so this
/// stand-in's kubelet, which leaves it out for its ECDSA key as current kubelets do, is not
/// approved by a 1.20 controller-manager. The stand-ins follow the current release.
pub(crate) fn validate_kubelet_client(r: &Request, usages: &[String]) -> Result<(), String> {
    if r.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if r.dns > 0 {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if r.emails > 0 {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if r.ips > 0 {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if r.uris > 0 {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !r.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let mut u: Vec<&str> = usages.iter().map(String::as_str).collect();
    u.sort();
    u.dedup();
    let ok = u == ["client auth", "digital signature"]
        || u == ["client auth", "digital signature", "key encipherment"];
    if !ok {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

/// Upstream's ValidateKubeletServingCSR: O exactly [system:nodes], no email or URI SANs, at
/// least one DNS or IP SAN, CN prefixed `system:node:`, usages exactly {digital signature,
/// server auth} with key encipherment allowed.
pub(crate) fn validate_kubelet_serving(r: &Request, usages: &[String]) -> Result<(), String> {
    if r.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if r.emails > 0 {
        return Err("email subjectAltNames are not allowed".into());
    }
    if r.uris > 0 {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if r.dns == 0 && r.ips == 0 {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !r.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let mut u: Vec<&str> = usages.iter().map(String::as_str).collect();
    u.sort();
    u.dedup();
    let ok = u == ["digital signature", "server auth"]
        || u == ["digital signature", "key encipherment", "server auth"];
    if !ok {
        return Err("usages did not match [digital signature key encipherment server auth]".into());
    }
    Ok(())
}

fn request_pem(csr: &Value) -> Result<String, String> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(csr["spec"]["request"].as_str().unwrap_or(""))
        .map_err(|e| format!("spec.request: {e}"))?;
    String::from_utf8(b).map_err(|e| format!("spec.request: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    csr["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter().any(|c| {
            c["type"].as_str() == Some(kind) && c["status"].as_str().unwrap_or("True") == "True"
        })
    })
}

fn csr_name(csr: &Value) -> String {
    csr["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// Built-in ClusterRoles the approval depends on, for a server that serves none of them.
fn builtin_rules(role: &str) -> Option<Value> {
    Some(match role {
        "cluster-admin" => json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient" => json!([{
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/nodeclient"], "verbs": ["create"]}]),
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient" => json!([{
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/selfnodeclient"], "verbs": ["create"]}]),
        _ => return None,
    })
}

fn has(list: &Value, want: &str) -> bool {
    strings(list).iter().any(|s| s == "*" || s == want)
}

fn rule_allows(rule: &Value, subresource: &str) -> bool {
    let res = format!("certificatesigningrequests/{subresource}");
    let star_sub = format!("*/{subresource}");
    has(&rule["verbs"], "create")
        && has(&rule["apiGroups"], "certificates.k8s.io")
        && strings(&rule["resources"])
            .iter()
            .any(|r| r == "*" || *r == res || *r == star_sub)
        && strings(&rule["resourceNames"]).is_empty()
}

/// RBAC evaluated by the stand-in (cluster scope: CSRs are cluster-scoped, so only
/// ClusterRoleBindings can grant them).
pub(crate) fn rbac_allows(
    api: &dyn Api,
    user: &str,
    groups: &[String],
    subresource: &str,
) -> Result<bool, ApiError> {
    for b in api.list(CRBS)? {
        let matches = b["subjects"].as_array().is_some_and(|subs| {
            subs.iter().any(|s| {
                let name = s["name"].as_str().unwrap_or("");
                match s["kind"].as_str().unwrap_or("") {
                    "User" => name == user,
                    "Group" => groups.iter().any(|g| g == name),
                    "ServiceAccount" => {
                        user == format!(
                            "system:serviceaccount:{}:{name}",
                            s["namespace"].as_str().unwrap_or("")
                        )
                    }
                    _ => false,
                }
            })
        });
        if !matches || b["roleRef"]["kind"].as_str() != Some("ClusterRole") {
            continue;
        }
        let role = b["roleRef"]["name"].as_str().unwrap_or("");
        let rules = match api.get(&format!("{CRS}/{role}")) {
            Ok(r) => r["rules"].clone(),
            Err(e) if e.not_found() => builtin_rules(role).unwrap_or(Value::Null),
            Err(e) => return Err(e),
        };
        if rules
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| rule_allows(r, subresource)))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// SubjectAccessReview for the CSR's requester; local RBAC evaluation when SAR is not served.
fn authorize(api: &dyn Api, csr: &Value, subresource: &str) -> Result<bool, ApiError> {
    let spec = &csr["spec"];
    let user = spec["username"].as_str().unwrap_or("");
    let groups = strings(&spec["groups"]);
    let sar = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user, "groups": groups, "uid": spec["uid"], "extra": spec["extra"],
            "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                "verb": "create", "subresource": subresource},
        },
    });
    match api.post(SAR, &sar) {
        Ok(r) => Ok(r["status"]["allowed"].as_bool() == Some(true)),
        Err(e) if e.code == 404 || e.code == 405 => rbac_allows(api, user, &groups, subresource),
        Err(e) => Err(e),
    }
}

/// One pass of csrapproving. Returns the names approved.
pub(crate) fn approve(api: &dyn Api) -> Result<Vec<String>, ApiError> {
    let pending: Vec<Value> = api
        .list(CSRS)?
        .into_iter()
        .filter(|csr| {
            !(has_condition(csr, "Approved")
                || has_condition(csr, "Denied")
                || csr["status"]["certificate"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                || csr["spec"]["signerName"].as_str() != Some(KUBELET_CLIENT_SIGNER))
        })
        .collect();
    in_workers(api, pending, approve_one)
}

/// Approves one pending kubelet client CSR when a SubjectAccessReview allows it.
fn approve_one(api: &dyn Api, mut csr: Value) -> Result<Option<String>, ApiError> {
    let name = csr_name(&csr);
    let req = match request_pem(&csr).and_then(|p| parse_request(&p)) {
        Ok(r) => r,
        Err(e) => {
            klog(
                'E',
                "sarapprove.go:80",
                &format!("\"Unable to parse csr\" err=\"{e}\" csr=\"{name}\""),
            );
            return Ok(None);
        }
    };
    if validate_kubelet_client(&req, &strings(&csr["spec"]["usages"])).is_err() {
        return Ok(None);
    }
    let user = csr["spec"]["username"].as_str().unwrap_or("").to_string();
    let mut tried = Vec::new();
    let recognizers = [
        (
            user == req.common_name,
            "selfnodeclient",
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        ),
        (
            true,
            "nodeclient",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        ),
    ];
    for (applies, sub, message) in recognizers {
        if !applies {
            continue;
        }
        tried.push(sub);
        if authorize(api, &csr, sub)? {
            let cond = json!({"type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": message, "lastUpdateTime": timefmt::now_rfc3339(),
                "lastTransitionTime": timefmt::now_rfc3339()});
            let status = csr["status"].as_object().cloned().unwrap_or_default();
            csr["status"] = Value::Object(status);
            match csr["status"]["conditions"].as_array_mut() {
                Some(c) => c.push(cond),
                None => csr["status"]["conditions"] = json!([cond]),
            }
            api.put(&format!("{CSRS}/{name}/approval"), &csr)?;
            klog(
                'I',
                "sarapprove.go:95",
                &format!("\"{message}\" csr=\"{name}\" reason=\"AutoApproved\""),
            );
            return Ok(Some(name));
        }
    }
    if !tried.is_empty() {
        klog(
            'I',
            "sarapprove.go:100",
            &format!(
                "recognized csr \"{name}\" as [{}] but subject access review was not approved",
                tried.join(" ")
            ),
        );
    }
    Ok(None)
}

/// The cluster signing pair, loaded from the flags' files.
pub(crate) struct Signer {
    pub(crate) ca: pki::Ca,
    pub(crate) duration: Duration,
}

/// One pass of csrsigning. Returns the names signed (see [`in_workers`]).
pub(crate) fn sign(api: &dyn Api, signer: &Signer) -> Result<Vec<String>, ApiError> {
    let pending: Vec<Value> = api
        .list(CSRS)?
        .into_iter()
        .filter(|csr| {
            let signer_name = csr["spec"]["signerName"].as_str().unwrap_or("");
            has_condition(csr, "Approved")
                && !has_condition(csr, "Failed")
                && csr["status"]["certificate"]
                    .as_str()
                    .is_none_or(str::is_empty)
                && (signer_name == KUBELET_SERVING_SIGNER || signer_name == KUBELET_CLIENT_SIGNER)
        })
        .collect();
    in_workers(api, pending, |api, csr| sign_one(api, signer, csr))
}

/// Controller workers per pass, as upstream runs 5 for csrapproving and for csrsigning.
const WORKERS: usize = 5;

/// `one` for each of `items`, by up to [`WORKERS`] threads at once when the client can be
/// shared (the real API client), else one after the other. Returns the names `one` gave.
fn in_workers<F>(api: &dyn Api, items: Vec<Value>, one: F) -> Result<Vec<String>, ApiError>
where
    F: Fn(&dyn Api, Value) -> Result<Option<String>, ApiError> + Sync,
{
    let shared = api.shared().filter(|_| items.len() > 1);
    let Some(shared) = shared else {
        let mut done = Vec::new();
        for item in items {
            done.extend(one(api, item)?);
        }
        return Ok(done);
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Result<Option<String>, ApiError>>> = Default::default();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = one(shared, item.clone());
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    let mut done = Vec::new();
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        done.extend(r?);
    }
    Ok(done)
}

/// Validates and signs one approved CSR (a failed validation marks it Failed, as upstream).
fn sign_one(api: &dyn Api, signer: &Signer, mut csr: Value) -> Result<Option<String>, ApiError> {
    {
        let name = csr_name(&csr);
        let signer_name = csr["spec"]["signerName"].as_str().unwrap_or("").to_string();
        let serving = signer_name == KUBELET_SERVING_SIGNER;
        let pem = request_pem(&csr);
        let usages = strings(&csr["spec"]["usages"]);
        let valid = pem.clone().and_then(|p| parse_request(&p)).and_then(|r| {
            if serving {
                validate_kubelet_serving(&r, &usages)
            } else {
                validate_kubelet_client(&r, &usages)
            }
        });
        if let Err(e) = valid {
            let cond = json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": e, "lastUpdateTime": timefmt::now_rfc3339()});
            match csr["status"]["conditions"].as_array_mut() {
                Some(c) => c.push(cond),
                None => csr["status"]["conditions"] = json!([cond]),
            }
            api.put(&format!("{CSRS}/{name}/status"), &csr)?;
            klog(
                'E',
                "signer.go:118",
                &format!("\"Signer validation failed\" csr=\"{name}\" err=\"{e}\""),
            );
            return Ok(None);
        }
        let mut validity = signer.duration;
        if let Some(s) = csr["spec"]["expirationSeconds"].as_u64() {
            validity = validity.min(Duration::from_secs(s));
        }
        let pem = pem.unwrap_or_default();
        let issued = if serving {
            signer.ca.sign_serving_csr(&pem, validity)
        } else {
            signer.ca.sign_csr(&pem, validity)
        };
        let cert = match issued {
            Ok(c) => c,
            Err(e) => {
                klog(
                    'E',
                    "signer.go:130",
                    &format!("\"Unable to sign csr\" csr=\"{name}\" err=\"{e}\""),
                );
                return Ok(None);
            }
        };
        csr["status"]["certificate"] =
            Value::from(base64::engine::general_purpose::STANDARD.encode(cert));
        api.put(&format!("{CSRS}/{name}/status"), &csr)?;
        klog('I', "signer.go:140", &format!("\"Signed certificate signing request\" csr=\"{name}\" signerName=\"{signer_name}\" validity=\"{}s\"", validity.as_secs()));
        Ok(Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeApi;

    fn usages(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn node_csr_validation_table() {
        let good = Request {
            common_name: "system:node:worker-01".into(),
            organizations: vec!["system:nodes".into()],
            ..Request::default()
        };
        let ds_ca = usages(&["digital signature", "client auth"]);
        let table: Vec<(Request, Vec<String>, Result<(), &str>)> = vec![
            (good.clone(), ds_ca.clone(), Ok(())),
            (
                good.clone(),
                usages(&["key encipherment", "digital signature", "client auth"]),
                Ok(()),
            ),
            (
                good.clone(),
                usages(&["client auth", "digital signature", "client auth"]),
                Ok(()),
            ),
            (
                good.clone(),
                usages(&["digital signature", "client auth", "server auth"]),
                Err("usages did not match [client auth digital signature key encipherment]"),
            ),
            (
                good.clone(),
                usages(&["client auth"]),
                Err("usages did not match [client auth digital signature key encipherment]"),
            ),
            (
                Request {
                    organizations: vec![],
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("subject organization is not system:nodes"),
            ),
            (
                Request {
                    organizations: vec!["system:nodes".into(), "system:masters".into()],
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("subject organization is not system:nodes"),
            ),
            (
                Request {
                    organizations: vec!["system:masters".into()],
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("subject organization is not system:nodes"),
            ),
            (
                Request {
                    common_name: "system:bootstrap:abcdef".into(),
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("subject common name does not begin with system:node:"),
            ),
            (
                Request {
                    dns: 1,
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("DNS subjectAltNames are not allowed"),
            ),
            (
                Request {
                    emails: 1,
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("Email subjectAltNames are not allowed"),
            ),
            (
                Request {
                    ips: 1,
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("IP subjectAltNames are not allowed"),
            ),
            (
                Request {
                    uris: 1,
                    ..good.clone()
                },
                ds_ca.clone(),
                Err("URI subjectAltNames are not allowed"),
            ),
        ];
        for (i, (r, u, want)) in table.into_iter().enumerate() {
            assert_eq!(
                validate_kubelet_client(&r, &u),
                want.map_err(str::to_string),
                "row {i}"
            );
        }
    }

    fn csr_object(name: &str, cn: &str, user: &str, groups: &[&str]) -> Value {
        let key = pki::new_key_pem().unwrap();
        let pem = pki::csr_pem(&key, cn, &["system:nodes".to_string()]).unwrap();
        json!({"metadata": {"name": name}, "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": KUBELET_CLIENT_SIGNER, "usages": ["digital signature", "client auth"],
            "username": user, "groups": groups}, "status": {}})
    }

    fn crb(name: &str, role: &str, group: &str) -> Value {
        json!({"metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}]})
    }

    #[test]
    fn approves_only_with_rbac_then_signs() {
        let api = FakeApi::default();
        // A server without SubjectAccessReview: RBAC is evaluated from the bindings.
        api.fail.borrow_mut().insert(
            SAR.into(),
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
        api.insert(
            &format!("{CSRS}/node-csr-a"),
            csr_object(
                "node-csr-a",
                "system:node:worker-01",
                "system:bootstrap:abcdef",
                &["system:bootstrappers", "system:authenticated"],
            ),
        );
        api.insert(
            &format!("{CSRS}/csr-renew"),
            csr_object(
                "csr-renew",
                "system:node:worker-01",
                "system:node:worker-01",
                &["system:nodes", "system:authenticated"],
            ),
        );
        assert!(approve(&api).unwrap().is_empty(), "no binding, no approval");

        api.insert(
            &format!("{CRBS}/auto-approve-csrs-for-group"),
            crb(
                "auto-approve-csrs-for-group",
                "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                "system:bootstrappers",
            ),
        );
        assert_eq!(approve(&api).unwrap(), ["node-csr-a"]);
        let a = api.obj(&format!("{CSRS}/node-csr-a")).unwrap();
        assert_eq!(a["status"]["conditions"][0]["reason"], "AutoApproved");
        assert_eq!(a["status"]["conditions"][0]["type"], "Approved");

        api.insert(
            &format!("{CRBS}/auto-approve-renewals-for-nodes"),
            crb(
                "auto-approve-renewals-for-nodes",
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                "system:nodes",
            ),
        );
        assert_eq!(approve(&api).unwrap(), ["csr-renew"]);
        assert!(
            approve(&api).unwrap().is_empty(),
            "approved ones are left alone"
        );

        let ca = pki::Ca::generate("kubernetes").unwrap();
        let signer = Signer {
            ca,
            duration: Duration::from_secs(3600),
        };
        let mut signed = sign(&api, &signer).unwrap();
        signed.sort();
        assert_eq!(signed, ["csr-renew", "node-csr-a"]);
        let a = api.obj(&format!("{CSRS}/node-csr-a")).unwrap();
        let cert = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(a["status"]["certificate"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            pki::cert_subject(&cert).unwrap(),
            (
                "system:node:worker-01".to_string(),
                vec!["system:nodes".to_string()]
            )
        );
        assert!(sign(&api, &signer).unwrap().is_empty());
    }

    #[test]
    fn subject_access_review_answer_is_used_when_served() {
        struct Sar(FakeApi, bool);
        impl Api for Sar {
            fn get(&self, p: &str) -> Result<Value, ApiError> {
                self.0.get(p)
            }
            fn post(&self, p: &str, b: &Value) -> Result<Value, ApiError> {
                if p == SAR {
                    assert_eq!(b["spec"]["resourceAttributes"]["subresource"], "nodeclient");
                    assert_eq!(b["spec"]["user"], "system:bootstrap:abcdef");
                    return Ok(json!({"status": {"allowed": self.1}}));
                }
                self.0.post(p, b)
            }
            fn put(&self, p: &str, b: &Value) -> Result<Value, ApiError> {
                self.0.put(p, b)
            }
            fn delete(&self, p: &str) -> Result<(), ApiError> {
                self.0.delete(p)
            }
        }
        for allowed in [false, true] {
            let api = Sar(FakeApi::default(), allowed);
            api.0.insert(
                &format!("{CSRS}/x"),
                csr_object(
                    "x",
                    "system:node:w",
                    "system:bootstrap:abcdef",
                    &["system:bootstrappers"],
                ),
            );
            assert_eq!(approve(&api).unwrap().len(), usize::from(allowed));
        }
    }

    fn serving_csr(name: &str, cn: &str, sans: &[&str], usages: &[&str]) -> Value {
        let key = pki::new_key_pem().unwrap();
        let (ips, dns): (Vec<&str>, Vec<&str>) = sans
            .iter()
            .partition(|s| s.parse::<std::net::IpAddr>().is_ok());
        let pem = pki::csr_pem_with_sans(
            &key,
            cn,
            &["system:nodes".to_string()],
            &dns.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &ips.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>(),
        )
        .unwrap();
        json!({"metadata": {"name": name}, "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": KUBELET_SERVING_SIGNER, "usages": usages,
            "username": cn, "groups": ["system:nodes", "system:authenticated"]}, "status": {}})
    }

    #[test]
    fn serving_csrs_are_never_approved_but_signed_once_approved() {
        let api = FakeApi::default();
        // Every binding a cluster could have: csrapproving still leaves serving CSRs alone.
        for (n, role, group) in [
            (
                "a",
                "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                "system:nodes",
            ),
            (
                "b",
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                "system:nodes",
            ),
            ("c", "cluster-admin", "system:nodes"),
        ] {
            api.insert(&format!("{CRBS}/{n}"), crb(n, role, group));
        }
        let good = ["digital signature", "key encipherment", "server auth"];
        api.insert(
            &format!("{CSRS}/csr-serving"),
            serving_csr(
                "csr-serving",
                "system:node:worker-01",
                &["worker-01", "127.10.0.2"],
                &good,
            ),
        );
        api.insert(
            &format!("{CSRS}/csr-client-usage"),
            serving_csr(
                "csr-client-usage",
                "system:node:worker-01",
                &["worker-01"],
                &["digital signature", "client auth"],
            ),
        );
        assert!(approve(&api).unwrap().is_empty());
        let ca = pki::Ca::generate("kubernetes").unwrap();
        let signer = Signer {
            ca,
            duration: Duration::from_secs(3600),
        };
        assert!(
            sign(&api, &signer).unwrap().is_empty(),
            "pending: not signed"
        );
        for name in ["csr-serving", "csr-client-usage"] {
            let mut o = api.obj(&format!("{CSRS}/{name}")).unwrap();
            o["status"] = json!({"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]});
            api.insert(&format!("{CSRS}/{name}"), o);
        }
        assert_eq!(sign(&api, &signer).unwrap(), ["csr-serving"]);
        let failed = api.obj(&format!("{CSRS}/csr-client-usage")).unwrap();
        assert_eq!(failed["status"]["conditions"][1]["type"], "Failed");
        assert_eq!(
            failed["status"]["conditions"][1]["message"],
            "usages did not match [digital signature key encipherment server auth]"
        );
        let o = api.obj(&format!("{CSRS}/csr-serving")).unwrap();
        let pem = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(o["status"]["certificate"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            ["DNSName(worker-01)", "IPAddress(7f:0a:00:02)"],
            "SANs kept"
        );
    }

    #[test]
    fn serving_validation_table() {
        let good = Request {
            common_name: "system:node:w".into(),
            organizations: vec!["system:nodes".into()],
            dns: 1,
            ..Request::default()
        };
        let u = usages(&["digital signature", "key encipherment", "server auth"]);
        assert_eq!(validate_kubelet_serving(&good, &u), Ok(()));
        assert_eq!(
            validate_kubelet_serving(&good, &usages(&["digital signature", "server auth"])),
            Ok(())
        );
        for (r, want) in [
            (
                Request {
                    dns: 0,
                    ..good.clone()
                },
                "DNS or IP subjectAltName is required",
            ),
            (
                Request {
                    emails: 1,
                    ..good.clone()
                },
                "email subjectAltNames are not allowed",
            ),
            (
                Request {
                    uris: 1,
                    ..good.clone()
                },
                "URI subjectAltNames are not allowed",
            ),
            (
                Request {
                    organizations: vec![],
                    ..good.clone()
                },
                "subject organization is not system:nodes",
            ),
            (
                Request {
                    common_name: "w".into(),
                    ..good.clone()
                },
                "subject common name does not begin with system:node:",
            ),
        ] {
            assert_eq!(validate_kubelet_serving(&r, &u), Err(want.to_string()));
        }
    }
}
