//! `kube_wait`: wait (with a timeout) until the cluster reports something: the API is
//! healthy, a Node is registered or Ready, cluster-info is signed for a token. Waiting is not
//! a change: a wait that succeeds reports `ok`. Whether it holds already is read from the
//! view's cluster objects, so a preview sees the objects earlier tasks plan.
//!
//! Many nodes are waited for together: `nodes_ready` reads every node in one `kubectl get
//! nodes` per poll and registers each one's state (`states`, one line per node); a task per
//! host then judges its own node from those `states` (`node_ready` or `node_registered` with
//! `states`), without reading the cluster again, saying Registered and Ready apart.

use serde::Deserialize;

use super::kubectl::Kubectl;
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ListRef, ObjectRef, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

/// The pause between two polls of a wait: a fraction of a second where `sleep` takes one (GNU
/// coreutils, busybox), else POSIX's whole second. Joins finish between polls, so a whole
/// second per poll added up to seconds per run (nodes Ready, serving CSRs filed and issued).
pub const POLL_SLEEP: &str = "sleep 0.25 2>/dev/null || sleep 1";

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ApiHealthy,
    NodeRegistered,
    NodeReady,
    NodesReady,
    ClusterInfoSigned,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(rename = "for")]
    pub condition: Tpl<Condition>,
    pub node: Option<Tpl<String>>,
    pub token_id: Option<Tpl<String>>,
    /// `nodes_ready`: the nodes to wait for.
    pub nodes: Option<Tpl<Vec<String>>>,
    /// `node_ready` / `node_registered`: judge `node` from these states (what `nodes_ready`
    /// registered) instead of reading the cluster.
    pub states: Option<Tpl<String>>,
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
    /// Every node of the list Ready, read in one list.
    Nodes {
        list: ListRef,
        nodes: Vec<String>,
        /// The command that prints every node's `states` line, once the wait is over.
        states: String,
    },
    /// One node judged from states registered by `nodes_ready`.
    States {
        states: String,
        node: String,
        ready: bool,
    },
}

/// kubectl's jsonpath for the line of one node: name, Ready status, `reason: message`.
macro_rules! node_line {
    () => {
        "{.metadata.name}{\"\\t\"}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\t\"}{.status.conditions[?(@.type==\"Ready\")].reason}{\": \"}{.status.conditions[?(@.type==\"Ready\")].message}{\"\\n\"}"
    };
}

/// One line per node of a list, as `node_line!` prints a node.
const NODE_LINES: &str = concat!("{range .items[*]}", node_line!(), "{end}");

/// A node as a `states` line says: absent, or registered with its Ready status and why.
#[derive(Debug, PartialEq, Eq)]
enum NodeState {
    Absent,
    Registered { ready: bool, why: String },
}

/// The state of `node` in `states` (lines as `NODE_LINES` prints them).
fn node_state(states: &str, node: &str) -> NodeState {
    for line in states.lines() {
        let mut f = line.splitn(3, '\t');
        if f.next() != Some(node) {
            continue;
        }
        let ready = f.next() == Some("True");
        let why = f
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(':')
            .trim()
            .to_string();
        return NodeState::Registered { ready, why };
    }
    NodeState::Absent
}

/// The `states` line of one node object, as `NODE_LINES` prints it.
fn state_line(node: &serde_json::Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let field = |k: &str| {
        ready
            .and_then(|c| c[k].as_str())
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "{}\t{}\t{}: {}",
        node["metadata"]["name"].as_str().unwrap_or_default(),
        field("status"),
        field("reason"),
        field("message")
    )
}

