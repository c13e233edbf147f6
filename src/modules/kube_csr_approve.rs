//! `kube_csr_approve`: the serving certificate of a node bootstrapctl joins. A kubelet with
//! `serverTLSBootstrap` files a `kubernetes.io/kubelet-serving` CSR that nothing in the cluster
//! approves; this module approves exactly that node's, after the checks in `k8s::csr`, and
//! leaves any other CSR naming the node Pending with its reason in the result. `state` picks
//! the step: `filed` waits for the node's CSR to appear, `approved` (default) approves,
//! `issued` waits for the signed certificate. Waiting is not a change; the waits and an
//! approval of a CSR not filed yet are known only by running them.

use std::cell::Cell;

use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ListRef, Read};
use crate::k8s::csr::{check, concerns, filed_by, node_user, standing, Standing, SERVING_SIGNER};
use crate::plan::{DiffItem, Op, Planned};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

/// How kubectl names the resource (and how cluster objects of it are keyed in a view).
pub const CSR_RESOURCE: &str = "certificatesigningrequest.certificates.k8s.io";

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Filed,
    #[default]
    Approved,
    Issued,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The node name (its inventory name).
    pub node: Tpl<String>,
    /// The node's addresses from the inventory (`ansible_host`) and facts: IPs or DNS names.
    pub addresses: Option<Tpl<Vec<String>>>,
    pub state: Option<Tpl<State>>,
    /// Seconds, for `filed` and `issued`.
    pub timeout: Option<Tpl<u64>>,
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct ApproveCsr {
    kubectl: Kubectl,
    node: String,
    addresses: Vec<String>,
    state: State,
    timeout: u64,
    /// Set by `plan`: the plan is a command whose outcome only running it tells.
    runs: Cell<bool>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<ApproveCsr, ModuleError> {
        let node = self.node.resolve(cx.templates, cx.vars, cx.what)?;
        if node.trim().is_empty() {
            return Err(ModuleError::Invalid("`node` is empty".into()));
        }
        let mut addresses = opt(&self.addresses, cx)?.unwrap_or_default();
        addresses.retain(|a| !a.trim().is_empty());
        Ok(ApproveCsr {
            kubectl: Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?,
            node,
            addresses,
            state: opt(&self.state, cx)?.unwrap_or_default(),
            timeout: opt(&self.timeout, cx)?.unwrap_or(120),
            runs: Cell::new(false),
        })
    }
}

impl ApproveCsr {
    fn list(&self) -> ListRef {
        self.kubectl.list(CSR_RESOURCE, None, None)
    }

    /// A shell loop polling `test` each second, failing after the timeout with `what`.
    fn wait(&self, test: &str, what: &str) -> Planned {
        self.runs.set(true);
        let command = format!(
            "i=0\nuntil {test}; do\n  i=$((i+1))\n  if [ \"$i\" -ge {t} ]; then echo {msg} >&2; exit 1; fi\n  sleep 1\ndone",
            t = self.timeout,
            msg = sh_quote(&format!("timed out after {}s waiting for {what}", self.timeout)),
        );
        Planned::Change {
            ops: vec![Op::Exec {
                command,
                chdir: None,
            }],
            diffs: vec![DiffItem {
                subject: "wait".into(),
                before: String::new(),
                after: format!("wait up to {}s for {what}", self.timeout),
                secret: false,
            }],
        }
    }

    /// `kubectl get csr` lines `username/signer/certificate`, grepped for this node's.
    fn poll(&self, issued: bool) -> String {
        let lines = self.kubectl.raw(
            "get certificatesigningrequests -o 'jsonpath={range .items[*]}{.spec.username}/{.spec.signerName}/{.status.certificate}{\"\\n\"}{end}'",
        );
        let pattern = format!(
            "^{}/{}/{}",
            node_user(&self.node),
            SERVING_SIGNER,
            if issued { "." } else { "" }
        );
        format!("{lines} 2>/dev/null | grep -q {}", sh_quote(&pattern))
    }

    /// The subject every diff of the approval speaks of, the same whether the CSR is already
    /// there or not (a preview of a fresh cluster has none yet).
    fn subject(&self) -> String {
        format!("serving certificate of node {}", self.node)
    }
}

