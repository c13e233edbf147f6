//! A build id shared by `bootstrapctl` and `bootstrapctl-standin` (both link the same library
//! build), so that `lab up` only bind-mounts a stand-in binary from the same build as itself.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    for watched in ["src", "templates", "playbooks", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    println!(
        "cargo:rustc-env=BOOTSTRAPCTL_BUILD_ID={nanos:x}-{:x}",
        std::process::id()
    );
}