/// What the verification says of a node: Registered and Ready apart.
fn describe(node: &str, state: &NodeState) -> String {
    match state {
        NodeState::Absent => format!("node {node} is not Registered (its kubelet has not joined)"),
        NodeState::Registered { ready: true, .. } => format!("node {node} is Registered and Ready"),
        NodeState::Registered { ready: false, why } => {
            let lower = why.to_ascii_lowercase();
            let hint = if lower.contains("cni") || lower.contains("network") {
                " (no CNI network plugin is running on it yet: install one)"
            } else {
                ""
            };
            let why = if why.is_empty() {
                "no Ready condition yet"
            } else {
                why
            };
            format!("node {node} is Registered but NotReady: {why}{hint}")
        }
    }
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
            Condition::NodeReady | Condition::NodeRegistered if self.states.is_some() => {
                let node = need(&self.node, "node")?;
                let ready = matches!(
                    self.condition.resolve(cx.templates, cx.vars, cx.what)?,
                    Condition::NodeReady
                );
                (
                    String::new(),
                    format!(
                        "node {node} to be {}",
                        if ready { "Ready" } else { "Registered" }
                    ),
                    Now::States {
                        states: need(&self.states, "states")?,
                        node,
                        ready,
                    },
                )
            }
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
            Condition::NodesReady => {
                let nodes = opt(&self.nodes, cx)?.ok_or_else(|| {
                    ModuleError::Invalid("`nodes` is required for this condition".into())
                })?;
                let list = k.list("node", None, None);
                // One watch instead of a list per poll: kubectl lists every node once, then
                // prints a node's line as it changes, and the shell counts the named nodes
                // that are Ready; once all are, it stops kubectl, by the pid its shell printed
                // before becoming kubectl. A poll would list the whole fleet every quarter
                // second while it joins, its cost growing with the fleet times the wait.
                // The shell reads the watch as it comes (awk would wait for a block of it),
                // split at blanks: in a watch kubectl's tab writer pads the columns with
                // spaces (a list keeps the tabs).
                // The watch ends at the wait's end (`--request-timeout`); one that failed or
                // ended early is started again by the loop around this check, as a failed
                // poll was. Node names hold no space, tab or glob character.
                let mut want: Vec<&str> = nodes.iter().map(String::as_str).collect();
                want.sort_unstable();
                want.dedup();
                let watch = format!(
                    "echo \"$$\"; exec {} 2>/dev/null",
                    k.raw(&format!(
                        "get nodes --watch --request-timeout=\"$1\"s -o {}",
                        sh_quote(concat!("jsonpath=", node_line!()))
                    ))
                );
                let check = format!(
                    "{{ bsctl_r=$(( ${{bsctl_end:-0}} - $(date +%s) )); [ \"$bsctl_r\" -gt 0 ] || bsctl_r=1; \
sh -c {watch} sh \"$bsctl_r\" | {{ read -r bsctl_pid; bsctl_c=0; bsctl_rd=' '; \
while read -r bsctl_nm bsctl_st _; do \
case {want} in *\" $bsctl_nm \"*) ;; *) continue ;; esac; \
case $bsctl_rd in *\" $bsctl_nm \"*) bsctl_was=1 ;; *) bsctl_was= ;; esac; \
if [ \"$bsctl_st\" = True ]; then [ -n \"$bsctl_was\" ] || {{ bsctl_rd=\"$bsctl_rd$bsctl_nm \"; bsctl_c=$((bsctl_c + 1)); }}; \
elif [ -n \"$bsctl_was\" ]; then bsctl_rd=\"${{bsctl_rd%%\" $bsctl_nm \"*}} ${{bsctl_rd#*\" $bsctl_nm \"}}\"; bsctl_c=$((bsctl_c - 1)); fi; \
if [ {n} -gt 0 ] && [ \"$bsctl_c\" -ge {n} ]; then kill \"$bsctl_pid\" 2>/dev/null; exit 0; fi; \
done; exit 1; }}; }}",
                    watch = sh_quote(&watch),
                    want = sh_quote(&format!(" {} ", want.join(" "))),
                    n = want.len(),
                );
                (
                    check,
                    format!(
                        "{} node{} to be Ready",
                        nodes.len(),
                        if nodes.len() == 1 { "" } else { "s" }
                    ),
                    Now::Nodes {
                        list,
                        nodes,
                        states: k.raw(&format!(
                            "get nodes -o {}",
                            sh_quote(&format!("jsonpath={NODE_LINES}"))
                        )),
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
            Now::Nodes { list, .. } => vec![Read::Kube(KubeRead::List(list.clone()))],
            Now::States { .. } => Vec::new(),
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
            Now::Nodes { nodes, .. } => {
                let states = self.states_now(view)?;
                nodes.iter().all(|n| {
                    matches!(
                        node_state(&states, n),
                        NodeState::Registered { ready: true, .. }
                    )
                })
            }
            Now::States {
                states,
                node,
                ready,
            } => {
                let state = node_state(states, node);
                let holds = match &state {
                    NodeState::Absent => false,
                    NodeState::Registered { ready: r, .. } => *r || !ready,
                };
                if holds {
                    return Ok(Planned::NoChange {
                        reason: describe(node, &state),
                    });
                }
                // The verdict is known; failing on the host itself keeps the check pure (a
                // preview skips it, as it skips the wait whose states it judges).
                let msg = describe(node, &state);
                return Ok(Planned::Change {
                    ops: vec![Op::Exec {
                        command: format!("echo {} >&2; exit 1", sh_quote(&msg)),
                        chdir: None,
                    }],
                    diffs: vec![DiffItem {
                        subject: "wait".into(),
                        before: String::new(),
                        after: format!("{msg}\n"),
                        secret: false,
                    }],
                });
            }
        };
        if holds {
            return Ok(Planned::NoChange {
                reason: format!("done waiting for {}", self.what),
            });
        }
        if let Now::Nodes { states, .. } = &self.now {
            // The wait ends when all are Ready or at the timeout, then prints every node's
            // state from one list: each node's own task judges them.
            let command = format!(
                "bsctl_end=$(( $(date +%s) + {t} ))\nuntil {check}; do\n  if [ \"$(date +%s)\" -ge \"$bsctl_end\" ]; then break; fi\n  {POLL_SLEEP}\ndone\nbsctl_n=$({list} 2>/dev/null) || :\nprintf '%s\\n' \"$bsctl_n\"",
                check = self.check,
                t = self.timeout,
                list = states,
            );
            return Ok(Planned::Change {
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
            });
        }
        let command = format!(
            "bsctl_end=$(( $(date +%s) + {t} ))\nuntil {check}; do\n  if [ \"$(date +%s)\" -ge \"$bsctl_end\" ]; then echo {msg} >&2; exit 1; fi\n  {POLL_SLEEP}\ndone",
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

    fn output(&self, view: &HostView) -> Vec<(String, minijinja::Value)> {
        match &self.now {
            Now::Nodes { .. } => self
                .states_now(view)
                .map(|s| vec![("states".into(), minijinja::Value::from(s))])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

impl KubeWait {
    /// The `states` lines of the nodes as the view has them (a failed read: none yet).
    fn states_now(&self, view: &HostView) -> Result<String, ModuleError> {
        let Now::Nodes { list, .. } = &self.now else {
            return Ok(String::new());
        };
        let items = view
            .kube_list(list)
            .ok_or_else(|| ModuleError::Invalid("node list was not read".into()))?
            .unwrap_or_default();
        Ok(items.iter().map(|n| state_line(n) + "\n").collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{simulate, Op};

    /// The module for `args` (YAML), resolved without variables.
    fn resolved(args: &str) -> KubeWait {
        let args: Args = serde_yaml::from_str(args).unwrap();
        crate::modules::resolve_in_test(minijinja::context! {}, |cx| args.resolve(cx))
    }

    /// What `script` (using the nodes_ready module `m`) did as the host runs it: real sh,
    /// under `timeout` so that a watch left running fails the test instead of hanging it,
    /// with a kubectl on PATH that runs `watch` when asked for a watch and `list` otherwise.
    struct Ran {
        stdout: String,
        /// The arguments of each kubectl call, one line each.
        calls: String,
    }

    fn run_with_kubectl(script: &str, watch: &str, list: &str) -> Ran {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bsctl-kube-wait-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kubectl = dir.join("kubectl");
        let calls = dir.join("calls");
        std::fs::write(
            &kubectl,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncase \"$*\" in *--watch*) {watch} ;; *) {list} ;; esac\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &kubectl,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        let out = std::process::Command::new("timeout")
            .args(["20", "sh", "-c", script])
            .env("PATH", path)
            .output()
            .unwrap();
        let ran = Ran {
            stdout: String::from_utf8(out.stdout).unwrap(),
            calls: std::fs::read_to_string(&calls).unwrap_or_default(),
        };
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(out.status.code(), Some(124), "timed out: {}", ran.calls);
        ran
    }

    /// Whether the nodes_ready check holds with a watch that prints `lines` (printf format)
    /// and then runs `after`.
    fn nodes_ready_holds_then(nodes: &str, lines: &str, after: &str) -> (bool, String) {
        let m = resolved(&format!("{{for: nodes_ready, nodes: {nodes}}}"));
        let script = format!(
            "bsctl_end=$(( $(date +%s) + 60 ))\nif {}; then echo HOLDS; fi",
            m.check
        );
        let r = run_with_kubectl(&script, &format!("printf '{lines}'; {after}"), "exit 1");
        (r.stdout == "HOLDS\n", r.calls)
    }

    fn nodes_ready_holds(nodes: &str, lines: &str) -> bool {
        nodes_ready_holds_then(nodes, lines, ":").0
    }

    #[test]
    fn the_nodes_ready_check_holds_only_when_every_named_node_is_ready() {
        // As kubectl prints a watch: its tab writer pads the columns with spaces.
        let ready = "w-1   True    KubeletReady: ok\\nw-2   True    KubeletReady: ok\\ncp-1  False   x: y\\n";
        assert!(nodes_ready_holds("[w-1, w-2]", ready));
        // Tabs split the same.
        assert!(nodes_ready_holds(
            "[w-1]",
            "w-1\\tTrue\\tKubeletReady: ok\\n"
        ));
        assert!(!nodes_ready_holds("[w-1]", "w-1\\tFalse\\tx: y\\n"));
        assert!(nodes_ready_holds("[w-2]", ready));
        assert!(nodes_ready_holds("[w-2, w-2]", ready));
        assert!(!nodes_ready_holds("[w-1, cp-1]", ready));
        assert!(!nodes_ready_holds("[w-1, w-3]", ready));
        // A name is matched whole, not as a prefix of another node's.
        assert!(!nodes_ready_holds("[w-]", ready));
        assert!(!nodes_ready_holds("[w-1]", ""));
        // A node that turns Ready counts; one that turns NotReady again no longer does.
        assert!(nodes_ready_holds(
            "[w-1]",
            "w-1\\tFalse\\tx: y\\nw-1\\tTrue\\tKubeletReady: ok\\n"
        ));
        assert!(!nodes_ready_holds(
            "[w-1, w-2]",
            "w-1\\tTrue\\tok\\nw-1\\tFalse\\tx: y\\nw-2\\tTrue\\tok\\n"
        ));
    }

    #[test]
    fn the_nodes_ready_watch_is_stopped_once_every_node_is_ready() {
        // A watch goes on after the last node is Ready: the check stops it (else `timeout`
        // would end the run and fail the test).
        let (holds, calls) = nodes_ready_holds_then(
            "[w-1, w-2]",
            "w-1   False   NotReady: no\\nw-2   True    ok\\nw-1   True    ok\\n",
            "exec sleep 60",
        );
        assert!(holds);
        // One watch, bounded by what is left of the wait.
        let secs: u64 = calls
            .split("get nodes --watch --request-timeout=")
            .nth(1)
            .and_then(|rest| rest.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{calls}"));
        assert!((1..=61).contains(&secs), "{calls}");
        assert_eq!(calls.lines().count(), 1, "{calls}");
    }

    #[test]
    fn the_nodes_ready_wait_prints_every_node_from_one_list_once_over() {
        let m = resolved("{for: nodes_ready, nodes: [w-1, w-2], timeout: 30}");
        let [Read::Kube(KubeRead::List(list))] = &m.reads()[..] else {
            panic!("{:?}", m.reads())
        };
        let mut view = HostView::new();
        view.set_kube_list(list, Ok(Vec::new()));
        let Planned::Change { ops, .. } = m.plan(&view).unwrap() else {
            panic!("no node is Ready: a wait")
        };
        let [Op::Exec { command, .. }] = &ops[..] else {
            panic!("{ops:?}")
        };
        let r = run_with_kubectl(
            command,
            "printf 'w-1\\tTrue\\tok\\nw-2\\tTrue\\tok\\n'; exec sleep 60",
            "printf 'w-1\\tTrue\\tKubeletReady: ok\\nw-2\\tTrue\\tKubeletReady: ok\\n'",
        );
        assert_eq!(
            r.stdout, "w-1\tTrue\tKubeletReady: ok\nw-2\tTrue\tKubeletReady: ok\n",
            "{}",
            r.calls
        );
        assert_eq!(
            r.calls.lines().count(),
            2,
            "a watch, then one list: {}",
            r.calls
        );
    }

    #[test]
    fn a_preview_sees_the_signature_an_earlier_task_plans() {
        let m = resolved("{for: cluster_info_signed, token_id: abcdef}");
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
