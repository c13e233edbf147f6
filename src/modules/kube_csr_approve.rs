//! `kube_csr_approve`: the serving certificates of the nodes bootstrapctl runs. A kubelet with
//! `serverTLSBootstrap` files a `kubernetes.io/kubelet-serving` CSR (when it joins, and again
//! each time it rotates its serving certificate) that nothing in the cluster approves; this
//! module approves exactly the nodes' own, after the checks in `k8s::csr`, and leaves any other
//! CSR naming a node Pending with its reason.
//!
//! Three forms:
//! * a batch (`nodes`: name → addresses, `wait_for`: the nodes joining now), run once for many
//!   nodes: every CSR is read in one `kubectl get csr` per poll. `state: filed` waits until each
//!   `wait_for` node has filed its serving CSR (up to the timeout; it never fails, the node's
//!   own verdict does); `approved` approves, in one kubectl call, every Pending serving CSR of
//!   the batch's nodes that passes the checks (renewals of joined nodes included), then waits
//!   until the `wait_for` nodes' certificates are issued, and registers each node's verdict
//!   (`verdicts`); `issued` waits for those certificates alone.
//! * a node's verdict (`node` and `results`, the batch's `verdicts`): no reads; changed when its
//!   CSR was approved in this run, failed when a joining node has no CSR that passes.
//! * one node (`node`, `addresses`, `state`): the batch of one, failing as its verdict would.
//!
//! Waiting is not a change; the waits are known only by running them, so a preview skips them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::kube_wait::POLL_SLEEP;
use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ListRef, Read};
use crate::k8s::csr::{check, node_user, parse_request, standing, Standing, SERVING_SIGNER};
use crate::plan::{DiffItem, Op, Planned};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

/// Each node's name and the addresses its serving certificate may name.
type Addresses = BTreeMap<String, Vec<String>>;

/// How kubectl names the resource (and how cluster objects of it are keyed in a view).
pub const CSR_RESOURCE: &str = "certificatesigningrequest.v1.certificates.k8s.io";

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Filed,
    #[default]
    Approved,
    Issued,
}

/// The batch's nodes: a mapping, or its YAML/JSON text (what a template loop renders).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NodesArg {
    Map(BTreeMap<String, Vec<String>>),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// One node (its inventory name): alone, or judged from `results`.
    pub node: Option<Tpl<String>>,
    /// The node's addresses from the inventory (`ansible_host`) and facts: IPs or DNS names.
    pub addresses: Option<Tpl<Vec<String>>>,
    /// A batch: each node's name and addresses.
    pub nodes: Option<Tpl<NodesArg>>,
    /// The batch's nodes that join in this run: their serving certificates are waited for.
    pub wait_for: Option<Tpl<Vec<String>>>,
    /// `verdicts` as a batch registered them: judge `node` from them, reading nothing.
    pub results: Option<Tpl<String>>,
    pub state: Option<Tpl<State>>,
    /// Seconds, for the waits.
    pub timeout: Option<Tpl<u64>>,
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

/// What the CSRs say of one node, as a batch registers it for the node's own task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The node joins in this run: it must end with an approved serving CSR.
    #[serde(default)]
    pub joining: bool,
    /// It has filed a serving CSR (as itself), whatever became of it.
    #[serde(default)]
    pub filed: bool,
    /// Its Pending CSRs that pass every check: approved by this run.
    #[serde(default)]
    pub approve: Vec<String>,
    /// Its CSRs approved before, that pass the checks (looked at for joining nodes only).
    #[serde(default)]
    pub approved: Vec<String>,
    /// Of those, the ones already issued.
    #[serde(default)]
    pub issued: Vec<String>,
    /// Pending CSRs naming the node that fail a check: left Pending, with the reason.
    #[serde(default)]
    pub left: Vec<(String, String)>,
}

#[derive(Debug)]
enum Form {
    Batch {
        nodes: BTreeMap<String, Vec<String>>,
        wait_for: Vec<String>,
    },
    Single {
        node: String,
        addresses: Vec<String>,
    },
    Judge {
        node: String,
        verdict: Verdict,
    },
}

