//! Ansible's names for what the facts read gives: `ansible_facts.<name>` and the same as
//! top-level `ansible_<name>` variables (Ansible's `inject_facts_as_vars`), as `setup` names
//! them (`os_family`, `distribution` with Ansible's capitalisation, `service_mgr`...).

use std::collections::BTreeMap;

use minijinja::Value;

use crate::hoststate::Facts;

/// `ID` of os-release → (distribution, os_family), as Ansible's distribution facts give them.
fn distribution(id: &str) -> (String, &'static str) {
    let (name, family) = match id {
        "ubuntu" => ("Ubuntu", "Debian"),
        "debian" => ("Debian", "Debian"),
        "linuxmint" => ("Linux Mint", "Debian"),
        "pop" => ("Pop!_OS", "Debian"),
        "raspbian" => ("Debian", "Debian"),
        "centos" => ("CentOS", "RedHat"),
        "rhel" => ("RedHat", "RedHat"),
        "fedora" => ("Fedora", "RedHat"),
        "rocky" => ("Rocky", "RedHat"),
        "almalinux" => ("AlmaLinux", "RedHat"),
        "ol" => ("OracleLinux", "RedHat"),
        "amzn" => ("Amazon", "RedHat"),
        "arch" => ("Archlinux", "Archlinux"),
        "alpine" => ("Alpine", "Alpine"),
        "opensuse-leap" | "opensuse-tumbleweed" | "opensuse" => ("openSUSE Leap", "Suse"),
        "sles" => ("SLES", "Suse"),
        "gentoo" => ("Gentoo", "Gentoo"),
        _ => ("", ""),
    };
    if name.is_empty() {
        let mut c = id.chars();
        let cap = c
            .next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default();
        return (cap.clone(), "");
    }
    (name.to_string(), family)
}

/// The facts as variables: `ansible_facts` and every `ansible_<name>`.
pub fn ansible_facts(f: &Facts) -> BTreeMap<String, Value> {
    let (dist, family) = distribution(&f.os_id);
    let family = if family.is_empty() {
        dist.as_str()
    } else {
        family
    };
    let major = f
        .os_version_id
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let short = f.hostname.split('.').next().unwrap_or_default().to_string();
    let mut facts: BTreeMap<String, Value> = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        facts.insert(k.to_string(), v);
    };
    put("hostname", Value::from(short));
    put("nodename", Value::from(f.hostname.clone()));
    put("fqdn", Value::from(f.hostname.clone()));
    put("architecture", Value::from(f.arch.clone()));
    put("machine", Value::from(f.arch.clone()));
    put("kernel", Value::from(f.kernel.clone()));
    put("system", Value::from("Linux"));
    put("os_family", Value::from(family));
    put("distribution", Value::from(dist.clone()));
    put("distribution_version", Value::from(f.os_version_id.clone()));
    put("distribution_major_version", Value::from(major));
    put(
        "service_mgr",
        Value::from(if f.systemd_running {
            "systemd"
        } else {
            "service"
        }),
    );
    put("swap_devices", Value::from_serialize(&f.swap_devices));
    let mut out: BTreeMap<String, Value> = facts
        .iter()
        .map(|(k, v)| (format!("ansible_{k}"), v.clone()))
        .collect();
    out.insert("ansible_facts".into(), Value::from(facts));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_ansibles_setup_gives_them() {
        let f = Facts {
            hostname: "worker-1.lab".into(),
            os_id: "ubuntu".into(),
            os_version_id: "24.04".into(),
            arch: "x86_64".into(),
            systemd_running: true,
            ..Default::default()
        };
        let v = ansible_facts(&f);
        let facts = &v["ansible_facts"];
        assert_eq!(
            facts.get_attr("os_family").unwrap().as_str(),
            Some("Debian")
        );
        assert_eq!(v["ansible_distribution"].as_str(), Some("Ubuntu"));
        assert_eq!(v["ansible_distribution_major_version"].as_str(), Some("24"));
        assert_eq!(v["ansible_hostname"].as_str(), Some("worker-1"));
        assert_eq!(v["ansible_service_mgr"].as_str(), Some("systemd"));
        let (d, fam) = distribution("rocky");
        assert_eq!((d.as_str(), fam), ("Rocky", "RedHat"));
    }
}
