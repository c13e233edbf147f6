//! `kube_wait`: wait (with a timeout) until the cluster reports something: the API is
//! healthy, a Node is registered or Ready, cluster-info is signed for a token. Waiting is not
//! a change: a wait that succeeds reports `ok`.

use serde::Deserialize;

use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ApiHealthy,
    NodeRegistered,
    NodeReady,
    ClusterInfoSigned,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(rename = "for")]
    pub condition: Tpl<Condition>,
    pub node: Option<Tpl<String>>,
    pub token_id: Option<Tpl<String>>,
    /// Seconds.
    pub timeout: Option<Tpl<u64>>,
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct KubeWait {
    check: String,
    what: String,
    timeout: u64,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<KubeWait, ModuleError> {
        let k = Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?;
        let need = |v: &Option<Tpl<String>>, arg: &str| -> Result<String, ModuleError> {
            opt(v, cx)?.ok_or_else(|| {
                ModuleError::Invalid(format!("`{arg}` is required for this condition"))
            })
        };
        let (check, what) = match self.condition.resolve(cx.templates, cx.vars, cx.what)? {
            Condition::ApiHealthy => (
                format!("[ \"$({} 2>/dev/null)\" = ok ]", k.raw("get --raw /readyz")),
                "the API server to be ready".to_string(),
            ),
            Condition::NodeRegistered => {
                let node = need(&self.node, "node")?;
                (
                    format!(
                        "[ -n \"$({} 2>/dev/null)\" ]",
                        k.raw(&format!(
                            "get node {} -o name --ignore-not-found",
                            sh_quote(&node)
                        ))
                    ),
                    format!("node {node} to register"),
                )
            }
            Condition::NodeReady => {
                let node = need(&self.node, "node")?;
                (
                    format!(
                        "[ \"$({} 2>/dev/null)\" = True ]",
                        k.raw(&format!(
                            "get node {} -o 'jsonpath={{.status.conditions[?(@.type==\"Ready\")].status}}'",
                            sh_quote(&node)
                        ))
                    ),
                    format!("node {node} to be Ready"),
                )
            }
            Condition::ClusterInfoSigned => {
                let id = need(&self.token_id, "token_id")?;
                (
                    format!(
                        "{} 2>/dev/null | grep -q {}",
                        k.raw("get configmap cluster-info -n kube-public -o json"),
                        sh_quote(&format!("\"jws-kubeconfig-{id}\""))
                    ),
                    format!("cluster-info to be signed for token {id}"),
                )
            }
        };
        Ok(KubeWait {
            check,
            what,
            timeout: opt(&self.timeout, cx)?.unwrap_or(120),
        })
    }
}

impl Module for KubeWait {
    fn reads(&self) -> Vec<Read> {
        vec![Read::Command(self.check.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let now = view
            .command(&self.check)
            .ok_or_else(|| ModuleError::Invalid("condition was not read".into()))?;
        if now.status == 0 {
            return Ok(Planned::NoChange {
                reason: format!("done waiting for {}", self.what),
            });
        }
        let command = format!(
            "i=0\nuntil {check}; do\n  i=$((i+1))\n  if [ \"$i\" -ge {t} ]; then echo {msg} >&2; exit 1; fi\n  sleep 1\ndone",
            check = self.check,
            t = self.timeout,
            msg = sh_quote(&format!("timed out after {}s waiting for {}", self.timeout, self.what)),
        );
        Ok(Planned::Change {
            ops: vec![Op::Exec {
                command,
                chdir: None,
            }],
            diffs: vec![DiffItem {
                subject: "wait".into(),
                before: String::new(),
                after: format!("wait up to {}s for {}", self.timeout, self.what),
                secret: false,
            }],
        })
    }

    fn runs_commands(&self) -> bool {
        true
    }

    fn changes_host(&self) -> bool {
        false
    }
}
