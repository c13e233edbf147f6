//! bootstrapctl: onboard Kubernetes worker nodes with TLS bootstrapping, Ansible-style, over SSH.

pub mod transport;
