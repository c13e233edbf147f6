//! lab.json: what `up` started (pids, namespaces, addresses), read by `down` and `status`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

pub(crate) const FILE: &str = "lab.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub(crate) version: u32,
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) hosts: Vec<HostRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostRecord {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) address: String,
    pub(crate) port: u16,
    /// sshd's pid: sshd is exec'd in the process we forked, so this pid owns the namespaces.
    pub(crate) pid: u32,
    /// Inode of the host's mount namespace: `down` only stops processes inside it, so a
    /// recycled pid never gets a signal.
    pub(crate) mnt_ns: Option<u64>,
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// None when there is no lab.json in `dir`.
pub(crate) fn load(dir: &Path) -> Result<Option<LabState>, LabError> {
    let p = path(dir);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LabError::Io {
                what: format!("reading {}", p.display()),
                source: e,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LabError::State {
            path: p,
            reason: e.to_string(),
        })
}

/// Written via a temp file and rename, so a crash never leaves half a state file.
pub(crate) fn save(state: &LabState) -> Result<(), LabError> {
    let p = path(&state.dir);
    let tmp = state.dir.join(".lab.json.tmp");
    let text = serde_json::to_string_pretty(state).expect("lab state serializes");
    fs::write(&tmp, text + "\n").map_err(LabError::io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, &p).map_err(LabError::io(format!("writing {}", p.display())))
}

pub(crate) fn remove(dir: &Path) -> Result<(), LabError> {
    let p = path(dir);
    match fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::Io {
            what: format!("removing {}", p.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
