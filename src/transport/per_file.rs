//! What this process made of a file (known_hosts parsed, an identity decoded), shared by every
//! connection that names the file and made again once the file changed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a file looked like when it was read: a change of any of these reads it again.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Result<Stamp, String> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Values by file, each kept with the stamp of the file it was made from.
pub(super) struct PerFile<T>(Mutex<Vec<(PathBuf, Stamp, T)>>);

impl<T: Clone> PerFile<T> {
    pub(super) const fn new() -> Self {
        PerFile(Mutex::new(Vec::new()))
    }

    /// The value made from `path` as it is now: the one kept, or `make`'s (then kept). Under
    /// the lock, so that connections that start together wait for one `make`, not one each.
    /// Errors are those of reading the file's metadata, or `make`'s.
    pub(super) fn get(
        &self,
        path: &Path,
        make: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(path)?;
        if let Some((_, s, v)) = kept.iter().find(|(p, _, _)| p == path) {
            if *s == now {
                return Ok(v.clone());
            }
        }
        let v = make()?;
        kept.retain(|(p, _, _)| p != path);
        kept.push((path.to_path_buf(), now, v.clone()));
        Ok(v)
    }
}
