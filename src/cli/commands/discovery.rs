//! `discovery verify` and `pki ca-hash`.

use std::path::Path;

use crate::error::{CommandError, Error};
use crate::k8s::{discovery, token::BootstrapToken};

mod fetch;

pub fn verify(
    token: &str,
    file: Option<&Path>,
    server: Option<&str>,
    pins: &[String],
    skip_ca: bool,
) -> Result<i32, Error> {
    let token = BootstrapToken::parse(token).map_err(CommandError::TokenArg)?;
    let configmap: serde_json::Value = match (file, server) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).map_err(|source| CommandError::ReadFile {
                path: f.to_path_buf(),
                source,
            })?;
            serde_yaml::from_str(&text).map_err(|source| CommandError::ClusterInfoFile {
                path: f.to_path_buf(),
                source,
            })?
        }
        (None, Some(url)) => match fetch::cluster_info(url) {
            Ok(v) => v,
            Err(e) => {
                println!("invalid: fetching cluster-info from {url}: {e}");
                return Ok(1);
            }
        },
        (None, None) => {
            return Err(Error::Usage(
                "give --cluster-info FILE or --server URL".into(),
            ))
        }
    };
    match discovery::verify(&configmap["data"], &token, pins, skip_ca) {
        Ok(v) => {
            println!("verified: {} (CA {})", v.server, v.ca_hashes.join(", "));
            Ok(0)
        }
        Err(reason) => {
            println!("invalid: {reason}");
            Ok(1)
        }
    }
}

pub fn ca_hash(file: &Path) -> Result<i32, Error> {
    let pem = std::fs::read_to_string(file).map_err(|source| CommandError::ReadFile {
        path: file.to_path_buf(),
        source,
    })?;
    let hashes = crate::pki::ca_hashes(&pem).map_err(|source| CommandError::Certificates {
        path: file.to_path_buf(),
        source,
    })?;
    for h in hashes {
        println!("{h}");
    }
    Ok(0)
}
