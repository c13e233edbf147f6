//! Verified binaries on hosts: what one install is (`ArtifactOp`, planned by the `artifact`
//! module and run by the executor), the documented place of each Kubernetes component, how a
//! host's installed copy is read back (sha256 of a binary, a marker beside an unpacked
//! tarball), bundle manifests for air-gapped fleets (`manifest`), the install script run on
//! the host (`script`) and the streaming upload with its own parallelism bound (`upload`).

pub mod manifest;
pub mod script;
pub mod upload;

use serde::Serialize;

use crate::hoststate::{CommandOutput, FileKind, FileState, HostView};
use crate::shell::quote as sh_quote;

/// Where an artifact's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A file on the machine running bootstrapctl, streamed over the host's SSH connection.
    Upload { local: String, size: u64 },
    /// Fetched by the host itself with curl or wget.
    Url { url: String },
}

impl Source {
    /// How the diff and the errors name the source.
    pub fn describe(&self) -> String {
        match self {
            Source::Upload { local, size } => format!("laptop:{local} ({size} bytes, uploaded)"),
            Source::Url { url } => format!("{url} (fetched by the host)"),
        }
    }
}

/// What is put in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Install {
    /// A single executable, renamed over `dest`.
    Binary { dest: String, mode: u32 },
    /// A tarball unpacked under `dir` (members keep their paths, minus `strip` leading
    /// components); a marker records the tarball's sha256 once every member is in place.
    Tarball { dir: String, strip: u32 },
}

/// One component to install on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactOp {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub source: Source,
    pub install: Install,
}

impl ArtifactOp {
    /// The directory the temp file goes to (and so where the rename happens).
    pub fn dir(&self) -> String {
        match &self.install {
            Install::Binary { dest, .. } => crate::engine::executor::parent(dest),
            Install::Tarball { dir, .. } => dir.clone(),
        }
    }
    /// The path the diff and the messages name.
    pub fn target(&self) -> String {
        match &self.install {
            Install::Binary { dest, .. } => dest.clone(),
            Install::Tarball { dir, .. } => format!("{dir} ({} unpacked)", self.name),
        }
    }
}

/// Documented install places of the components the workers need, by name (`-` or `_`).
/// `(name, binary destination or tarball directory, is a tarball, components to strip)`.
const COMPONENTS: &[(&str, &str, bool, u32)] = &[
    // dl.k8s.io/release/vX/bin/linux/ARCH/kubelet: a bare binary.
    ("kubelet", "/usr/local/bin/kubelet", false, 0),
    ("kubectl", "/usr/local/bin/kubectl", false, 0),
    // containerd's getting-started: `tar Cxzvf /usr/local containerd-X-linux-ARCH.tar.gz`
    // (members bin/containerd, bin/containerd-shim-runc-v2, bin/ctr, ...).
    ("containerd", "/usr/local", true, 0),
    // runc.ARCH from the release page: `install -m 755 runc.amd64 /usr/local/sbin/runc`.
    ("runc", "/usr/local/sbin/runc", false, 0),
    // `tar Cxzvf /opt/cni/bin cni-plugins-linux-ARCH-vX.tgz` (members ./bridge, ./host-local...).
    ("cni_plugins", "/opt/cni/bin", true, 0),
    // cri-tools: `tar zxvf crictl-vX-linux-ARCH.tar.gz -C /usr/local/bin` (member crictl).
    ("crictl", "/usr/local/bin", true, 0),
    // cri-dockerd-X.ARCH.tgz holds cri-dockerd/cri-dockerd; installed as /usr/local/bin/cri-dockerd.
    ("cri_dockerd", "/usr/local/bin", true, 1),
];

/// The documented place of a known component: `(path, tarball, strip)`.
pub fn component(name: &str) -> Option<(&'static str, bool, u32)> {
    let n = name.replace('-', "_");
    COMPONENTS
        .iter()
        .find(|c| c.0 == n)
        .map(|c| (c.1, c.2, c.3))
}

/// The names `component` knows, for error messages.
pub fn component_names() -> Vec<&'static str> {
    COMPONENTS.iter().map(|c| c.0).collect()
}

/// The read-only command whose output says which binary is at `dest`: `sha256sum`'s line,
/// nothing (exit 1) when there is none. Batched with the host's other reads.
pub fn sha_read(dest: &str) -> String {
    let p = sh_quote(dest);
    format!("if [ -f {p} ]; then sha256sum -- {p}; else exit 1; fi")
}

/// The marker that says which tarball is unpacked in `dir`: its sha256, name and version on
/// the first line, then the members it put there.
pub fn marker_path(dir: &str, name: &str) -> String {
    format!(
        "{}/.bootstrapctl-{}.sha256",
        dir.trim_end_matches('/'),
        name.replace('/', "_")
    )
}

/// The sha256 a `sha_read` output or a marker's content starts with, if any.
pub fn first_sum(text: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(text);
    let sum = s.split_whitespace().next()?;
    (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sum.to_ascii_lowercase())
}

/// The sha256 installed for `op` as the view knows it (`None`: nothing there).
pub fn installed_sum(view: &HostView, op_name: &str, install: &Install) -> Option<String> {
    match install {
        Install::Binary { dest, .. } => view
            .command(&sha_read(dest))
            .filter(|o| o.status == 0)
            .and_then(|o| first_sum(&o.stdout)),
        Install::Tarball { dir, .. } => view
            .file(&marker_path(dir, op_name))
            .and_then(|f| f.content.as_deref())
            .and_then(first_sum),
    }
}

/// What the host has once `op` ran, for `--check` and for planning again after an apply.
pub fn simulate(view: &mut HostView, op: &ArtifactOp) {
    match &op.install {
        Install::Binary { dest, .. } => view.set_command(
            &sha_read(dest),
            CommandOutput {
                status: 0,
                stdout: format!("{}  {dest}\n", op.sha256).into_bytes(),
                stderr: Vec::new(),
            },
        ),
        Install::Tarball { dir, .. } => view.plan_file(
            &marker_path(dir, &op.name),
            FileState {
                kind: FileKind::File,
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                content: Some(format!("{}  {} {}\n", op.sha256, op.name, op.version).into_bytes()),
            },
        ),
    }
}

/// Bytes the host took in for artifacts, as an install script reports them (`@@ bytes N`).
pub fn bytes_reported(stdout: &[u8]) -> u64 {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("@@ bytes "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// A lowercase hex sha256, or why it is not one.
pub fn check_sum(sum: &str) -> Result<String, String> {
    let s = sum
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(format!("{sum:?} is not a sha256 (64 hex digits)"))
    }
}

/// The sha256 of a local file, read in chunks.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_from_sha256sum_lines_and_markers() {
        let s = "ab".repeat(32);
        assert_eq!(
            first_sum(format!("{s}  /usr/local/bin/kubelet\n").as_bytes()),
            Some(s.clone())
        );
        assert_eq!(first_sum(b"sha256sum: x: No such file\n"), None);
        assert_eq!(check_sum(&format!("sha256:{}", s.to_uppercase())), Ok(s));
        assert!(check_sum("abc").is_err());
        assert_eq!(bytes_reported(b"x\n@@ bytes 12\n@@ bytes 30\n"), 42);
    }

    #[test]
    fn components_have_their_documented_places() {
        assert_eq!(component("cni-plugins"), Some(("/opt/cni/bin", true, 0)));
        assert_eq!(
            component("kubelet"),
            Some(("/usr/local/bin/kubelet", false, 0))
        );
        assert_eq!(component("cri-dockerd"), Some(("/usr/local/bin", true, 1)));
        assert_eq!(component("etcd"), None);
    }
}
