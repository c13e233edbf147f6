//! Bundle directories for air-gapped fleets: `manifest.yaml` lists each artifact's name,
//! version, sha256 and path (relative to the bundle); `verify` checks every file against it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The manifest's file name inside a bundle directory.
pub const MANIFEST: &str = "manifest.yaml";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Relative to the bundle directory.
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    artifacts: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A bundle: its directory and the manifest's entries.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
}

impl Bundle {
    /// Reads `DIR/manifest.yaml`; every entry's sha256 must be well formed and its path stay
    /// inside the bundle.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let m: ManifestFile = serde_yaml::from_str(&text).map_err(|e| BundleError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut entries = Vec::new();
        for mut e in m.artifacts {
            let invalid = |message: String| BundleError::Invalid {
                path: path.clone(),
                message,
            };
            e.sha256 = super::check_sum(&e.sha256)
                .map_err(|m| invalid(format!("artifact {}: sha256: {m}", e.name)))?;
            let p = Path::new(&e.path);
            if p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(invalid(format!(
                    "artifact {}: path {:?} must be relative and inside the bundle",
                    e.name, e.path
                )));
            }
            entries.push(e);
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The entry for `name` (and `version`, when given), `-` and `_` alike.
    pub fn find(&self, name: &str, version: Option<&str>) -> Result<&Entry, String> {
        let norm = |s: &str| s.replace('-', "_");
        let mut hits = self
            .entries
            .iter()
            .filter(|e| norm(&e.name) == norm(name))
            .filter(|e| version.is_none_or(|v| v == e.version));
        let found = hits.next().ok_or_else(|| {
            format!(
                "bundle {}: no artifact {name}{} in {MANIFEST}",
                self.dir.display(),
                version.map(|v| format!(" {v}")).unwrap_or_default()
            )
        })?;
        if hits.next().is_some() {
            return Err(format!(
                "bundle {}: several artifacts {name} in {MANIFEST}; give a version",
                self.dir.display()
            ));
        }
        Ok(found)
    }

    pub fn file(&self, e: &Entry) -> PathBuf {
        self.dir.join(&e.path)
    }
}

/// One artifact's verdict in `bundle verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub entry: Entry,
    /// `None`: the file's sha256 matches. Otherwise what is wrong.
    pub problem: Option<String>,
}

/// Check every file of the bundle against its sha256.
pub fn verify(bundle: &Bundle) -> Vec<Verdict> {
    bundle
        .entries
        .iter()
        .map(|e| {
            let file = bundle.file(e);
            let problem = match super::sha256_file(&file) {
                Err(err) => Some(format!("cannot read {}: {err}", file.display())),
                Ok(actual) if actual != e.sha256 => Some(format!(
                    "checksum mismatch for {}: expected sha256 {}, got {actual}",
                    file.display(),
                    e.sha256
                )),
                Ok(_) => None,
            };
            Verdict {
                entry: e.clone(),
                problem,
            }
        })
        .collect()
}
