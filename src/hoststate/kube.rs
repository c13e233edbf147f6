//! Cluster objects as part of a host's view: which cluster (the kubectl and kubeconfig a host
//! uses), references to objects and lists, the `kubectl` commands that read and change them,
//! and the pure parsers of what those reads print.

use serde::Serialize;
use serde_json::Value as Json;

use super::{CommandOutput, KubeList, KubeObject};
use crate::shell::quote as sh_quote;

/// A cluster as one host reaches it: the same kubectl with the same kubeconfig is the same
/// cluster; the view of its objects is kept per host and per kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cluster {
    pub kubectl: String,
    pub kubeconfig: String,
}

/// One object: `resource` as kubectl names it (`configmap`, `role.rbac.authorization.k8s.io`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub cluster: Cluster,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// The objects of one resource in one namespace, optionally narrowed by a field selector of
/// `field=value` terms on top-level fields (`type=bootstrap.kubernetes.io/token`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ListRef {
    pub cluster: Cluster,
    pub resource: String,
    pub namespace: Option<String>,
    pub field_selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KubeRead {
    Object(ObjectRef),
    List(ListRef),
}

impl Cluster {
    fn base(&self) -> String {
        format!(
            "{} --kubeconfig {}",
            sh_quote(&self.kubectl),
            sh_quote(&self.kubeconfig)
        )
    }

    /// Server-side apply of YAML documents under our field manager, fed by a here-document.
    pub fn apply_command(&self, yaml: &str) -> String {
        format!(
            "{} apply --server-side --field-manager=bootstrapctl --force-conflicts -f - <<'__BOOTSTRAPCTL_EOF__'\n{}\n__BOOTSTRAPCTL_EOF__",
            self.base(),
            yaml.trim_end()
        )
    }

    /// `kubectl ARGS` for this cluster; `args` is already shell text.
    pub fn raw(&self, args: &str) -> String {
        format!("{} {args}", self.base())
    }
}

fn ns_flag(ns: &Option<String>) -> String {
    ns.as_ref()
        .map(|n| format!(" -n {}", sh_quote(n)))
        .unwrap_or_default()
}

impl ObjectRef {
    /// `get` as JSON; prints nothing (exit 0) when the object does not exist.
    pub fn get_command(&self) -> String {
        format!(
            "{} get {} {}{} -o json --ignore-not-found",
            self.cluster.base(),
            sh_quote(&self.resource),
            sh_quote(&self.name),
            ns_flag(&self.namespace)
        )
    }

    pub fn delete_command(&self) -> String {
        format!(
            "{} delete {} {}{} --ignore-not-found",
            self.cluster.base(),
            sh_quote(&self.resource),
            sh_quote(&self.name),
            ns_flag(&self.namespace)
        )
    }

    /// `Kind ns/name`, as diffs and messages name an object.
    pub fn label(&self, kind: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{kind} {ns}/{}", self.name),
            None => format!("{kind} {}", self.name),
        }
    }
}

impl ListRef {
    pub fn get_command(&self) -> String {
        format!(
            "{} get {}{}{} -o json",
            self.cluster.base(),
            sh_quote(&self.resource),
            ns_flag(&self.namespace),
            self.field_selector
                .as_ref()
                .map(|f| format!(" --field-selector {}", sh_quote(f)))
                .unwrap_or_default()
        )
    }

    /// Whether this list would hold `r` were it selected.
    pub fn holds(&self, r: &ObjectRef) -> bool {
        r.cluster == self.cluster && r.resource == self.resource && r.namespace == self.namespace
    }

    /// The field selector's terms, as the API server applies them to top-level fields.
    pub fn selects(&self, obj: &Json) -> bool {
        let Some(sel) = &self.field_selector else {
            return true;
        };
        sel.split(',').all(|term| match term.split_once("!=") {
            Some((k, v)) => obj[k.trim()].as_str() != Some(v.trim()),
            None => match term.split_once('=') {
                Some((k, v)) => obj[k.trim()].as_str() == Some(v.trim_start_matches('=').trim()),
                None => true,
            },
        })
    }
}

impl KubeRead {
    pub fn command(&self) -> String {
        match self {
            KubeRead::Object(o) => o.get_command(),
            KubeRead::List(l) => l.get_command(),
        }
    }
}

fn failed(out: &CommandOutput) -> String {
    format!(
        "kubectl get failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// What `kubectl get NAME -o json --ignore-not-found` printed.
pub fn parse_object(out: &CommandOutput) -> KubeObject {
    if out.status != 0 {
        return Err(failed(out));
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| format!("kubectl printed no JSON object: {e}"))
}

/// What `kubectl get RESOURCE -o json` printed: its `items`.
pub fn parse_list(out: &CommandOutput) -> KubeList {
    if out.status != 0 {
        return Err(failed(out));
    }
    let list: Json = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("kubectl printed no JSON list: {e}"))?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster {
            kubectl: "kubectl".into(),
            kubeconfig: "/etc/kubernetes/admin.kubeconfig".into(),
        }
    }

    #[test]
    fn reads_are_the_kubectl_commands_of_before() {
        let o = ObjectRef {
            cluster: cluster(),
            resource: "configmap".into(),
            namespace: Some("kube-public".into()),
            name: "cluster-info".into(),
        };
        assert_eq!(o.get_command(), "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig get configmap cluster-info -n kube-public -o json --ignore-not-found");
        let l = ListRef {
            cluster: cluster(),
            resource: "secret".into(),
            namespace: Some("kube-system".into()),
            field_selector: Some("type=bootstrap.kubernetes.io/token".into()),
        };
        assert_eq!(l.get_command(), "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig get secret -n kube-system --field-selector type=bootstrap.kubernetes.io/token -o json");
        assert!(l.selects(&serde_json::json!({"type": "bootstrap.kubernetes.io/token"})));
        assert!(!l.selects(&serde_json::json!({"type": "Opaque"})));
    }

    #[test]
    fn parses_absent_present_and_failed_reads() {
        let out = |status, stdout: &str| CommandOutput {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"forbidden".to_vec(),
        };
        assert_eq!(parse_object(&out(0, "\n")), Ok(None));
        assert_eq!(
            parse_object(&out(0, r#"{"kind":"Secret"}"#)),
            Ok(Some(serde_json::json!({"kind":"Secret"})))
        );
        assert_eq!(
            parse_object(&out(1, "")),
            Err("kubectl get failed: forbidden".into())
        );
        assert_eq!(
            parse_list(&out(0, r#"{"items":[{"a":1}]}"#)),
            Ok(vec![serde_json::json!({"a":1})])
        );
    }
}
