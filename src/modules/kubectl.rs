//! How the kube modules talk to a cluster: the real `kubectl` on a control-plane host
//! (the task is delegated there), with an admin kubeconfig. Command builders only.

use serde::Deserialize;

use super::template::opt;
use super::{ModuleError, ResolveCx};
use crate::shell::quote as sh_quote;
use crate::template::Tpl;

pub const DEFAULT_KUBECONFIG: &str = "/etc/kubernetes/admin.kubeconfig";

/// `kubectl` and `kubeconfig` arguments shared by the kube modules.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct KubectlArgs {
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

#[derive(Debug, Clone)]
pub struct Kubectl {
    base: String,
}

impl Kubectl {
    pub fn resolve(
        kubectl: &Option<Tpl<String>>,
        kubeconfig: &Option<Tpl<String>>,
        cx: &ResolveCx<'_>,
    ) -> Result<Self, ModuleError> {
        let bin = opt(kubectl, cx)?.unwrap_or_else(|| "kubectl".into());
        let kc = opt(kubeconfig, cx)?.unwrap_or_else(|| DEFAULT_KUBECONFIG.into());
        Ok(Kubectl {
            base: format!("{} --kubeconfig {}", sh_quote(&bin), sh_quote(&kc)),
        })
    }

    /// `get` one object as JSON; prints nothing (exit 0) when it does not exist.
    pub fn get(&self, resource: &str, name: &str, namespace: Option<&str>) -> String {
        format!(
            "{} get {} {}{} -o json --ignore-not-found",
            self.base,
            sh_quote(resource),
            sh_quote(name),
            ns_flag(namespace)
        )
    }

    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        field_selector: Option<&str>,
    ) -> String {
        format!(
            "{} get {}{}{} -o json",
            self.base,
            sh_quote(resource),
            ns_flag(namespace),
            field_selector
                .map(|f| format!(" --field-selector {}", sh_quote(f)))
                .unwrap_or_default()
        )
    }

    /// Server-side apply of YAML documents under our field manager, fed by a here-document.
    pub fn apply(&self, yaml: &str) -> String {
        format!(
            "{} apply --server-side --field-manager=bootstrapctl --force-conflicts -f - <<'__BOOTSTRAPCTL_EOF__'\n{}\n__BOOTSTRAPCTL_EOF__",
            self.base,
            yaml.trim_end()
        )
    }

    pub fn delete(&self, resource: &str, name: &str, namespace: Option<&str>) -> String {
        format!(
            "{} delete {} {}{} --ignore-not-found",
            self.base,
            sh_quote(resource),
            sh_quote(name),
            ns_flag(namespace)
        )
    }

    pub fn raw(&self, args: &str) -> String {
        format!("{} {args}", self.base)
    }
}

fn ns_flag(ns: Option<&str>) -> String {
    ns.map(|n| format!(" -n {}", sh_quote(n)))
        .unwrap_or_default()
}

/// `kind.group` as kubectl resolves it (`clusterrolebinding.rbac.authorization.k8s.io`);
/// core kinds by their lower-case name.
pub fn resource_of(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.to_ascii_lowercase()),
        None => kind.to_ascii_lowercase(),
    }
}
