//! Playbooks, templates and the example inventory shipped inside the binary; files on disk
//! beside a user's playbook take precedence over them (`bootstrapctl init DIR` writes them out
//! for customising).

pub static PLAYBOOKS: &[(&str, &str)] = &[
    ("site.yaml", include_str!("../playbooks/site.yaml")),
    (
        "control-plane.yaml",
        include_str!("../playbooks/control-plane.yaml"),
    ),
    ("kernel.yaml", include_str!("../playbooks/kernel.yaml")),
    ("binaries.yaml", include_str!("../playbooks/binaries.yaml")),
    ("workers.yaml", include_str!("../playbooks/workers.yaml")),
    ("reset.yaml", include_str!("../playbooks/reset.yaml")),
];

/// The example inventory (3 control planes, 50 workers behind become), as a starting point.
pub static EXAMPLE_INVENTORY: &str = include_str!("../inventory/example.yaml");

pub static TEMPLATES: &[(&str, &str)] = &[
    (
        "kubelet.service.j2",
        include_str!("../templates/kubelet.service.j2"),
    ),
    (
        "kubelet-config.yaml.j2",
        include_str!("../templates/kubelet-config.yaml.j2"),
    ),
    (
        "containerd-config.toml.j2",
        include_str!("../templates/containerd-config.toml.j2"),
    ),
    (
        "bootstrap-kubeconfig.j2",
        include_str!("../templates/bootstrap-kubeconfig.j2"),
    ),
    (
        "docker-daemon.json.j2",
        include_str!("../templates/docker-daemon.json.j2"),
    ),
    (
        "rbac-bootstrap.yaml.j2",
        include_str!("../templates/rbac-bootstrap.yaml.j2"),
    ),
    (
        "cluster-info.yaml.j2",
        include_str!("../templates/cluster-info.yaml.j2"),
    ),
];

pub fn playbook(name: &str) -> Option<&'static str> {
    PLAYBOOKS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names_on_disk(dir: &str) -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn embedded(list: &[(&str, &str)]) -> BTreeSet<String> {
        list.iter().map(|(n, _)| n.to_string()).collect()
    }

    /// An installed binary has only what is embedded: a file that ships on disk but not in
    /// the binary works from the checkout and fails everywhere else.
    #[test]
    fn every_shipped_file_is_embedded() {
        assert_eq!(names_on_disk("templates"), embedded(TEMPLATES));
        assert_eq!(names_on_disk("playbooks"), embedded(PLAYBOOKS));
    }

    /// Every file a shipped playbook names (templates, copies, kube objects, imports) resolves
    /// from the embedded content alone, as it must with an empty working directory.
    #[test]
    fn every_reference_of_a_shipped_playbook_resolves_from_the_binary() {
        fn walk(v: &serde_yaml::Value, parent: Option<&str>, out: &mut Vec<(String, String)>) {
            match v {
                serde_yaml::Value::Mapping(m) => {
                    for (k, v) in m {
                        let key = k.as_str().unwrap_or_default();
                        match (key, v.as_str()) {
                            ("import_playbook", Some(f)) => out.push(("playbook".into(), f.into())),
                            ("src", Some(f)) => {
                                out.push((parent.unwrap_or_default().to_string(), f.to_string()))
                            }
                            _ => walk(v, Some(key), out),
                        }
                    }
                }
                serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| walk(v, parent, out)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        for (_, text) in PLAYBOOKS {
            walk(&serde_yaml::from_str(text).unwrap(), None, &mut refs);
        }
        assert!(refs.len() >= 8, "{refs:?}");
        for (kind, file) in refs {
            let found = match kind.as_str() {
                "playbook" => playbook(&file).is_some(),
                // An artifact's source is the user's own file, named by a variable.
                "artifact" => file.starts_with("{{"),
                _ => TEMPLATES.iter().any(|(n, _)| *n == file),
            };
            assert!(found, "{kind} {file} is referenced but not embedded");
        }
    }
}
