//! How the kube modules talk to a cluster: the real `kubectl` on a control-plane host
//! (the task is delegated there), with an admin kubeconfig: which cluster, and references
//! to its objects.

use super::template::opt;
use super::{ModuleError, ResolveCx};
use crate::hoststate::{Cluster, ListRef, ObjectRef};
use crate::template::Tpl;

pub const DEFAULT_KUBECONFIG: &str = "/etc/kubernetes/admin.kubeconfig";

/// The cluster a kube module talks to, as the delegate host reaches it.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub cluster: Cluster,
}

impl Kubectl {
    pub fn resolve(
        kubectl: &Option<Tpl<String>>,
        kubeconfig: &Option<Tpl<String>>,
        cx: &ResolveCx<'_>,
    ) -> Result<Self, ModuleError> {
        Ok(Kubectl {
            cluster: Cluster {
                kubectl: opt(kubectl, cx)?.unwrap_or_else(|| "kubectl".into()),
                kubeconfig: opt(kubeconfig, cx)?.unwrap_or_else(|| DEFAULT_KUBECONFIG.into()),
            },
        })
    }

    pub fn object(&self, resource: &str, name: &str, namespace: Option<&str>) -> ObjectRef {
        ObjectRef {
            cluster: self.cluster.clone(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        field_selector: Option<&str>,
    ) -> ListRef {
        ListRef {
            cluster: self.cluster.clone(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            field_selector: field_selector.map(str::to_string),
        }
    }

    /// `kubectl ARGS` (already shell text), for checks that are not object reads.
    pub fn raw(&self, args: &str) -> String {
        self.cluster.raw(args)
    }
}

/// `kind.version.group` as kubectl resolves it (`clusterrolebinding.v1.rbac.authorization.k8s.io`);
/// core kinds by their lower-case name. With the version spelled out, kubectl maps the name
/// from its discovery cache: `kind.group` with a dotted group first parses as
/// `resource.version.group` (`clusterrolebinding`, version `rbac`, group
/// `authorization.k8s.io`), which no cached group has, so every such call threw the cache
/// away and discovered the whole API again.
pub fn resource_of(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, version)) => format!("{}.{version}.{group}", kind.to_ascii_lowercase()),
        None => kind.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resources_name_their_version() {
        assert_eq!(
            super::resource_of("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            "clusterrolebinding.v1.rbac.authorization.k8s.io"
        );
        assert_eq!(super::resource_of("v1", "ConfigMap"), "configmap");
    }
}
