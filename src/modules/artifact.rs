//! `artifact`: install a component (kubelet, containerd, runc, CNI plugins, crictl,
//! cri-dockerd, or any binary or tarball given its place) at a pinned version and sha256,
//! from a laptop file (`src`), a URL the host fetches (`url`) or an air-gap bundle
//! (`bundle`). No change, and no transfer, when the host already has that sha256 in place:
//! a binary's own sha256 or the marker an unpacked tarball left.

use std::path::Path;

use serde::Deserialize;

use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::artifact::manifest::Bundle;
use crate::artifact::{self, ArtifactOp, Install, Source};
use crate::hoststate::{HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

/// Every argument is optional so that one task can loop over a `binaries:` list whose
/// entries give different ones; an empty string counts as not given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: Tpl<String>,
    pub version: Option<Tpl<String>>,
    pub sha256: Option<Tpl<String>>,
    /// A file on the laptop, relative to the playbook's `files/` or directory.
    pub src: Option<Tpl<String>>,
    pub url: Option<Tpl<String>>,
    /// A bundle directory with a `manifest.yaml` (relative to the playbook's directory).
    pub bundle: Option<Tpl<String>>,
    /// Where a binary goes (default: the component's documented place).
    pub dest: Option<Tpl<String>>,
    /// The directory a tarball unpacks into (default: the component's documented place).
    pub unpack: Option<Tpl<String>>,
    /// Text, so that a loop can give `''` for "not given" (as for every argument).
    pub strip_components: Option<Tpl<String>>,
    /// Octal, default 0755 (binaries only).
    pub mode: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct Artifact {
    op: ArtifactOp,
}

fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn local_file(base: &Path, src: &str) -> Result<std::path::PathBuf, ModuleError> {
    let candidates = [base.join("files").join(src), base.join(src)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            ModuleError::Invalid(format!(
                "src: local file {src:?} not found in {} or its files/ directory",
                base.display()
            ))
        })
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Artifact, ModuleError> {
        let s = |v: &Option<Tpl<String>>| -> Result<Option<String>, ModuleError> {
            Ok(given(opt(v, cx)?))
        };
        let invalid = ModuleError::Invalid;
        let name = self.name.resolve(cx.templates, cx.vars, cx.what)?;
        if name.trim().is_empty() {
            return Err(invalid("name: empty".into()));
        }
        let mut version = s(&self.version)?;
        let mut sha256 = s(&self.sha256)?
            .map(|v| artifact::check_sum(&v).map_err(|m| invalid(format!("sha256: {m}"))))
            .transpose()?;
        let source = match (s(&self.src)?, s(&self.url)?, s(&self.bundle)?) {
            (Some(src), None, _) => {
                let path = local_file(cx.base_dir, &src)?;
                upload(&path)?
            }
            (None, Some(url), _) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!("url: {url:?} is not an http(s) URL")));
                }
                Source::Url { url }
            }
            (None, None, Some(dir)) => {
                let bundle = Bundle::load(&cx.base_dir.join(&dir))
                    .map_err(|e| invalid(format!("bundle: {e}")))?;
                let e = bundle
                    .find(&name, version.as_deref())
                    .map_err(|m| invalid(format!("bundle: {m}")))?;
                if let Some(want) = &sha256 {
                    if *want != e.sha256 {
                        return Err(invalid(format!(
                            "sha256 {want} differs from the bundle's {} for {name}",
                            e.sha256
                        )));
                    }
                }
                version = Some(e.version.clone());
                sha256 = Some(e.sha256.clone());
                upload(&bundle.file(e))?
            }
            (Some(_), Some(_), _) => {
                return Err(invalid(format!(
                    "{name}: give one of `src` and `url`, not both"
                )))
            }
            (None, None, None) => {
                return Err(invalid(format!(
                    "{name}: give a source: `src` (a laptop file), `url` or `bundle`"
                )))
            }
        };
        let sha256 = sha256.ok_or_else(|| invalid(format!("{name}: sha256 is required")))?;
        let known = artifact::component(&name);
        let install = match (s(&self.dest)?, s(&self.unpack)?) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!("{name}: give `dest` or `unpack`, not both")))
            }
            (Some(dest), None) => Install::Binary {
                dest: absolute(dest, "dest")?,
                mode: mode(s(&self.mode)?)?,
            },
            (None, Some(dir)) => Install::Tarball {
                dir: absolute(dir, "unpack")?,
                strip: strip(s(&self.strip_components)?)?.unwrap_or(0),
            },
            (None, None) => match known {
                Some((path, false, _)) => Install::Binary {
                    dest: path.into(),
                    mode: mode(s(&self.mode)?)?,
                },
                Some((dir, true, strip)) => Install::Tarball {
                    dir: dir.into(),
                    strip: self::strip(s(&self.strip_components)?)?.unwrap_or(strip),
                },
                None => {
                    return Err(invalid(format!(
                        "{name}: not a known component ({}); give `dest` (a binary) or `unpack` (a tarball)",
                        artifact::component_names().join(", ")
                    )))
                }
            },
        };
        Ok(Artifact {
            op: ArtifactOp {
                name,
                version: version.unwrap_or_default(),
                sha256,
                source,
                install,
            },
        })
    }
}

fn mode(v: Option<String>) -> Result<u32, ModuleError> {
    match v {
        None => Ok(0o755),
        Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| ModuleError::Invalid(format!("mode: {m:?} is not an octal mode"))),
    }
}

fn strip(v: Option<String>) -> Result<Option<u32>, ModuleError> {
    v.map(|n| {
        n.parse::<u32>()
            .map_err(|_| ModuleError::Invalid(format!("strip_components: {n:?} is not a number")))
    })
    .transpose()
}

fn upload(path: &Path) -> Result<Source, ModuleError> {
    let md = std::fs::metadata(path)
        .map_err(|e| ModuleError::Invalid(format!("reading {}: {e}", path.display())))?;
    let local = path
        .canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    Ok(Source::Upload {
        local,
        size: md.len(),
    })
}

impl Module for Artifact {
    fn reads(&self) -> Vec<Read> {
        match &self.op.install {
            Install::Binary { dest, .. } => vec![Read::Command(artifact::sha_read(dest))],
            Install::Tarball { dir, .. } => {
                vec![Read::File(artifact::marker_path(dir, &self.op.name))]
            }
        }
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let op = &self.op;
        let short = &op.sha256[..12];
        let installed = artifact::installed_sum(view, &op.name, &op.install);
        if installed.as_deref() == Some(op.sha256.as_str()) {
            return Ok(Planned::NoChange {
                reason: format!(
                    "{} {} already installed at {} (sha256 {short}…)",
                    op.name,
                    op.version,
                    op.target()
                ),
            });
        }
        let before = match &installed {
            Some(sum) => format!("sha256 {sum}\n"),
            None => String::new(),
        };
        let after = format!(
            "{} {} sha256 {}\nfrom {}\n",
            op.name,
            op.version,
            op.sha256,
            op.source.describe()
        );
        Ok(Planned::Change {
            ops: vec![Op::Artifact(Box::new(op.clone()))],
            diffs: vec![DiffItem {
                subject: op.target(),
                before,
                after,
                secret: false,
            }],
        })
    }
}
