//! `bootstrap_token`: make sure a valid bootstrap token exists. A token that has the wanted
//! usages and groups and enough life left is reused; only when none fits is one created
//! (from the OS CSPRNG). The token is registered (`result.token`) and redacted everywhere.
//! A join token (`join: true`) is one made for the workers joining in this run: labelled as
//! such, reused only by later joins, and deleted with `state: absent` once they have joined.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value as Json;

use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ListRef, Read};
use crate::k8s::token::{
    format_rfc3339, parse_expiration, parse_ttl, validate_group, BootstrapToken, SECRET_PREFIX,
    SECRET_TYPE,
};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub description: Option<Tpl<String>>,
    /// Life of a new token (Go duration: 24h, 15m); `0` = never expires.
    pub ttl: Option<Tpl<String>>,
    /// A reused token must have at least this much life left.
    pub min_ttl: Option<Tpl<String>>,
    /// `authentication`, `signing`.
    pub usages: Option<Tpl<Vec<String>>>,
    /// Extra groups, each `system:bootstrappers:…`.
    pub groups: Option<Tpl<Vec<String>>>,
    /// Use exactly this token (created if absent) instead of generating one.
    pub token: Option<Tpl<String>>,
    /// A token for the joins of this run (labelled; only join tokens are reused).
    pub join: Option<Tpl<bool>>,
    /// The workers it is made for (named in the plan); an empty list needs no token.
    pub for_hosts: Option<Tpl<Vec<String>>>,
    /// `present` (default) or `absent`: delete every join token (needs `join: true`).
    pub state: Option<Tpl<State>>,
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Present,
    Absent,
}

/// The label that marks a join token's Secret.
pub const JOIN_LABEL: &str = "bootstrapctl.io/join-token";

#[derive(Debug)]
pub struct EnsureToken {
    kubectl: Kubectl,
    description: String,
    ttl: Duration,
    min_ttl: Duration,
    usages: Vec<String>,
    groups: Vec<String>,
    fixed: bool,
    join: bool,
    for_hosts: Option<Vec<String>>,
    state: State,
    /// Created when no existing token fits.
    candidate: BootstrapToken,
    now: SystemTime,
}

const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<EnsureToken, ModuleError> {
        let dur =
            |v: &Option<Tpl<String>>, default: &str, what: &str| -> Result<Duration, ModuleError> {
                let s = opt(v, cx)?.unwrap_or_else(|| default.to_string());
                parse_ttl(&s).map_err(|e| ModuleError::Invalid(format!("{what}: {e}")))
            };
        let usages = opt(&self.usages, cx)?
            .unwrap_or_else(|| vec!["authentication".into(), "signing".into()]);
        for u in &usages {
            if u != "authentication" && u != "signing" {
                return Err(ModuleError::Invalid(format!(
                    "usages: {u:?} is not authentication or signing"
                )));
            }
        }
        let mut groups = opt(&self.groups, cx)?.unwrap_or_else(|| vec![DEFAULT_GROUP.into()]);
        groups.sort();
        groups.dedup();
        for g in &groups {
            validate_group(g).map_err(|e| ModuleError::Invalid(format!("groups: {e}")))?;
        }
        let (candidate, fixed) = match opt(&self.token, cx)? {
            Some(t) => (
                BootstrapToken::parse(&t)
                    .map_err(|e| ModuleError::Invalid(format!("token: {e}")))?,
                true,
            ),
            None => (
                BootstrapToken::generate().map_err(|e| ModuleError::Invalid(e.to_string()))?,
                false,
            ),
        };
        let join = opt(&self.join, cx)?.unwrap_or(false);
        let state = opt(&self.state, cx)?.unwrap_or(State::Present);
        if state == State::Absent && !join {
            return Err(ModuleError::Invalid(
                "state: absent deletes join tokens only: it needs join: true".into(),
            ));
        }
        Ok(EnsureToken {
            join,
            for_hosts: opt(&self.for_hosts, cx)?,
            state,
            kubectl: Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?,
            description: opt(&self.description, cx)?
                .unwrap_or_else(|| "bootstrap token managed by bootstrapctl".into()),
            ttl: dur(&self.ttl, "24h", "ttl")?,
            min_ttl: dur(&self.min_ttl, "1h", "min_ttl")?,
            usages,
            groups,
            fixed,
            candidate,
            now: SystemTime::now(),
        })
    }
}