fn name(csr: &Json) -> String {
    csr["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn approved(csr: &Json) -> Json {
    let mut c = csr.clone();
    let cond = json!({"type": "Approved", "status": "True", "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve."});
    match c["status"]["conditions"].as_array_mut() {
        Some(cs) => cs.push(cond),
        None => c["status"]["conditions"] = json!([cond]),
    }
    c
}

impl Module for ApproveCsr {
    fn reads(&self) -> Vec<Read> {
        vec![Read::Kube(KubeRead::List(self.list()))]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        self.runs.set(false);
        let items = view
            .kube_list(&self.list())
            .ok_or_else(|| {
                ModuleError::Invalid("certificate signing requests were not read".into())
            })?
            .map_err(|message| ModuleError::Host {
                path: "certificatesigningrequests".into(),
                message,
            })?;
        let mine: Vec<&Json> = items.iter().filter(|c| concerns(c, &self.node)).collect();
        let own = |s: &[Standing]| -> Vec<String> {
            mine.iter()
                .filter(|c| filed_by(c, &self.node) && s.contains(&standing(c)))
                .filter(|c| check(c, &self.node, &self.addresses).is_ok())
                .map(|c| name(c))
                .collect()
        };
        match self.state {
            State::Filed => {
                let filed: Vec<String> = mine
                    .iter()
                    .filter(|c| filed_by(c, &self.node))
                    .map(|c| name(c))
                    .collect();
                if filed.is_empty() {
                    return Ok(self.wait(
                        &self.poll(false),
                        &format!("node {} to file its serving CSR", self.node),
                    ));
                }
                Ok(Planned::NoChange {
                    reason: format!("node {} filed serving CSR {}", self.node, filed.join(", ")),
                })
            }
            State::Issued => {
                let issued = own(&[Standing::Issued]);
                if issued.is_empty() {
                    return Ok(self.wait(
                        &self.poll(true),
                        &format!("the serving certificate of node {} to be issued", self.node),
                    ));
                }
                Ok(Planned::NoChange {
                    reason: format!(
                        "serving certificate of node {} issued ({})",
                        self.node,
                        issued.join(", ")
                    ),
                })
            }
            State::Approved => self.approve(&mine),
        }
    }

    fn runs_commands(&self) -> bool {
        self.runs.get()
    }

    fn changes_host(&self) -> bool {
        self.state == State::Approved
    }
}

impl ApproveCsr {
    fn approve(&self, mine: &[&Json]) -> Result<Planned, ModuleError> {
        let mut ops = Vec::new();
        let mut rejected = Vec::new();
        let mut done = Vec::new();
        for c in mine {
            match (standing(c), check(c, &self.node, &self.addresses)) {
                (Standing::Pending, Ok(())) => ops.push(Op::ApproveCsr {
                    object: self.kubectl.object(CSR_RESOURCE, &name(c), None),
                    approved: approved(c),
                }),
                (Standing::Pending, Err(e)) => rejected.push((name(c), e.to_string())),
                (Standing::Approved | Standing::Issued, Ok(())) if filed_by(c, &self.node) => {
                    done.push(name(c))
                }
                _ => {}
            }
        }
        let left = rejected
            .iter()
            .map(|(n, why)| format!("{n} left Pending: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        if ops.is_empty() {
            if done.is_empty() && !rejected.is_empty() {
                return Err(ModuleError::Invalid(format!(
                    "no serving CSR of node {} passes the checks: {left}",
                    self.node
                )));
            }
            if done.is_empty() {
                // Not filed yet: so in a preview; the playbook waits for it before approving.
                self.runs.set(true);
                let msg = format!(
                    "node {} has filed no serving CSR (is serverTLSBootstrap on?)",
                    self.node
                );
                return Ok(Planned::Change {
                    ops: vec![Op::Exec {
                        command: format!("echo {} >&2; exit 1", sh_quote(&msg)),
                        chdir: None,
                    }],
                    diffs: vec![self.approval_diff()],
                });
            }
            let mut reason = format!(
                "serving CSR {} of node {} approved",
                done.join(", "),
                self.node
            );
            if !left.is_empty() {
                reason.push_str("; ");
                reason.push_str(&left);
            }
            return Ok(Planned::NoChange { reason });
        }
        let mut diffs = vec![self.approval_diff()];
        for (n, why) in rejected {
            diffs.push(DiffItem {
                subject: format!("CertificateSigningRequest {n}"),
                before: "Pending".into(),
                after: format!("Pending (not approved: {why})"),
                secret: false,
            });
        }
        Ok(Planned::Change { ops, diffs })
    }

    fn approval_diff(&self) -> DiffItem {
        DiffItem {
            subject: self.subject(),
            before: "not approved".into(),
            after: format!("approved ({SERVING_SIGNER})"),
            secret: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::simulate;
    use crate::template::Templates;

    fn module(args: &str) -> ApproveCsr {
        let t = Templates::new(vec![]);
        let vars = minijinja::context! {};
        let a: Args = serde_yaml::from_str(args).unwrap();
        a.resolve(&ResolveCx {
            templates: &t,
            vars: &vars,
            base_dir: std::path::Path::new("."),
            what: "t",
        })
        .unwrap()
    }

    #[test]
    fn a_preview_sees_the_approval_an_earlier_task_plans() {
        let approve = module("{node: worker-01, addresses: [127.80.0.2]}");
        let issued = module("{node: worker-01, state: issued}");
        let mut view = HostView::new();
        let csr: Json = serde_yaml::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/modules/kube_csr_approve-approve.yaml"
            ))
            .unwrap(),
        )
        .map(|v: serde_yaml::Value| serde_json::to_value(&v["host"]["objects"][0]).unwrap())
        .unwrap();
        view.set_kube_list(&approve.list(), Ok(vec![csr]));
        let Planned::Change { ops, .. } = approve.plan(&view).unwrap() else {
            panic!()
        };
        assert!(!approve.runs_commands());
        assert_eq!(
            ops[0].kubectl_command().unwrap(),
            "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig certificate approve csr-w1"
        );
        simulate(&mut view, &ops);
        assert!(!approve.plan(&view).unwrap().is_change());
        // Approved, not issued yet: the wait for the certificate runs.
        assert!(issued.plan(&view).unwrap().is_change());
        assert!(issued.runs_commands());
    }
}
