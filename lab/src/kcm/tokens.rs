//! Bootstrap-token Secrets (kube-system, type bootstrap.kubernetes.io/token) and the two
//! controllers that use them: bootstrapsigner (signs kube-public/cluster-info for every valid
//! signing token, drops signatures of tokens that are gone) and tokencleaner (deletes expired
//! token Secrets). Expiration follows the upstream helpers: expired at the instant, and an
//! unparseable expiration counts as expired.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::jws;
use crate::kube::{klog, Api, ApiError};
use crate::tokens::{self, secret_data, Expiry, SECRET_TYPE};

pub(crate) const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
pub(crate) const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
pub(crate) const JWS_PREFIX: &str = "jws-kubeconfig-";

fn name(s: &Value) -> &str {
    s["metadata"]["name"].as_str().unwrap_or("")
}

/// Some(true) when expired, Some(false) when not, None when there is no expiration.
fn expired(data: &BTreeMap<String, String>, now: i64, secret_name: &str) -> Option<bool> {
    let expiry = Expiry::of(data);
    match expiry {
        Expiry::Never => return None,
        Expiry::Unparseable => klog('I', "secret.go:68", &format!("Unparseable expiration time ({}) in kube-system/{secret_name} Secret. Treating as expired.", data["expiration"])),
        Expiry::At(_) => {}
    }
    let now = time::OffsetDateTime::from_unix_timestamp(now).ok()?;
    Some(expiry.expired(now))
}

/// (token-id, token-secret) of a Secret that may sign cluster-info now, else None.
pub(crate) fn signing_token(s: &Value, now: i64) -> Option<(String, String)> {
    if s["type"].as_str() != Some(SECRET_TYPE) {
        return None;
    }
    let d = secret_data(s);
    let id = d.get("token-id")?;
    let secret = d.get("token-secret")?;
    if !tokens::valid_id(id) || !tokens::valid_secret(secret) {
        return None;
    }
    if name(s) != format!("{}{id}", tokens::SECRET_PREFIX) {
        return None;
    }
    if !tokens::has_usage(&d, "signing") {
        return None;
    }
    if expired(&d, now, name(s)) == Some(true) {
        return None;
    }
    Some((id.clone(), secret.clone()))
}

fn token_secrets(api: &dyn Api) -> Result<Vec<Value>, ApiError> {
    Ok(api
        .list(SECRETS)?
        .into_iter()
        .filter(|s| s["type"].as_str() == Some(SECRET_TYPE))
        .collect())
}

/// One pass of bootstrapsigner. Returns whether cluster-info was updated.
pub(crate) fn bootstrapsigner(api: &dyn Api, now: i64) -> Result<bool, ApiError> {
    let mut cm = match api.get(CLUSTER_INFO) {
        Ok(cm) => cm,
        Err(e) if e.not_found() => return Ok(false),
        Err(e) => return Err(e),
    };
    let Some(content) = cm["data"]["kubeconfig"].as_str().map(str::to_string) else {
        klog(
            'W',
            "bootstrapsigner.go:218",
            "No kubeconfig key in kube-public/cluster-info configmap",
        );
        return Ok(false);
    };
    let tokens: BTreeMap<String, String> = token_secrets(api)?
        .iter()
        .filter_map(|s| signing_token(s, now))
        .collect();
    let data = cm["data"].as_object().cloned().unwrap_or_default();
    let mut new = data.clone();
    new.retain(|k, _| !k.starts_with(JWS_PREFIX));
    for (id, secret) in &tokens {
        new.insert(
            format!("{JWS_PREFIX}{id}"),
            Value::from(jws::detached(&content, id, secret)),
        );
    }
    if new == data {
        return Ok(false);
    }
    for k in data
        .keys()
        .filter(|k| k.starts_with(JWS_PREFIX) && !new.contains_key(*k))
    {
        klog('I', "bootstrapsigner.go:250", &format!("Removing signature {k} from kube-public/cluster-info: its token is gone, expired or not for signing"));
    }
    for k in new
        .keys()
        .filter(|k| k.starts_with(JWS_PREFIX) && data.get(*k) != new.get(*k))
    {
        klog(
            'I',
            "bootstrapsigner.go:240",
            &format!("Signing kube-public/cluster-info with {k}"),
        );
    }
    cm["data"] = Value::Object(new);
    api.put(CLUSTER_INFO, &cm)?;
    Ok(true)
}