fn is_join_token(item: &Json) -> bool {
    item["metadata"]["labels"][JOIN_LABEL].as_str() == Some("true")
}

/// A token Secret as read from the cluster.
struct Found {
    token: BootstrapToken,
    expires: Option<SystemTime>,
}

impl EnsureToken {
    fn list(&self) -> ListRef {
        self.kubectl.list(
            "secret",
            Some("kube-system"),
            Some(&format!("type={SECRET_TYPE}")),
        )
    }

    /// The existing token this run will use, if one fits.
    fn fitting(&self, view: &HostView) -> Result<Option<Found>, ModuleError> {
        let items = view
            .kube_list(&self.list())
            .ok_or_else(|| ModuleError::Invalid("token list was not read".into()))?
            .map_err(|message| ModuleError::Host {
                path: "secrets in kube-system".into(),
                message,
            })?;
        let decode = |d: &Json, k: &str| -> Option<String> {
            let b = base64::engine::general_purpose::STANDARD
                .decode(d.get(k)?.as_str()?)
                .ok()?;
            String::from_utf8(b).ok()
        };
        let mut best: Option<Found> = None;
        for item in &items {
            let data = &item["data"];
            let (Some(id), Some(secret)) = (decode(data, "token-id"), decode(data, "token-secret"))
            else {
                continue;
            };
            let Ok(token) = BootstrapToken::parse(&format!("{id}.{secret}")) else {
                continue;
            };
            if item["metadata"]["name"].as_str() != Some(&token.secret_name()) {
                continue;
            }
            if self.fixed && token != self.candidate {
                continue;
            }
            if self.join != is_join_token(item) {
                continue;
            }
            let usage =
                |u: &str| decode(data, &format!("usage-bootstrap-{u}")).as_deref() == Some("true");
            if !self.usages.iter().all(|u| usage(u)) {
                continue;
            }
            let mut groups: Vec<String> = decode(data, "auth-extra-groups")
                .unwrap_or_default()
                .split(',')
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
            groups.sort();
            if groups != self.groups {
                continue;
            }
            let expires = match decode(data, "expiration") {
                None => None,
                Some(e) => match parse_expiration(&e) {
                    Ok(t) => Some(t),
                    Err(_) => continue,
                },
            };
            if expires.is_some_and(|t| t < self.now + self.min_ttl) {
                continue;
            }
            // Prefer the token that lives longest.
            if best.as_ref().is_none_or(|b| match (b.expires, expires) {
                (Some(a), Some(c)) => c > a,
                (Some(_), None) => true,
                _ => false,
            }) {
                best = Some(Found { token, expires });
            }
        }
        Ok(best)
    }

    /// The join tokens that exist (for `state: absent`), by Secret name.
    fn join_tokens(&self, view: &HostView) -> Result<Vec<String>, ModuleError> {
        let items = view
            .kube_list(&self.list())
            .ok_or_else(|| ModuleError::Invalid("token list was not read".into()))?
            .map_err(|message| ModuleError::Host {
                path: "secrets in kube-system".into(),
                message,
            })?;
        Ok(items
            .iter()
            .filter(|i| is_join_token(i))
            .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
            .collect())
    }

