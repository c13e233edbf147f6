//! Kubernetes specifics: bootstrap tokens and their Secret, the detached JWS of cluster-info,
//! the checks on kubelet serving CSRs, the kubelet flags per Kubernetes minor version.

pub mod api;
pub mod csr;
pub mod discovery;
pub mod jws;
pub mod kubeconfig;
pub mod token;
pub mod versions;