#[derive(Debug)]
pub struct ApproveCsr {
    kubectl: Kubectl,
    form: Form,
    state: State,
    timeout: u64,
    /// Set by `plan`: the plan is a command whose outcome only running it tells.
    runs: Cell<bool>,
    /// The verdicts the last plan of a batch found, for `output`.
    last: RefCell<Option<BTreeMap<String, Verdict>>>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<ApproveCsr, ModuleError> {
        let node = opt(&self.node, cx)?.map(|n| n.trim().to_string());
        if node.as_deref() == Some("") {
            return Err(ModuleError::Invalid("`node` is empty".into()));
        }
        let clean = |mut v: Vec<String>| {
            v.retain(|a| !a.trim().is_empty());
            v
        };
        let form = if let Some(results) = opt(&self.results, cx)? {
            let node = node.ok_or_else(|| {
                ModuleError::Invalid("`results` judges one node: `node` is required".into())
            })?;
            let all: BTreeMap<String, Verdict> = if results.trim().is_empty() {
                BTreeMap::new()
            } else {
                serde_json::from_str(&results).map_err(|e| {
                    ModuleError::Invalid(format!("`results` are not a batch's verdicts: {e}"))
                })?
            };
            Form::Judge {
                verdict: all.get(&node).cloned().unwrap_or_default(),
                node,
            }
        } else if self.nodes.is_some() || self.wait_for.is_some() {
            let nodes = match opt(&self.nodes, cx)? {
                None => BTreeMap::new(),
                Some(NodesArg::Map(m)) => m,
                Some(NodesArg::Text(t)) if t.trim().is_empty() => BTreeMap::new(),
                Some(NodesArg::Text(t)) => serde_yaml::from_str(&t).map_err(|e| {
                    ModuleError::Invalid(format!(
                        "`nodes` is not a mapping of node names to address lists: {e}"
                    ))
                })?,
            };
            let nodes: BTreeMap<String, Vec<String>> =
                nodes.into_iter().map(|(n, a)| (n, clean(a))).collect();
            let wait_for = clean(opt(&self.wait_for, cx)?.unwrap_or_default());
            Form::Batch { nodes, wait_for }
        } else {
            Form::Single {
                node: node.ok_or_else(|| {
                    ModuleError::Invalid("one of `node` or `nodes` is required".into())
                })?,
                addresses: clean(opt(&self.addresses, cx)?.unwrap_or_default()),
            }
        };
        let state = opt(&self.state, cx)?.unwrap_or_default();
        if let Form::Batch { nodes, wait_for } = &form {
            if state == State::Approved {
                if let Some(n) = wait_for.iter().find(|n| !nodes.contains_key(*n)) {
                    return Err(ModuleError::Invalid(format!(
                        "`wait_for` names {n}, which is not one of `nodes` (its addresses are needed for the checks)"
                    )));
                }
            }
        }
        Ok(ApproveCsr {
            kubectl: Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?,
            form,
            state,
            timeout: opt(&self.timeout, cx)?.unwrap_or(120),
            runs: Cell::new(false),
            last: RefCell::new(None),
        })
    }
}

fn name(csr: &Json) -> String {
    csr["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn approved(csr: &Json) -> Json {
    let mut c = csr.clone();
    let cond = json!({"type": "Approved", "status": "True", "reason": "BootstrapctlApprove",
        "message": "This CSR was approved by bootstrapctl: the node's own serving certificate request passed its checks."});
    match c["status"]["conditions"].as_array_mut() {
        Some(cs) => cs.push(cond),
        None => c["status"]["conditions"] = json!([cond]),
    }
    c
}

/// The node a `system:node:<name>` user or subject names, if it is one of `nodes`.
fn known<'a>(user: Option<&str>, nodes: &'a BTreeMap<String, Vec<String>>) -> Option<&'a String> {
    let n = user?.strip_prefix("system:node:")?;
    nodes.get_key_value(n).map(|(k, _)| k)
}