    fn plan_absent(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let names = self.join_tokens(view)?;
        if names.is_empty() {
            return Ok(Planned::NoChange {
                reason: "no join token left".into(),
            });
        }
        let ops = names
            .iter()
            .map(|n| Op::KubeDelete {
                object: self.kubectl.object("secret", n, Some("kube-system")),
            })
            .collect();
        let diffs = names
            .iter()
            .map(|n| DiffItem {
                subject: format!("Secret kube-system/{n} (join token, deleted after the join)"),
                before: "join token\n".into(),
                after: String::new(),
                secret: false,
            })
            .collect();
        Ok(Planned::Change { ops, diffs })
    }

    /// What the new token is for, as the plan names it.
    fn purpose(&self) -> String {
        match &self.for_hosts {
            Some(h) => format!(
                "a join token for {} worker{} ({})",
                h.len(),
                if h.len() == 1 { "" } else { "s" },
                h.join(", ")
            ),
            None if self.join => "a join token".into(),
            None => "new bootstrap token".into(),
        }
    }

    fn manifest(&self) -> (String, String) {
        let t = &self.candidate;
        let expiration = (!self.ttl.is_zero()).then(|| format_rfc3339(self.now + self.ttl));
        let mut lines = vec![
            "apiVersion: v1".to_string(),
            "kind: Secret".to_string(),
            "metadata:".to_string(),
            format!("  name: {}", t.secret_name()),
            "  namespace: kube-system".to_string(),
        ];
        if self.join {
            lines.push(format!("  labels: {{{JOIN_LABEL}: \"true\"}}"));
        }
        lines.extend([
            format!("type: {SECRET_TYPE}"),
            "stringData:".to_string(),
            format!(
                "  description: {}",
                serde_json::to_string(&self.description).unwrap_or_default()
            ),
            format!("  token-id: \"{}\"", t.id()),
            format!("  token-secret: \"{}\"", t.secret()),
        ]);
        if let Some(e) = &expiration {
            lines.push(format!("  expiration: \"{e}\""));
        }
        for u in &self.usages {
            lines.push(format!("  usage-bootstrap-{u}: \"true\""));
        }
        if !self.groups.is_empty() {
            lines.push(format!(
                "  auth-extra-groups: \"{}\"",
                self.groups.join(",")
            ));
        }
        let yaml = lines.join("\n") + "\n";
        let shown = yaml.replace(t.secret(), crate::secret::REDACTED);
        (yaml, shown)
    }

    /// The token's Secret as it is applied (the server turns `stringData` into `data`).
    fn secret_object(&self) -> Json {
        let (yaml, _) = self.manifest();
        serde_yaml::from_str(&yaml).unwrap_or(Json::Null)
    }
}

