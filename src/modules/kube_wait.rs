//! `kube_wait`: wait (with a timeout) until the cluster reports something: the API is
//! healthy, a Node is registered or Ready, cluster-info is signed for a token. Waiting is not
//! a change: a wait that succeeds reports `ok`. Whether it holds already is read from the
//! view's cluster objects, so a preview sees the objects earlier tasks plan.

use serde::Deserialize;

use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ObjectRef, Read};
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
    /// The shell test the wait polls.
    check: String,
    /// How the plan tells whether the condition holds already.
    now: Now,
    what: String,
    timeout: u64,
}

/// The condition read from the view: an object (so a preview sees objects earlier tasks
/// plan), or, for the API's health, the shell test itself.
#[derive(Debug)]
enum Now {
    Command,
    Node {
        node: ObjectRef,
        ready: bool,
    },
    Signed {
        cluster_info: ObjectRef,
        key: String,
    },
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<KubeWait, ModuleError> {
        let k = Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?;
        let need = |v: &Option<Tpl<String>>, arg: &str| -> Result<String, ModuleError> {
            opt(v, cx)?.ok_or_else(|| {
                ModuleError::Invalid(format!("`{arg}` is required for this condition"))
            })
        };
        let (check, what, now) = match self.condition.resolve(cx.templates, cx.vars, cx.what)? {
            Condition::ApiHealthy => (
                format!("[ \"$({} 2>/dev/null)\" = ok ]", k.raw("get --raw /readyz")),
                "the API server to be ready".to_string(),
                Now::Command,
            ),
            Condition::NodeRegistered => {
                let node = need(&self.node, "node")?;
                let at = k.object("node", &node, None);
                (
                    format!(
                        "[ -n \"$({} 2>/dev/null)\" ]",
                        k.raw(&format!(
                            "get node {} -o name --ignore-not-found",
                            sh_quote(&node)
                        ))
                    ),
                    format!("node {node} to register"),
                    Now::Node {
                        node: at,
                        ready: false,
                    },
                )
            }
            Condition::NodeReady => {
                let node = need(&self.node, "node")?;
                let at = k.object("node", &node, None);
                (
                    format!(
                        "[ \"$({} 2>/dev/null)\" = True ]",
                        k.raw(&format!(
                            "get node {} -o 'jsonpath={{.status.conditions[?(@.type==\"Ready\")].status}}'",
                            sh_quote(&node)
                        ))
                    ),
                    format!("node {node} to be Ready"),
                    Now::Node {
                        node: at,
                        ready: true,
                    },
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
                    Now::Signed {
                        cluster_info: k.object("configmap", "cluster-info", Some("kube-public")),
                        key: format!("jws-kubeconfig-{id}"),
                    },
                )
            }
        };
        Ok(KubeWait {
            check,
            now,
            what,
            timeout: opt(&self.timeout, cx)?.unwrap_or(120),
        })
    }
}

impl Module for KubeWait {
    fn reads(&self) -> Vec<Read> {
        match &self.now {
            Now::Command => vec![Read::Command(self.check.clone())],
            Now::Node { node: o, .. }
            | Now::Signed {
                cluster_info: o, ..
            } => vec![Read::Kube(KubeRead::Object(o.clone()))],
        }
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let not_read = || ModuleError::Invalid("condition was not read".into());
        // A failed read (API not answering yet) is a condition that does not hold yet, as
        // for the polling test, which hides kubectl's errors.
        let object = |r: &ObjectRef| -> Result<Option<serde_json::Value>, ModuleError> {
            Ok(view
                .kube_object(r)
                .ok_or_else(not_read)?
                .clone()
                .ok()
                .flatten())
        };
        let holds = match &self.now {
            Now::Command => view.command(&self.check).ok_or_else(not_read)?.status == 0,
            Now::Node { node, ready } => object(node)?.is_some_and(|n| {
                !ready
                    || n["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }),
            Now::Signed { cluster_info, key } => {
                object(cluster_info)?.is_some_and(|cm| cm["data"].get(key.as_str()).is_some())
            }
        };
        if holds {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{simulate, Op};
    use crate::template::Templates;

    #[test]
    fn a_preview_sees_the_signature_an_earlier_task_plans() {
        let t = Templates::new(vec![]);
        let vars = minijinja::context! {};
        let args: Args =
            serde_yaml::from_str("{for: cluster_info_signed, token_id: abcdef}").unwrap();
        let m = args
            .resolve(&ResolveCx {
                templates: &t,
                vars: &vars,
                base_dir: std::path::Path::new("."),
                what: "t",
            })
            .unwrap();
        let [Read::Kube(KubeRead::Object(at))] = &m.reads()[..] else {
            panic!("{:?}", m.reads())
        };
        let mut view = HostView::new();
        view.set_kube_object(at, Ok(None));
        assert!(m.plan(&view).unwrap().is_change());
        let signed = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"jws-kubeconfig-abcdef": "sig"}
        });
        simulate(
            &mut view,
            &[Op::KubeApply {
                cluster: at.cluster.clone(),
                objects: vec![(at.clone(), signed)],
            }],
        );
        assert!(!m.plan(&view).unwrap().is_change());
    }
}
