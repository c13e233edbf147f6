//! The one integration test binary: runs the real `bootstrapctl` against lab hosts (real
//! OpenSSH sshd in namespaces on 127.x addresses) and against fixture files.

mod support;

mod apply;
mod bootstrap_flow;
mod cli_errors;
mod day_two;
mod e2e;
mod engine;
mod faults;
mod host_keys;
mod plan_equals_apply;
mod secrets;
mod ssh_laptop;
mod token_cli;
mod transport_auth;
mod transport_jump;
mod transport_ssh;
