//! Kubernetes specifics: bootstrap tokens and their Secret, the detached JWS of cluster-info.

pub mod discovery;
pub mod jws;
pub mod token;
