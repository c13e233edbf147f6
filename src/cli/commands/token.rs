//! `token generate|validate` (offline, with the API server's exact rules) and
//! `token create|list|delete` (on the cluster, through the first control-plane host).

use std::time::SystemTime;

use base64::Engine as _;

use crate::cli::args::RunArgs;
use crate::cli::commands::runner;
use crate::cli::settings::RunSettings;
use crate::error::{CommandError, Error};
use crate::inventory::Inventory;
use crate::k8s::token::{
    check_expiration, format_rfc3339, parse_expiration, validate_group, BootstrapToken,
};

pub fn generate() -> Result<i32, Error> {
    let token = BootstrapToken::generate().map_err(CommandError::Token)?;
    println!("{}", token.full());
    Ok(0)
}

pub fn validate(token: &str, groups: &[String], expiration: Option<&str>) -> Result<i32, Error> {
    let result = BootstrapToken::parse(token).and_then(|t| {
        for g in groups.iter().filter(|g| !g.is_empty()) {
            validate_group(g)?;
        }
        if let Some(e) = expiration {
            check_expiration(e, SystemTime::now())?;
        }
        Ok(t)
    });
    match result {
        Ok(t) => {
            println!(
                "valid: token {t} (user system:bootstrap:{}, groups system:bootstrappers{})",
                t.id(),
                groups
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| format!(", {g}"))
                    .collect::<String>()
            );
            Ok(0)
        }
        Err(e) => {
            // Never echo the token itself: it may be a real one.
            println!("invalid: {e}");
            Ok(1)
        }
    }
}

/// The host the cluster commands go through: the first of group control_plane.
pub fn first_control_plane(inv: &Inventory) -> Result<String, Error> {
    inv.group_hosts("control_plane")
        .into_iter()
        .next()
        .ok_or_else(|| {
            CommandError::NoControlPlane {
                inventory: inv.source().to_path_buf(),
            }
            .into()
        })
}

const KUBECTL_VARS: &str = "kubectl: \"{{ kubectl | default('kubectl') }}\"\n        kubeconfig: \"{{ admin_kubeconfig | default('/etc/kubernetes/admin.kubeconfig') }}\"";

/// Run a small playbook of cluster tasks on the first control-plane host.
fn on_control_plane(
    run: RunArgs,
    tasks: &str,
    extra: Vec<String>,
) -> Result<(runner::Finished, String, String), Error> {
    let s = RunSettings::from_args(run, None, false)?;
    let inventory = s.load_inventory()?;
    let cp = first_control_plane(&inventory)?;
    let address = inventory
        .host(&cp)
        .and_then(|h| h.address().ok())
        .unwrap_or_else(|| cp.clone());
    let text = format!("- name: cluster tasks through {cp}\n  hosts: {cp}\n  gather_facts: false\n  become: true\n  tasks:\n{tasks}");
    let playbook = runner::shipped(&text, "token.yaml")?;
    let hosts = vec![vec![cp.clone()]];
    let mut vars = s.extra_vars.clone();
    vars.extend(extra);
    let f = runner::execute(
        &s,
        inventory,
        playbook,
        std::env::current_dir().unwrap_or_default(),
        hosts,
        &vars,
        true,
    )?;
    Ok((f, cp, address))
}

