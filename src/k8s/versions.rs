//! The Kubernetes version profile: which kubelet flags and KubeletConfiguration fields a
//! kubelet of a given minor version accepts, as one table keyed by `kubernetes_version`.
//! Templates read it through `kubernetes_profile(kubernetes_version)`; an empty or absent
//! version is the current profile, so the shipped playbooks write current flags by default.
//!
//! Each row holds from its minor version up to the next row's. The rows follow the upstream
//! changelogs: dockershim removed in 1.24 (docker needs cri-dockerd from then on);
//! `containerRuntimeEndpoint` added to KubeletConfiguration and `--container-runtime` removed
//! in 1.27; `--pod-infra-container-image` no longer needed from 1.27 (the runtime owns the
//! sandbox image) and is not written from there.

use serde::Serialize;

/// What one range of kubelet minor versions accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// First minor version of the row, `1.N`.
    pub since: &'static str,
    /// `--container-runtime=remote` (or `=docker` with dockershim) is a flag this kubelet
    /// has; before 1.24 it is needed for any runtime but docker.
    pub container_runtime_flag: bool,
    /// The CRI endpoint is the KubeletConfiguration field `containerRuntimeEndpoint`; else it
    /// is the `--container-runtime-endpoint` flag.
    pub runtime_endpoint_in_config: bool,
    /// `--pod-infra-container-image` is written (the kubelet keeps that image from GC).
    pub pod_infra_flag: bool,
    /// docker is reached through the built-in dockershim (`--container-runtime=docker`, no
    /// endpoint); else through cri-dockerd's socket.
    pub dockershim: bool,
}

/// Oldest first; the last row is the current profile.
pub static PROFILES: &[Profile] = &[
    Profile {
        since: "1.20",
        container_runtime_flag: true,
        runtime_endpoint_in_config: false,
        pod_infra_flag: true,
        dockershim: true,
    },
    Profile {
        since: "1.24",
        container_runtime_flag: true,
        runtime_endpoint_in_config: false,
        pod_infra_flag: true,
        dockershim: false,
    },
    Profile {
        since: "1.27",
        container_runtime_flag: false,
        runtime_endpoint_in_config: true,
        pod_infra_flag: false,
        dockershim: false,
    },
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("kubernetes_version {0:?} is not a version such as 1.20, v1.20 or 1.20.2")]
    Unparsable(String),
    #[error("kubernetes_version {given:?} is older than the oldest profile ({oldest})")]
    TooOld { given: String, oldest: &'static str },
}

fn minor(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    // A patch part, when there, must be a number too (1.20.2), with no fourth part.
    if let Some(patch) = parts.next() {
        patch.parse::<u32>().ok()?;
    }
    parts.next().is_none().then_some((major, minor))
}

