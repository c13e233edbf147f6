//! Token discovery as kubeadm does it: trust the `kube-public/cluster-info` kubeconfig only
//! when its detached JWS for the token's id verifies with the token, and its CA matches a pin.

use base64::Engine as _;

use super::jws;
use super::token::BootstrapToken;

#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub server: String,
    pub ca_hashes: Vec<String>,
}

/// Verify the `data` of a cluster-info ConfigMap.
pub fn verify(
    data: &serde_json::Value,
    token: &BootstrapToken,
    pins: &[String],
    skip_ca: bool,
) -> Result<Verified, String> {
    let kubeconfig = data["kubeconfig"]
        .as_str()
        .ok_or("the cluster-info ConfigMap has no kubeconfig")?;
    let sig = data[format!("jws-kubeconfig-{}", token.id())].as_str().ok_or_else(|| {
        format!(
            "there is no JWS signed token in the cluster-info ConfigMap for token id {:?}; the bootstrap signer has not signed it (is the bootstrapsigner controller on, and the token valid and for signing?)",
            token.id()
        )
    })?;
    if !jws::verify(sig, kubeconfig.as_bytes(), token) {
        return Err("failed to verify JWS signature of the cluster-info kubeconfig: can't trust this API server".into());
    }
    let kc: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).map_err(|e| format!("cluster-info kubeconfig: {e}"))?;
    let cluster = &kc["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or("cluster-info kubeconfig has no server")?
        .to_string();
    let ca_pem = cluster["certificate-authority-data"]
        .as_str()
        .and_then(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .ok()
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or("cluster-info kubeconfig has no certificate-authority-data")?;
    let hashes = crate::pki::ca_hashes(&ca_pem).map_err(|e| format!("cluster CA: {e}"))?;
    if !skip_ca {
        if pins.is_empty() {
            return Err(
                "give --ca-cert-hash sha256:<hex> (or --unsafe-skip-ca-verification)".into(),
            );
        }
        let pins: Vec<String> = pins.iter().map(|p| p.to_ascii_lowercase()).collect();
        if !hashes.iter().any(|h| pins.contains(h)) {
            return Err(format!(
                "cluster CA found in cluster-info is not pinned: none of the public keys {:?} match --ca-cert-hash",
                hashes
            ));
        }
    }
    Ok(Verified {
        server,
        ca_hashes: hashes,
    })
}
