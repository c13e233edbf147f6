//! The lab's Ansible YAML inventory: all.vars for the connection, one child group per role.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::hosts::{PlannedHost, GROUP_CONTROL_PLANE, GROUP_WORKERS};

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Renders `all: {vars, children: {control_plane: {hosts}, workers: {hosts}}}`.
pub(crate) fn render(hosts: &[PlannedHost], port: u16, key: &Path, known_hosts: &Path) -> String {
    let group = |name: &str| {
        let members: Mapping = hosts
            .iter()
            .filter(|h| h.group == name)
            .map(|h| {
                (
                    Value::from(h.name.as_str()),
                    map([("ansible_host", Value::from(h.address.to_string()))]),
                )
            })
            .collect();
        map([("hosts", Value::Mapping(members))])
    };
    let doc = map([(
        "all",
        map([
            (
                "vars",
                map([
                    ("ansible_user", Value::from("root")),
                    ("ansible_port", Value::from(port)),
                    (
                        "ansible_ssh_private_key_file",
                        Value::from(key.display().to_string()),
                    ),
                    // The lab's own known_hosts, so `apply -i` on it checks keys strictly.
                    (
                        "ansible_ssh_common_args",
                        Value::from(format!("-o UserKnownHostsFile={}", known_hosts.display())),
                    ),
                ]),
            ),
            (
                "children",
                map([
                    (GROUP_CONTROL_PLANE, group(GROUP_CONTROL_PLANE)),
                    (GROUP_WORKERS, group(GROUP_WORKERS)),
                ]),
            ),
        ]),
    )]);
    let body = serde_yaml::to_string(&doc).expect("a YAML mapping of strings always serializes");
    format!("# Written by bootstrapctl lab up: the hosts of this lab.\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::plan;

    #[test]
    fn inventory_is_ansible_shaped() {
        let text = render(
            &plan(10, 1, 2),
            2222,
            Path::new("/lab/id_ed25519"),
            Path::new("/lab/known_hosts"),
        );
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["all"]["vars"]["ansible_port"], Value::from(2222));
        assert_eq!(v["all"]["vars"]["ansible_user"], Value::from("root"));
        assert_eq!(
            v["all"]["vars"]["ansible_ssh_private_key_file"],
            Value::from("/lab/id_ed25519")
        );
        assert_eq!(
            v["all"]["children"]["control_plane"]["hosts"]["cp-1"]["ansible_host"],
            Value::from("127.10.0.1")
        );
        assert_eq!(
            v["all"]["children"]["workers"]["hosts"]["worker-02"]["ansible_host"],
            Value::from("127.10.0.3")
        );
    }
}