/// Each node's verdict from the cluster's CSRs. A CSR is looked at for the node that filed it
/// and for the node its subject names; approved and issued ones only for joining nodes (a
/// joined node's old certificates are none of this run's business), so that a re-run parses
/// only what is Pending.
pub fn verdicts(
    items: &[Json],
    nodes: &BTreeMap<String, Vec<String>>,
    wait_for: &[String],
) -> BTreeMap<String, Verdict> {
    let mut out: BTreeMap<String, Verdict> = nodes
        .keys()
        .map(|n| {
            (
                n.clone(),
                Verdict {
                    joining: wait_for.contains(n),
                    ..Verdict::default()
                },
            )
        })
        .collect();
    for c in items {
        if c["spec"]["signerName"].as_str() != Some(SERVING_SIGNER) {
            continue;
        }
        let filer = known(c["spec"]["username"].as_str(), nodes);
        if let Some(f) = filer {
            out.get_mut(f).expect("a node of the batch").filed = true;
        }
        match standing(c) {
            Standing::Pending => {
                let subject = c["spec"]["request"]
                    .as_str()
                    .and_then(|r| parse_request(r).ok())
                    .and_then(|r| known(Some(&r.common_name), nodes).cloned());
                let mut concerned: Vec<&String> = filer.into_iter().collect();
                if let Some(s) = &subject {
                    if Some(s) != filer {
                        concerned.push(s);
                    }
                }
                for n in concerned {
                    let v = out.get_mut(n).expect("a node of the batch");
                    match check(c, n, &nodes[n]) {
                        Ok(()) => v.approve.push(name(c)),
                        Err(e) => v.left.push((name(c), e.to_string())),
                    }
                }
            }
            s @ (Standing::Approved | Standing::Issued) => {
                let Some(f) = filer.filter(|f| wait_for.contains(f)) else {
                    continue;
                };
                if check(c, f, &nodes[f]).is_ok() {
                    let v = out.get_mut(f).expect("a node of the batch");
                    v.approved.push(name(c));
                    if s == Standing::Issued {
                        v.issued.push(name(c));
                    }
                }
            }
            Standing::Denied | Standing::Failed => {}
        }
    }
    out
}

impl ApproveCsr {
    fn list(&self) -> ListRef {
        self.kubectl.list(CSR_RESOURCE, None, None)
    }

    fn items(&self, view: &HostView) -> Result<Vec<Json>, ModuleError> {
        view.kube_list(&self.list())
            .ok_or_else(|| {
                ModuleError::Invalid("certificate signing requests were not read".into())
            })?
            .map_err(|message| ModuleError::Host {
                path: "certificatesigningrequests".into(),
                message,
            })
    }

    /// The batch this module stands for (one node alone is a batch of one joining node).
    fn batch(&self) -> Option<(Addresses, Vec<String>)> {
        match &self.form {
            Form::Batch { nodes, wait_for } => Some((nodes.clone(), wait_for.clone())),
            Form::Single { node, addresses } => Some((
                BTreeMap::from([(node.clone(), addresses.clone())]),
                vec![node.clone()],
            )),
            Form::Judge { .. } => None,
        }
    }