/// The profile of `version` (`""` or `current`: the newest row).
pub fn profile(version: &str) -> Result<&'static Profile, VersionError> {
    let newest = PROFILES.last().expect("the table has rows");
    if version.trim().is_empty() || version.trim() == "current" {
        return Ok(newest);
    }
    let want = minor(version).ok_or_else(|| VersionError::Unparsable(version.into()))?;
    PROFILES
        .iter()
        .rev()
        .find(|p| minor(p.since).is_some_and(|since| since <= want))
        .ok_or(VersionError::TooOld {
            given: version.into(),
            oldest: PROFILES[0].since,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_their_row() {
        assert_eq!(profile("").unwrap().since, "1.27");
        assert_eq!(profile("current").unwrap().since, "1.27");
        assert_eq!(profile("1.20").unwrap().since, "1.20");
        assert_eq!(profile("v1.20.2").unwrap().since, "1.20");
        assert_eq!(profile("1.23").unwrap().since, "1.20");
        assert_eq!(profile("1.24.0").unwrap().since, "1.24");
        assert_eq!(profile("1.26").unwrap().since, "1.24");
        assert_eq!(profile("1.33").unwrap().since, "1.27");
        let old = profile("1.20").unwrap();
        assert!(old.container_runtime_flag && !old.runtime_endpoint_in_config && old.dockershim);
        let new = profile("1.33").unwrap();
        assert!(!new.container_runtime_flag && new.runtime_endpoint_in_config && !new.dockershim);
    }

    #[test]
    fn bad_versions_are_named() {
        assert_eq!(
            profile("1.19").unwrap_err().to_string(),
            "kubernetes_version \"1.19\" is older than the oldest profile (1.20)"
        );
        assert_eq!(
            profile("one.twenty").unwrap_err().to_string(),
            "kubernetes_version \"one.twenty\" is not a version such as 1.20, v1.20 or 1.20.2"
        );
        assert!(profile("1.20.x").is_err());
        assert!(profile("1.20.2.1").is_err());
    }

    #[test]
    fn rows_are_in_order() {
        let v: Vec<_> = PROFILES.iter().map(|p| minor(p.since).unwrap()).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
    }
}

/// The shipped kubelet templates rendered with each profile.
#[cfg(test)]
mod template_tests {
    use crate::template::Templates;
    use minijinja::{context, Value};

    fn render(name: &str, extra: Value) -> String {
        let base = context! {
            kubelet_bin => "/usr/local/bin/kubelet", kubelet_dir => "/var/lib/kubelet",
            inventory_hostname => "w-1", cluster_domain => "cluster.local",
            cluster_dns => "10.32.0.10", pod_infra_image => "registry.k8s.io/pause:3.10",
            container_runtime_endpoint => "unix:///run/containerd/containerd.sock",
            kubelet_cgroup_driver => "systemd",
        };
        let ctx = context! { ..extra, ..base };
        Templates::new(vec![]).render_file(name, &ctx).unwrap()
    }

    #[test]
    fn kubelet_1_20_gets_the_runtime_flags_and_no_config_endpoint() {
        let v = context! { kubernetes_version => "1.20" };
        let unit = render("kubelet.service.j2", v.clone());
        assert!(unit.contains("  --container-runtime=remote \\\n  --container-runtime-endpoint=unix:///run/containerd/containerd.sock \\\n  --pod-infra-container-image=registry.k8s.io/pause:3.10 \\\n"), "{unit}");
        let cfg = render("kubelet-config.yaml.j2", v);
        assert!(!cfg.contains("containerRuntimeEndpoint"), "{cfg}");
    }

    #[test]
    fn current_profile_by_default_has_the_endpoint_in_the_config_only() {
        let unit = render("kubelet.service.j2", context! {});
        assert!(!unit.contains("--container-runtime"), "{unit}");
        assert!(!unit.contains("--pod-infra-container-image"), "{unit}");
        assert!(unit.contains("Requires=containerd.service"), "{unit}");
        let cfg = render("kubelet-config.yaml.j2", context! {});
        assert!(cfg.contains("containerRuntimeEndpoint: \"unix:///run/containerd/containerd.sock\"\ncgroupDriver: systemd\n"), "{cfg}");
    }

    #[test]
    fn docker_is_dockershim_before_1_24_and_cri_dockerd_after() {
        let old = render(
            "kubelet.service.j2",
            context! { kubernetes_version => "1.23", container_runtime => "docker" },
        );
        assert!(
            old.contains("--container-runtime=docker \\\n")
                && !old.contains("--container-runtime-endpoint"),
            "{old}"
        );
        assert!(old.contains("Requires=docker.service"), "{old}");
        let new = render(
            "kubelet.service.j2",
            context! { kubernetes_version => "1.26", container_runtime => "docker",
            container_runtime_endpoint => "unix:///run/cri-dockerd.sock" },
        );
        assert!(new.contains("--container-runtime=remote \\\n  --container-runtime-endpoint=unix:///run/cri-dockerd.sock \\\n"), "{new}");
        assert!(new.contains("Requires=cri-docker.service"), "{new}");
    }

    #[test]
    fn one_cgroup_driver_for_runtime_and_kubelet() {
        for driver in ["systemd", "cgroupfs"] {
            let v = context! { kubelet_cgroup_driver => driver };
            let cfg = render("kubelet-config.yaml.j2", v.clone());
            assert!(cfg.contains(&format!("cgroupDriver: {driver}\n")), "{cfg}");
            let toml = render("containerd-config.toml.j2", v.clone());
            let want = if driver == "systemd" { "true" } else { "false" };
            assert!(
                toml.contains(&format!("SystemdCgroup = {want}\n")),
                "{toml}"
            );
            let json = render("docker-daemon.json.j2", v);
            assert!(
                json.contains(&format!("native.cgroupdriver={driver}\"")),
                "{json}"
            );
            serde_json::from_str::<serde_json::Value>(&json).unwrap();
        }
    }

    #[test]
    fn extra_kubelet_configuration_fields_are_yaml() {
        let cfg = render(
            "kubelet-config.yaml.j2",
            context! { kubelet_config_extra => context! { cgroupsPerQOS => false, enforceNodeAllocatable => Vec::<String>::new() } },
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&cfg).unwrap();
        assert_eq!(v["cgroupsPerQOS"], serde_yaml::Value::Bool(false));
        assert_eq!(
            v["enforceNodeAllocatable"],
            serde_yaml::Value::Sequence(vec![])
        );
    }
}
