//! The lab crate's one integration test binary: real lab hosts (sshd in namespaces) and the
//! stand-ins run as processes of their own, through the crate's public API and binary only.

mod hosts;
mod kubectl;
mod support;
