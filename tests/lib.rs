//! The one integration test binary: runs the real `bootstrapctl` against lab hosts (real
//! OpenSSH sshd in namespaces on 127.x addresses) and against fixture files.

mod support;

mod apply;
mod cli_errors;
mod host_keys;
mod ssh_laptop;
