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

/// One object: `resource` as kubectl names it (`configmap`, `role.v1.rbac.authorization.k8s.io`).
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

/// Kinds that are never namespaced, as kubectl names them (the kind part of `resource`):
/// such an object can share a `kubectl get -n NS` with the objects of any namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "clusterrole",
    "clusterrolebinding",
    "node",
    "namespace",
    "certificatesigningrequest",
    "persistentvolume",
    "storageclass",
    "customresourcedefinition",
    "priorityclass",
    "validatingwebhookconfiguration",
    "mutatingwebhookconfiguration",
];

impl ObjectRef {
    fn kind_part(&self) -> &str {
        self.resource.split('.').next().unwrap_or("")
    }
    /// The API group: what follows `kind.version.` (empty for the core group).
    fn group(&self) -> &str {
        self.resource.splitn(3, '.').nth(2).unwrap_or("")
    }
    fn cluster_scoped(&self) -> bool {
        self.namespace.is_none() && CLUSTER_SCOPED.contains(&self.kind_part())
    }
    /// Whether `item`, as a `kubectl get` list printed it, is this object.
    fn is(&self, item: &Json) -> bool {
        let meta = &item["metadata"];
        let group = item["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map_or("", |(g, _)| g);
        meta["name"].as_str() == Some(self.name.as_str())
            && meta["namespace"].as_str() == self.namespace.as_deref()
            && item["kind"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(self.kind_part()))
            && group == self.group()
    }
}

/// Object reads answered together: one `kubectl get TYPE/NAME ... -o json --ignore-not-found`
/// for all objects of one cluster in one namespace, with the cluster-scoped ones joining any
/// of them. Each `kubectl` is a process start and an API discovery (from its cache); a
/// control-plane play that manages six objects pays that once, not six times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectBatch {
    /// Indexes (into the caller's reads) and objects, in the caller's order.
    pub members: Vec<(usize, ObjectRef)>,
}

impl ObjectBatch {
    /// The batches of `objects` (index, object), each in order of its first member.
    pub fn group(objects: &[(usize, &ObjectRef)]) -> Vec<ObjectBatch> {
        let mut out: Vec<(Cluster, Option<String>, ObjectBatch)> = Vec::new();
        let mut scoped: Vec<(usize, &ObjectRef)> = Vec::new();
        for &(i, o) in objects {
            if o.cluster_scoped() {
                scoped.push((i, o));
                continue;
            }
            match out
                .iter_mut()
                .find(|(c, ns, _)| *c == o.cluster && *ns == o.namespace)
            {
                Some((_, _, b)) => b.members.push((i, o.clone())),
                None => out.push((
                    o.cluster.clone(),
                    o.namespace.clone(),
                    ObjectBatch {
                        members: vec![(i, o.clone())],
                    },
                )),
            }
        }
        for (i, o) in scoped {
            match out.iter_mut().find(|(c, _, _)| *c == o.cluster) {
                Some((_, _, b)) => b.members.push((i, o.clone())),
                None => out.push((
                    o.cluster.clone(),
                    None,
                    ObjectBatch {
                        members: vec![(i, o.clone())],
                    },
                )),
            }
        }
        let mut batches: Vec<ObjectBatch> = out.into_iter().map(|(_, _, b)| b).collect();
        for b in &mut batches {
            b.members.sort_by_key(|(i, _)| *i);
        }
        batches.sort_by_key(|b| b.members[0].0);
        batches
    }

    /// The read whose output answers the whole batch.
    pub fn leader(&self) -> usize {
        self.members[0].0
    }

    /// One object alone is read as before; several in one `kubectl get`.
    pub fn command(&self) -> String {
        if let [(_, one)] = &self.members[..] {
            return one.get_command();
        }
        let first = &self.members[0].1;
        let ns = self.members.iter().find_map(|(_, o)| o.namespace.clone());
        let names: Vec<String> = self
            .members
            .iter()
            .map(|(_, o)| sh_quote(&format!("{}/{}", o.resource, o.name)))
            .collect();
        format!(
            "{} get {}{} -o json --ignore-not-found",
            first.cluster.base(),
            names.join(" "),
            ns_flag(&ns)
        )
    }

    /// Each member's object from what [`ObjectBatch::command`] printed: absent when the list
    /// does not hold it; every member fails when kubectl failed.
    pub fn parse(&self, out: &CommandOutput) -> Vec<(ObjectRef, KubeObject)> {
        if let [(_, one)] = &self.members[..] {
            return vec![(one.clone(), parse_object(out))];
        }
        let items: Result<Vec<Json>, String> = match parse_object(out) {
            Err(e) => Err(e),
            Ok(None) => Ok(Vec::new()),
            Ok(Some(v)) if v["kind"] == "List" => {
                Ok(v["items"].as_array().cloned().unwrap_or_default())
            }
            Ok(Some(v)) => Ok(vec![v]),
        };
        self.members
            .iter()
            .map(|(_, o)| {
                let got = match &items {
                    Err(e) => Err(e.clone()),
                    Ok(items) => Ok(items.iter().find(|i| o.is(i)).cloned()),
                };
                (o.clone(), got)
            })
            .collect()
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
    fn objects_of_one_cluster_are_read_in_one_kubectl_get_per_namespace() {
        let obj = |resource: &str, ns: Option<&str>, name: &str| ObjectRef {
            cluster: cluster(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            name: name.into(),
        };
        let crb = obj("clusterrolebinding.v1.rbac.authorization.k8s.io", None, "a");
        let cm = obj("configmap", Some("kube-public"), "cluster-info");
        let role = obj(
            "role.v1.rbac.authorization.k8s.io",
            Some("kube-public"),
            "cluster-info",
        );
        let secret = obj("secret", Some("kube-system"), "s");
        let default_ns = obj("configmap", None, "x");
        let batches = ObjectBatch::group(&[
            (0, &crb),
            (1, &cm),
            (2, &role),
            (4, &secret),
            (5, &default_ns),
        ]);
        let members: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.members.iter().map(|(i, _)| *i).collect())
            .collect();
        // The cluster-scoped binding joins the first namespace's call; an object without a
        // namespace that may be namespaced is read alone (kubectl's default namespace).
        assert_eq!(members, [vec![0, 1, 2], vec![4], vec![5]]);
        assert_eq!(batches[0].leader(), 0);
        assert_eq!(batches[0].command(), "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig get clusterrolebinding.v1.rbac.authorization.k8s.io/a configmap/cluster-info role.v1.rbac.authorization.k8s.io/cluster-info -n kube-public -o json --ignore-not-found");
        assert_eq!(batches[1].command(), secret.get_command());

        let out = |status, stdout: &str| CommandOutput {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"forbidden".to_vec(),
        };
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cluster-info","namespace":"kube-public"}}]}"#;
        let got = batches[0].parse(&out(0, list));
        assert_eq!(
            got[0].1.as_ref().unwrap().as_ref().unwrap()["kind"],
            "ClusterRoleBinding"
        );
        assert_eq!(
            got[1].1.as_ref().unwrap().as_ref().unwrap()["kind"],
            "ConfigMap"
        );
        assert_eq!(got[2].1, Ok(None), "the Role of the same name is absent");
        let all_absent = batches[0].parse(&out(0, ""));
        assert!(all_absent.iter().all(|(_, o)| *o == Ok(None)));
        let failed = batches[0].parse(&out(1, ""));
        assert!(failed
            .iter()
            .all(|(_, o)| *o == Err("kubectl get failed: forbidden".into())));
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