#[allow(clippy::too_many_arguments)]
pub fn create(
    run: RunArgs,
    ttl: &str,
    usages: &[String],
    groups: &[String],
    description: &str,
    print_join: bool,
) -> Result<i32, Error> {
    let token = BootstrapToken::generate().map_err(CommandError::Token)?;
    let tasks = format!(
        "    - name: create a bootstrap token\n      bootstrap_token:\n        token: \"{{{{ new_token }}}}\"\n        ttl: {}\n        usages: {}\n        groups: {}\n        description: {}\n        {KUBECTL_VARS}\n      register: created\n{}",
        serde_json::to_string(ttl).unwrap_or_default(),
        serde_json::to_string(usages).unwrap_or_default(),
        serde_json::to_string(groups).unwrap_or_default(),
        serde_json::to_string(description).unwrap_or_default(),
        if print_join {
            "    - name: cluster CA\n      command: cat {{ cluster_ca_cert | default('/etc/kubernetes/pki/ca.crt') }}\n      register: ca\n      changed_when: false\n      check_mode: false\n"
        } else {
            ""
        }
    );
    let (f, cp, address) =
        on_control_plane(run, &tasks, vec![format!("new_token={}", token.full())])?;
    if f.code != 0 {
        return Ok(f.code);
    }
    // The one place the token is shown: it is what the user asked for.
    println!("{}", token.full());
    if print_join {
        let ca = runner::registered(&f, &cp, "ca")
            .and_then(|v| v.get_attr("stdout").ok())
            .map(|v| v.to_string())
            .unwrap_or_default();
        let pins = crate::pki::ca_hashes(&ca).map_err(|source| CommandError::ClusterCa {
            host: cp.clone(),
            source,
        })?;
        println!(
            "kubeadm join {address}:6443 --token {} {}",
            token.full(),
            pins.iter()
                .map(|p| format!("--discovery-token-ca-cert-hash {p}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(0)
}

pub fn list(run: RunArgs) -> Result<i32, Error> {
    let tasks = "    - name: bootstrap token secrets\n      command: \"{{ kubectl | default('kubectl') }} --kubeconfig {{ admin_kubeconfig | default('/etc/kubernetes/admin.kubeconfig') }} get secrets -n kube-system --field-selector type=bootstrap.kubernetes.io/token -o json\"\n      register: secrets\n      changed_when: false\n      check_mode: false\n      no_log: true\n";
    let (f, cp, _) = on_control_plane(run, tasks, Vec::new())?;
    if f.code != 0 {
        return Ok(f.code);
    }
    let stdout = runner::registered(&f, &cp, "secrets")
        .and_then(|v| v.get_attr("stdout").ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    let list: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|source| CommandError::KubectlOutput {
            host: cp.clone(),
            source,
        })?;
    print!("{}", token_table(&list, SystemTime::now()));
    Ok(0)
}

/// kubeadm's `token list` columns; the secret half of every token is redacted.
pub fn token_table(list: &serde_json::Value, now: SystemTime) -> String {
    let decode = |d: &serde_json::Value, k: &str| -> String {
        d.get(k)
            .and_then(|v| v.as_str())
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let mut rows = vec![[
        "TOKEN".to_string(),
        "TTL".into(),
        "EXPIRES".into(),
        "USAGES".into(),
        "DESCRIPTION".into(),
        "EXTRA GROUPS".into(),
    ]];
    for item in list["items"].as_array().into_iter().flatten() {
        let d = &item["data"];
        let id = decode(d, "token-id");
        let exp = decode(d, "expiration");
        let (ttl, expires) = if exp.is_empty() {
            ("<forever>".to_string(), "<never>".to_string())
        } else {
            match parse_expiration(&exp) {
                Ok(t) => match t.duration_since(now) {
                    Ok(left) => (human(left.as_secs()), format_rfc3339(t)),
                    Err(_) => ("<invalid>".into(), format_rfc3339(t)),
                },
                Err(_) => ("<invalid>".into(), exp.clone()),
            }
        };
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| decode(d, &format!("usage-bootstrap-{u}")) == "true")
            .collect();
        rows.push([
            format!("{id}.<redacted>"),
            ttl,
            expires,
            usages.join(","),
            decode(d, "description"),
            decode(d, "auth-extra-groups"),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

fn human(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h", secs / 3600)
    } else if secs >= 60 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

pub fn delete(run: RunArgs, ids: &[String]) -> Result<i32, Error> {
    let mut defs = String::new();
    for id in ids {
        let id = id.split('.').next().unwrap_or(id);
        if id.len() != 6
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(CommandError::TokenId(id.to_string()).into());
        }
        defs.push_str(&format!(
            "          - {{apiVersion: v1, kind: Secret, metadata: {{name: bootstrap-token-{id}, namespace: kube-system}}}}\n"
        ));
    }
    let tasks = format!("    - name: delete bootstrap tokens\n      kube_object:\n        state: absent\n        {KUBECTL_VARS}\n        definition:\n{defs}");
    Ok(on_control_plane(run, &tasks, Vec::new())?.0.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_kubeadm_columns_and_no_secret() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let list = serde_json::json!({"items": [{"data": {
            "token-id": b("abcdef"), "token-secret": b("0123456789abcdef"),
            "expiration": b("2026-12-01T12:00:00Z"), "usage-bootstrap-authentication": b("true"),
            "usage-bootstrap-signing": b("true"), "description": b("for workers"),
            "auth-extra-groups": b("system:bootstrappers:worker")}}]});
        let now = parse_expiration("2026-12-01T00:00:00Z").unwrap();
        let table = token_table(&list, now);
        assert_eq!(
            table,
            "TOKEN               TTL   EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS\n\
             abcdef.<redacted>   12h   2026-12-01T12:00:00Z   authentication,signing   for workers   system:bootstrappers:worker\n"
        );
        assert!(!table.contains("0123456789abcdef"));
    }
}
