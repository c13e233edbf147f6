//! What `ansible-inventory` prints, so users can diff: `--list` (`_meta.hostvars`, groups with
//! `hosts`/`children`), `--graph` and `--host`. Inline vault values are shown as Ansible shows
//! them (`{"__ansible_vault": CIPHERTEXT}`, `{"__ansible_unsafe": TEXT}`); the caller redacts decrypted secrets.

use std::collections::HashSet;

use serde_json::{json, Map, Value as Json};

use super::model::{Inventory, ALL};

/// `ansible-inventory --list` for the hosts in `available` (all hosts, or those a `--limit`
/// selected): empty groups and empty keys left out, as Ansible does.
pub fn list_json(inv: &Inventory, available: &[String]) -> Json {
    let available: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut out = Map::new();
    let mut seen = HashSet::new();
    format_group(inv, ALL, &available, &mut out, &mut seen);
    let mut hostvars = Map::new();
    for host in inv.group_hosts(ALL) {
        if !available.contains(host.as_str()) {
            continue;
        }
        let vars = host_json(inv, &host);
        if vars.as_object().is_some_and(|m| !m.is_empty()) {
            hostvars.insert(host, vars);
        }
    }
    out.insert("_meta".to_string(), json!({ "hostvars": hostvars }));
    Json::Object(out)
}

fn format_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<&str>,
    out: &mut Map<String, Json>,
    seen: &mut HashSet<String>,
) {
    let Some(group) = inv.group(name) else { return };
    let mut body = Map::new();
    if name != ALL {
        let hosts: Vec<Json> = group
            .hosts
            .iter()
            .filter(|h| available.contains(h.as_str()))
            .map(|h| Json::String(h.clone()))
            .collect();
        if !hosts.is_empty() {
            body.insert("hosts".to_string(), Json::Array(hosts));
        }
    }
    let children: Vec<Json> = group
        .children
        .iter()
        .map(|c| Json::String(c.clone()))
        .collect();
    if !children.is_empty() {
        body.insert("children".to_string(), Json::Array(children));
    }
    let mut nested = Map::new();
    for child in &group.children {
        if seen.insert(child.clone()) {
            format_group(inv, child, available, &mut nested, seen);
        }
    }
    if !body.is_empty() {
        out.insert(name.to_string(), Json::Object(body));
    }
    out.extend(nested);
}

/// `ansible-inventory --host NAME`: the host's merged variables (null for an unknown host).
pub fn host_json(inv: &Inventory, name: &str) -> Json {
    let Some(host) = inv.host(name) else {
        return Json::Null;
    };
    let value = serde_json::to_value(&host.vars).unwrap_or(Json::Null);
    show_vaults(inv, value)
}

/// Inline vault plaintext back to the form Ansible lists it in.
fn show_vaults(inv: &Inventory, value: Json) -> Json {
    match value {
        Json::String(s) => match inv.inline_vault(&s) {
            Some(ciphertext) => json!({ "__ansible_vault": ciphertext }),
            None if inv.is_unsafe(&s) => json!({ "__ansible_unsafe": s }),
            None => Json::String(s),
        },
        Json::Array(items) => Json::Array(items.into_iter().map(|v| show_vaults(inv, v)).collect()),
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| (k, show_vaults(inv, v)))
                .collect(),
        ),
        other => other,
    }
}

/// `ansible-inventory --graph [GROUP]`: the group tree, children first, then own hosts.
pub fn graph(inv: &Inventory, group: &str) -> Option<String> {
    inv.group(group)?;
    let mut lines = Vec::new();
    graph_group(inv, group, 0, &mut lines);
    Some(lines.join("\n") + "\n")
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, lines: &mut Vec<String>) {
    let Some(group) = inv.group(name) else { return };
    let line = |text: &str, depth: usize| {
        if depth == 0 {
            text.to_string()
        } else {
            format!("{}--{text}", "  |".repeat(depth))
        }
    };
    lines.push(line(&format!("@{name}:"), depth));
    for child in &group.children {
        graph_group(inv, child, depth + 1, lines);
    }
    if name != ALL {
        for host in &group.hosts {
            lines.push(line(host, depth + 1));
        }
    }
}