    /// A shell loop around `test`, once a second, up to the timeout; at the timeout it fails
    /// with `what` when `fail`, else ends (the verdicts say what is missing).
    fn wait(&self, test: &str, what: &str, fail: bool) -> Planned {
        self.runs.set(true);
        let at_timeout = if fail {
            format!(
                "echo {} >&2; exit 1",
                sh_quote(&format!(
                    "timed out after {}s waiting for {what}",
                    self.timeout
                ))
            )
        } else {
            "break".to_string()
        };
        let command = format!(
            "bsctl_end=$(( $(date +%s) + {t} ))\nuntil {test}; do\n  if [ \"$(date +%s)\" -ge \"$bsctl_end\" ]; then {at_timeout}; fi\n  {POLL_SLEEP}\ndone",
            t = self.timeout,
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

    /// One `kubectl get csr` printing two tab-separated fields per CSR, and an awk test that
    /// every one of `wanted` is a first field whose second is `second` (`-` for non-empty).
    fn poll(&self, fields: &str, wanted: &[String], second: &str) -> String {
        let lines = self.kubectl.raw(&format!(
            "get certificatesigningrequests -o {}",
            sh_quote(&format!(
                "jsonpath={{range .items[*]}}{fields}{{\"\\n\"}}{{end}}"
            ))
        ));
        let cond = if second == "-" {
            "$2 != \"\"".to_string()
        } else {
            format!("$2 == \"{second}\"")
        };
        format!(
            "{lines} 2>/dev/null | awk -F '\\t' -v want={} 'BEGIN {{ n = split(want, w, \" \") }} {cond} {{ has[$1] = 1 }} END {{ for (i = 1; i <= n; i++) if (!(w[i] in has)) exit 1 }}'",
            sh_quote(&wanted.join(" "))
        )
    }

    fn filed(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let (nodes, wait_for) = self.batch().expect("not a verdict");
        // `wait_for` alone is enough to wait: the nodes' addresses matter for the checks only.
        let mut all = nodes;
        for n in &wait_for {
            all.entry(n.clone()).or_default();
        }
        let v = verdicts(&self.items(view)?, &all, &wait_for);
        let missing: Vec<String> = wait_for.iter().filter(|n| !v[*n].filed).cloned().collect();
        if missing.is_empty() {
            return Ok(Planned::NoChange {
                reason: format!("{} filed a serving CSR", nodes_text(&wait_for)),
            });
        }
        let users: Vec<String> = missing.iter().map(|n| node_user(n)).collect();
        Ok(self.wait(
            &self.poll(
                "{.spec.username}{\"\\t\"}{.spec.signerName}",
                &users,
                SERVING_SIGNER,
            ),
            &format!("{} to file a serving CSR", nodes_text(&missing)),
            matches!(self.form, Form::Single { .. }),
        ))
    }

    fn issued(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let (mut nodes, wait_for) = self.batch().expect("not a verdict");
        for n in &wait_for {
            nodes.entry(n.clone()).or_default();
        }
        let v = verdicts(&self.items(view)?, &nodes, &wait_for);
        let waiting: Vec<&String> = wait_for
            .iter()
            .filter(|n| v[*n].issued.is_empty())
            .collect();
        if waiting.is_empty() {
            return Ok(Planned::NoChange {
                reason: format!(
                    "serving certificate{} of {} issued",
                    if wait_for.len() == 1 { "" } else { "s" },
                    nodes_text(&wait_for)
                ),
            });
        }
        let users: Vec<String> = waiting.iter().map(|n| node_user(n)).collect();
        let waiting: Vec<String> = waiting.into_iter().cloned().collect();
        // A node's certificate: any of its CSRs that carries one (its own user, the signer).
        let test = format!(
            "{} 2>/dev/null | awk -F '\\t' -v want={} 'BEGIN {{ n = split(want, w, \" \") }} $2 == \"{SERVING_SIGNER}\" && $3 != \"\" {{ has[$1] = 1 }} END {{ for (i = 1; i <= n; i++) if (!(w[i] in has)) exit 1 }}'",
            self.kubectl.raw(&format!(
                "get certificatesigningrequests -o {}",
                sh_quote("jsonpath={range .items[*]}{.spec.username}{\"\\t\"}{.spec.signerName}{\"\\t\"}{.status.certificate}{\"\\n\"}{end}")
            )),
            sh_quote(&users.join(" "))
        );
        Ok(self.wait(
            &test,
            &format!(
                "the serving certificate of {} to be issued",
                nodes_text(&waiting)
            ),
            true,
        ))
    }

    /// The batch's approvals: every passing Pending CSR of its nodes, in one kubectl call, then
    /// the wait for the joining nodes' certificates.
    fn approve(
        &self,
        view: &HostView,
    ) -> Result<(Planned, BTreeMap<String, Verdict>), ModuleError> {
        let (nodes, wait_for) = self.batch().expect("not a verdict");
        let items = self.items(view)?;
        let v = verdicts(&items, &nodes, &wait_for);
        let by_name: BTreeMap<String, &Json> = items.iter().map(|c| (name(c), c)).collect();
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        let mut seen = BTreeSet::new();
        let mut awaited = Vec::new();
        let mut awaited_nodes = Vec::new();
        for (n, verdict) in &v {
            for c in &verdict.approve {
                if seen.insert(c.clone()) {
                    ops.push(Op::ApproveCsr {
                        object: self.kubectl.object(CSR_RESOURCE, c, None),
                        approved: approved(by_name[c]),
                    });
                }
            }
            if !verdict.approve.is_empty() {
                diffs.push(approval_diff(n));
            }
            // A joining node's certificate is waited for: the one approved now, or one
            // approved before that is not issued yet (when none is).
            let unissued = verdict
                .approved
                .iter()
                .filter(|c| !verdict.issued.contains(c));
            let wanted: Vec<String> = if !verdict.approve.is_empty() {
                verdict.approve.clone()
            } else if verdict.issued.is_empty() {
                unissued.cloned().collect()
            } else {
                Vec::new()
            };
            if verdict.joining && !wanted.is_empty() {
                awaited.extend(wanted);
                awaited_nodes.push(n.clone());
            }
        }
        if ops.is_empty() && awaited.is_empty() {
            return Ok((
                Planned::NoChange {
                    reason: summary(&v),
                },
                v,
            ));
        }
        if !awaited.is_empty() {
            awaited.sort();
            awaited.dedup();
            let what = format!(
                "the serving certificate{} of {} to be issued",
                if awaited_nodes.len() == 1 { "" } else { "s" },
                nodes_text(&awaited_nodes)
            );
            let Planned::Change { ops: wait, .. } = self.wait(
                &self.poll(
                    "{.metadata.name}{\"\\t\"}{.status.certificate}",
                    &awaited,
                    "-",
                ),
                &what,
                true,
            ) else {
                unreachable!("a wait is a change")
            };
            ops.extend(wait);
        }
        // One node alone plans what its verdict says (approvals change the host it runs for);
        // a batch runs for many: each node's own task says what happened to its CSR.
        if matches!(self.form, Form::Batch { .. }) {
            self.runs.set(true);
        } else {
            self.runs
                .set(ops.iter().any(|o| matches!(o, Op::Exec { .. })));
        }
        Ok((Planned::Change { ops, diffs }, v))
    }

    fn subject(node: &str) -> String {
        format!("serving certificate of node {node}")
    }
}

fn approval_diff(node: &str) -> DiffItem {
    DiffItem {
        subject: ApproveCsr::subject(node),
        before: "not approved".into(),
        after: format!("approved ({SERVING_SIGNER})"),
        secret: false,
    }
}

/// `node worker-01`, `2 nodes (worker-01, worker-02)`.
fn nodes_text(nodes: &[String]) -> String {
    match nodes {
        [one] => format!("node {one}"),
        many => format!("{} nodes ({})", many.len(), many.join(", ")),
    }
}

fn left_text(left: &[(String, String)]) -> String {
    left.iter()
        .map(|(n, why)| format!("{n} left Pending: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a batch without anything to do saw.
fn summary(v: &BTreeMap<String, Verdict>) -> String {
    let left: Vec<String> = v
        .iter()
        .filter(|(_, x)| !x.left.is_empty())
        .map(|(n, x)| format!("{n}: {}", left_text(&x.left)))
        .collect();
    let mut s = format!(
        "no serving CSR to approve for {} node{}",
        v.len(),
        if v.len() == 1 { "" } else { "s" }
    );
    if !left.is_empty() {
        s.push_str("; ");
        s.push_str(&left.join("; "));
    }
    s
}

/// One node's outcome from its verdict: `approve` are the ops that approve its CSRs (empty when
/// a batch approves them).
fn judge(
    node: &str,
    v: &Verdict,
    approve: Vec<Op>,
    runs: &Cell<bool>,
) -> Result<Planned, ModuleError> {
    let left = left_text(&v.left);
    if !v.approve.is_empty() {
        let mut diffs = vec![approval_diff(node)];
        for (n, why) in &v.left {
            diffs.push(DiffItem {
                subject: format!("CertificateSigningRequest {n}"),
                before: "Pending".into(),
                after: format!("Pending (not approved: {why})"),
                secret: false,
            });
        }
        return Ok(Planned::Change {
            ops: approve,
            diffs,
        });
    }
    let with_left = |mut s: String| {
        if !left.is_empty() {
            s.push_str("; ");
            s.push_str(&left);
        }
        s
    };
    if !v.approved.is_empty() {
        return Ok(Planned::NoChange {
            reason: with_left(format!(
                "serving CSR {} of node {node} approved",
                v.approved.join(", ")
            )),
        });
    }
    if !v.joining {
        // Joined, and nothing of its own Pending: left alone (its CSRs may long be gone: the
        // controller-manager's cleaner deletes approved ones after an hour).
        return Ok(Planned::NoChange {
            reason: with_left(format!("no serving CSR of node {node} is Pending")),
        });
    }
    if !v.left.is_empty() {
        return Err(ModuleError::Invalid(format!(
            "no serving CSR of node {node} passes the checks: {left}"
        )));
    }
    // Nothing filed: so in a preview (an apply waits for it first), or the kubelet files none.
    runs.set(true);
    let msg = format!("node {node} has filed no serving CSR (is serverTLSBootstrap on?)");
    Ok(Planned::Change {
        ops: vec![Op::Exec {
            command: format!("echo {} >&2; exit 1", sh_quote(&msg)),
            chdir: None,
        }],
        diffs: vec![approval_diff(node)],
    })
}

impl Module for ApproveCsr {
    fn reads(&self) -> Vec<Read> {
        match self.form {
            Form::Judge { .. } => Vec::new(),
            _ => vec![Read::Kube(KubeRead::List(self.list()))],
        }
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        self.runs.set(false);
        *self.last.borrow_mut() = None;
        match (&self.form, self.state) {
            (Form::Judge { node, verdict }, _) => judge(node, verdict, Vec::new(), &self.runs),
            (_, State::Filed) => self.filed(view),
            (_, State::Issued) => self.issued(view),
            (Form::Batch { .. }, State::Approved) => {
                let (planned, v) = self.approve(view)?;
                *self.last.borrow_mut() = Some(v);
                Ok(planned)
            }
            (Form::Single { node, .. }, State::Approved) => {
                let (planned, v) = self.approve(view)?;
                let ops = match planned {
                    Planned::Change { ops, .. } => ops
                        .into_iter()
                        .filter(|o| matches!(o, Op::ApproveCsr { .. }))
                        .collect(),
                    Planned::NoChange { .. } => Vec::new(),
                };
                self.runs.set(false);
                judge(node, &v[node], ops, &self.runs)
            }
        }
    }

    fn runs_commands(&self) -> bool {
        self.runs.get()
    }

    fn changes_host(&self) -> bool {
        match self.form {
            Form::Batch { .. } => false,
            _ => self.state == State::Approved,
        }
    }

    fn output(&self, _view: &HostView) -> Vec<(String, minijinja::Value)> {
        match self.last.borrow().as_ref() {
            Some(v) => vec![(
                "verdicts".into(),
                minijinja::Value::from(serde_json::to_string(v).unwrap_or_default()),
            )],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::simulate;

    fn module(args: &str) -> ApproveCsr {
        let a: Args = serde_yaml::from_str(args).unwrap();
        crate::modules::resolve_in_test(minijinja::context! {}, |cx| a.resolve(cx))
    }

    fn fixture_csr(file: &str) -> Json {
        serde_yaml::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/modules/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .map(|v: serde_yaml::Value| serde_json::to_value(&v["host"]["objects"][0]).unwrap())
        .unwrap()
    }

    #[test]
    fn a_preview_sees_the_approval_an_earlier_task_plans() {
        let approve = module("{node: worker-01, addresses: [127.80.0.2]}");
        let issued = module("{node: worker-01, state: issued}");
        let mut view = HostView::new();
        view.set_kube_list(
            &approve.list(),
            Ok(vec![fixture_csr("kube_csr_approve-approve.yaml")]),
        );
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

    #[test]
    fn a_batch_approves_in_one_call_and_each_node_judges_its_own() {
        let csr = fixture_csr("kube_csr_approve-approve.yaml");
        let mut other = csr.clone();
        other["metadata"]["name"] = json!("csr-w2");
        let batch = module(
            "{nodes: {worker-01: [127.80.0.2], worker-02: [127.80.0.3]}, wait_for: [worker-01]}",
        );
        let mut view = HostView::new();
        view.set_kube_list(&batch.list(), Ok(vec![csr, other]));
        let Planned::Change { ops, .. } = batch.plan(&view).unwrap() else {
            panic!()
        };
        assert!(batch.runs_commands(), "a preview skips the batch");
        let script = crate::engine::executor::ops_script(&ops[..1]);
        assert!(script.contains("certificate approve csr-w1\n"), "{script}");
        // csr-w2 is worker-01's CSR filed under another name: approved for worker-01 too.
        assert!(matches!(&ops[1], Op::ApproveCsr { object, .. } if object.name == "csr-w2"));
        let all = crate::engine::executor::ops_script(&ops[..2]);
        assert!(all.contains("certificate approve csr-w1 csr-w2\n"), "{all}");
        let Op::Exec { command, .. } = &ops[2] else {
            panic!("{ops:?}")
        };
        assert!(command.contains("want='csr-w1 csr-w2'"), "{command}");
        let out = batch.output(&view);
        let text = out[0].1.as_str().unwrap().to_string();
        let v: BTreeMap<String, Verdict> = serde_json::from_str(&text).unwrap();
        assert_eq!(v["worker-01"].approve, ["csr-w1", "csr-w2"]);
        assert!(v["worker-02"].approve.is_empty() && !v["worker-02"].filed);
        let judge = |node: &str| {
            let a: Args =
                serde_yaml::from_str(&format!("{{node: {node}, results: '{{{{ r }}}}'}}")).unwrap();
            crate::modules::resolve_in_test(minijinja::context! { r => text.clone() }, |cx| {
                a.resolve(cx)
            })
        };
        let w1 = judge("worker-01");
        assert!(w1.reads().is_empty());
        let Planned::Change { ops, diffs } = w1.plan(&HostView::new()).unwrap() else {
            panic!()
        };
        assert!(ops.is_empty() && !w1.runs_commands());
        assert_eq!(diffs[0].subject, "serving certificate of node worker-01");
        assert_eq!(
            judge("worker-02").plan(&HostView::new()).unwrap(),
            Planned::NoChange {
                reason: "no serving CSR of node worker-02 is Pending".into()
            }
        );
    }
}
