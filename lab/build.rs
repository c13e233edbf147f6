//! A build id of the lab library, shared by `bootstrapctl-standin` and `bootstrapctl` (both
//! link the same build of this crate), so that `lab up` only bind-mounts a stand-in binary
//! from the same build as the lab code that mounts it.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    for watched in ["src", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    println!(
        "cargo:rustc-env=BOOTSTRAPCTL_LAB_BUILD_ID={nanos:x}-{:x}",
        std::process::id()
    );
}
