//! The one integration test binary: runs the real `bootstrapctl` against lab hosts (real
//! OpenSSH sshd in namespaces on 127.x addresses) and against fixture files.

mod support;

mod ansible_differential;
mod apply;
mod artifacts;
mod bootstrap_flow;
mod cli_errors;
mod day_two;
mod e2e;
mod engine;
mod faults;
mod host_keys;
mod init;
mod inventory_apply;
mod inventory_differential;
mod inventory_errors;
mod kube_flags_members;
mod plan_equals_apply;
mod preflight;
mod real_k8s;
mod real_k8s_differential;
mod reset;
mod secrets;
mod serving_certs;
mod ssh_laptop;
mod stale_temps;
mod token_cli;
mod trace;
mod transport_auth;
mod transport_jump;
mod transport_ssh;
mod umask;
