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

/// `kind.group` as kubectl resolves it (`clusterrolebinding.rbac.authorization.k8s.io`);
/// core kinds by their lower-case name. (`kind.version.group` would let kubectl map the name
/// from its discovery cache without rediscovering, but the real kubectl then failed to find
/// `clusterrolebinding` against a real kube-apiserver just restarted, so the form every
/// version resolves stays.)
pub fn resource_of(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.to_ascii_lowercase()),
        None => kind.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resources_name_their_group() {
        assert_eq!(
            super::resource_of("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            "clusterrolebinding.rbac.authorization.k8s.io"
        );
        assert_eq!(super::resource_of("v1", "ConfigMap"), "configmap");
    }
}