impl Module for EnsureToken {
    fn reads(&self) -> Vec<Read> {
        vec![Read::Kube(KubeRead::List(self.list()))]
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.candidate.full(), self.candidate.secret().to_string()]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        if self.state == State::Absent {
            return self.plan_absent(view);
        }
        if self.for_hosts.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Planned::NoChange {
                reason: "no worker must join: no token needed".into(),
            });
        }
        if let Some(found) = self.fitting(view)? {
            return Ok(Planned::NoChange {
                reason: format!(
                    "token {} is valid {}",
                    found.token.id(),
                    found
                        .expires
                        .map(|t| format!("until {}", format_rfc3339(t)))
                        .unwrap_or_else(|| "without expiry".into())
                ),
            });
        }
        let (_, shown) = self.manifest();
        Ok(Planned::Change {
            ops: vec![Op::CreateToken {
                object: self.kubectl.object(
                    "secret",
                    &self.candidate.secret_name(),
                    Some("kube-system"),
                ),
                secret: self.secret_object(),
            }],
            diffs: vec![DiffItem {
                subject: format!(
                    "Secret kube-system/{SECRET_PREFIX}{} ({})",
                    self.candidate.id(),
                    self.purpose()
                ),
                before: String::new(),
                after: shown,
                secret: false,
            }],
        })
    }

    fn output(&self, view: &HostView) -> Vec<(String, minijinja::Value)> {
        if self.state == State::Absent || self.for_hosts.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
        let found = self.fitting(view).ok().flatten();
        let (token, expires, created) = match found {
            Some(f) => (f.token, f.expires, false),
            None => (
                self.candidate.clone(),
                (!self.ttl.is_zero()).then(|| self.now + self.ttl),
                true,
            ),
        };
        vec![
            ("token".into(), minijinja::Value::from(token.full())),
            ("token_id".into(), minijinja::Value::from(token.id())),
            ("created".into(), minijinja::Value::from(created)),
            (
                "expiration".into(),
                minijinja::Value::from(expires.map(format_rfc3339).unwrap_or_default()),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hoststate::CommandOutput;

    fn module(args: &str) -> EnsureToken {
        let args: Args = serde_yaml::from_str(args).unwrap();
        crate::modules::resolve_in_test(minijinja::context! {}, |cx| args.resolve(cx))
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(id: &str, sec: &str, expiration: &str, groups: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"bootstrap-token-{id}"}},"type":"bootstrap.kubernetes.io/token","data":{{"token-id":"{}","token-secret":"{}","expiration":"{}","usage-bootstrap-authentication":"{}","usage-bootstrap-signing":"{}","auth-extra-groups":"{}"}}}}"#,
            b64(id),
            b64(sec),
            b64(expiration),
            b64("true"),
            b64("true"),
            b64(groups)
        )
    }

    fn view(m: &EnsureToken, items: &[String]) -> HostView {
        let mut v = HostView::new();
        let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
        let out = CommandOutput {
            status: 0,
            stdout: body.into_bytes(),
            stderr: vec![],
        };
        v.set_kube_list(&m.list(), crate::hoststate::kube::parse_list(&out));
        v
    }

    #[test]
    fn a_fitting_token_is_reused_and_registered() {
        let m = module("groups: [system:bootstrappers:worker]");
        let later = format_rfc3339(SystemTime::now() + Duration::from_secs(7200));
        let v = view(
            &m,
            &[secret(
                "abcdef",
                "0123456789abcdef",
                &later,
                "system:bootstrappers:worker",
            )],
        );
        let Planned::NoChange { reason } = m.plan(&v).unwrap() else {
            panic!()
        };
        assert_eq!(reason, format!("token abcdef is valid until {later}"));
        let out = m.output(&v);
        assert_eq!(out[0].1.as_str(), Some("abcdef.0123456789abcdef"));
        assert!(!out[2].1.is_true());
    }

    #[test]
    fn an_expiring_or_mismatched_token_makes_a_new_one_shown_redacted() {
        let m = module("groups: [system:bootstrappers:worker]\nttl: 2h");
        let soon = format_rfc3339(SystemTime::now() + Duration::from_secs(600));
        let later = format_rfc3339(SystemTime::now() + Duration::from_secs(7200));
        let v = view(
            &m,
            &[
                secret(
                    "aaaaaa",
                    "0123456789abcdef",
                    &soon,
                    "system:bootstrappers:worker",
                ),
                secret(
                    "bbbbbb",
                    "0123456789abcdef",
                    &later,
                    "system:bootstrappers:other",
                ),
            ],
        );
        let Planned::Change { ops, diffs } = m.plan(&v).unwrap() else {
            panic!()
        };
        let command = ops[0].kubectl_command().unwrap();
        assert!(command.contains(m.candidate.secret()), "{command}");
        assert!(command.contains("stringData:"), "{command}");
        // The preview's later tasks see the token it would create.
        let mut after = v.clone();
        crate::plan::simulate(&mut after, &ops);
        assert!(!m.plan(&after).unwrap().is_change());
        assert!(
            !diffs[0].after.contains(m.candidate.secret()),
            "{}",
            diffs[0].after
        );
        assert!(diffs[0].after.contains("usage-bootstrap-signing: \"true\""));
        let out = m.output(&v);
        assert_eq!(out[0].1.as_str(), Some(m.candidate.full().as_str()));
        assert!(out[2].1.is_true());
    }
}