/// One pass of tokencleaner: deletes expired token Secrets. Returns the names deleted.
pub(crate) fn tokencleaner(api: &dyn Api, now: i64) -> Result<Vec<String>, ApiError> {
    let mut deleted = Vec::new();
    for s in token_secrets(api)? {
        let n = name(&s).to_string();
        if expired(&secret_data(&s), now, &n) == Some(true) {
            klog(
                'I',
                "tokencleaner.go:194",
                &format!("\"Deleting expired secret\" secret=\"kube-system/{n}\""),
            );
            match api.delete(&format!("{SECRETS}/{n}")) {
                Ok(()) => deleted.push(n),
                Err(e) if e.not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeApi;
    use base64::Engine;
    use serde_json::json;

    fn token(id: &str, secret: &str, extra: &[(&str, &str)]) -> Value {
        let e = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = serde_json::Map::new();
        data.insert("token-id".into(), e(id).into());
        data.insert("token-secret".into(), e(secret).into());
        for (k, v) in extra {
            data.insert(k.to_string(), e(v).into());
        }
        json!({"metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
               "type": SECRET_TYPE, "data": data})
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn signs_valid_signing_tokens_and_removes_stale_signatures() {
        let api = FakeApi::default();
        api.insert(
            CLUSTER_INFO,
            json!({"metadata": {"name": "cluster-info"},
            "data": {"kubeconfig": "KC", "jws-kubeconfig-zzzzzz": "old..sig"}}),
        );
        let signing = [("usage-bootstrap-signing", "true")];
        api.insert(
            &format!("{SECRETS}/bootstrap-token-abcdef"),
            token("abcdef", "0123456789abcdef", &signing),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-nosign"),
            token("nosign", "0123456789abcdef", &[]),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-expird"),
            token(
                "expird",
                "0123456789abcdef",
                &[
                    ("usage-bootstrap-signing", "true"),
                    ("expiration", "2020-01-01T00:00:00Z"),
                ],
            ),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-badexp"),
            token(
                "badexp",
                "0123456789abcdef",
                &[("usage-bootstrap-signing", "true"), ("expiration", "soon")],
            ),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-future"),
            token(
                "future",
                "0123456789abcdef",
                &[
                    ("usage-bootstrap-signing", "true"),
                    ("expiration", "2099-01-01T00:00:00Z"),
                ],
            ),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-BADID1"),
            token("BADID1", "0123456789abcdef", &signing),
        );
        assert!(bootstrapsigner(&api, NOW).unwrap());
        let data = api.obj(CLUSTER_INFO).unwrap()["data"].clone();
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "jws-kubeconfig-abcdef",
                "jws-kubeconfig-future",
                "kubeconfig"
            ]
        );
        assert_eq!(
            data["jws-kubeconfig-abcdef"],
            jws::detached("KC", "abcdef", "0123456789abcdef")
        );
        assert!(
            !bootstrapsigner(&api, NOW).unwrap(),
            "a second pass changes nothing"
        );

        api.delete(&format!("{SECRETS}/bootstrap-token-future"))
            .unwrap();
        assert!(bootstrapsigner(&api, NOW).unwrap());
        assert!(api.obj(CLUSTER_INFO).unwrap()["data"]
            .get("jws-kubeconfig-future")
            .is_none());
    }

    #[test]
    fn cleaner_deletes_expired_and_unparseable() {
        let api = FakeApi::default();
        api.insert(
            &format!("{SECRETS}/bootstrap-token-aaaaaa"),
            token(
                "aaaaaa",
                "0123456789abcdef",
                &[("expiration", "2023-11-14T22:13:20Z")],
            ),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-bbbbbb"),
            token(
                "bbbbbb",
                "0123456789abcdef",
                &[("expiration", "2023-11-14T22:13:21Z")],
            ),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-cccccc"),
            token("cccccc", "0123456789abcdef", &[("expiration", "never")]),
        );
        api.insert(
            &format!("{SECRETS}/bootstrap-token-dddddd"),
            token("dddddd", "0123456789abcdef", &[]),
        );
        api.insert(
            &format!("{SECRETS}/other"),
            json!({"metadata": {"name": "other"}, "type": "Opaque",
            "data": {"expiration": "MjAwMC0wMS0wMVQwMDowMDowMFo="}}),
        );
        // NOW is 2023-11-14T22:13:20Z: expired at the instant.
        let d = tokencleaner(&api, NOW).unwrap();
        assert_eq!(d, ["bootstrap-token-aaaaaa", "bootstrap-token-cccccc"]);
        assert!(api.obj(&format!("{SECRETS}/other")).is_some());
        assert!(api
            .obj(&format!("{SECRETS}/bootstrap-token-bbbbbb"))
            .is_some());
    }
}
