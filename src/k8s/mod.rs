//! Kubernetes specifics: bootstrap tokens and their Secret, the detached JWS of cluster-info,
//! the checks on kubelet serving CSRs, the kubelet flags per Kubernetes minor version.

pub mod csr;
pub mod discovery;
pub mod jws;
pub mod token;
pub mod versions;
