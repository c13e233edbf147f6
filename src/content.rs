//! Playbooks and templates shipped inside the binary; files on disk beside a user's playbook
//! take precedence over them.

pub static PLAYBOOKS: &[(&str, &str)] = &[
    ("site.yaml", include_str!("../playbooks/site.yaml")),
    (
        "control-plane.yaml",
        include_str!("../playbooks/control-plane.yaml"),
    ),
    ("workers.yaml", include_str!("../playbooks/workers.yaml")),
];

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
];

pub fn playbook(name: &str) -> Option<&'static str> {
    PLAYBOOKS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
