//! OpenSSH `known_hosts` handling for the SSH transport.
//!
//! Host matching (hashed `|1|salt|hash` names, comma lists, `[host]:port`) is libssh2's
//! `KnownHosts`; this module adds what libssh2 lacks: entries are grouped by key type, so a
//! host known only with an RSA key is not reported as "changed" merely because the server
//! offered an ed25519 key (the caller prefers the known key types during key exchange, as
//! OpenSSH does); `@revoked` keys are refused; unparsable lines are skipped instead of
//! silently truncating the file (libssh2's `read_file` stops at the first bad line); new
//! keys are appended with a single `O_APPEND` write so concurrent appends never interleave.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, KnownHosts, Session};

/// `SHA256:<base64 without padding>` of a public key blob, exactly as `ssh-keygen -l` prints it.
pub fn fingerprint_sha256(key_blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(key_blob))
    )
}

/// The key type name embedded in an SSH public key blob (its first SSH string).
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// The host-key algorithms (as negotiated in kex) that can produce a key of this type.
pub fn hostkey_algorithms_for(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ssh-dss" => &["ssh-dss"],
        _ => &[],
    }
}

/// The name under which a host is recorded: `addr`, or `[addr]:port` when port != 22.
pub fn host_pattern(addr: &str, port: u16) -> String {
    if port == 22 {
        addr.to_string()
    } else {
        format!("[{addr}]:{port}")
    }
}

/// The one name OpenSSH looks a host up under: `addr` on port 22, else only `[addr]:port`
/// (libssh2's port-aware check would also accept a bare `addr` entry for any port, which
/// OpenSSH never does: another port is another server, with its own keys).
fn lookup_name(addr: &str, port: u16) -> String {
    host_pattern(&addr.to_ascii_lowercase(), port)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A known_hosts entry for this host has exactly this key.
    Match,
    /// No entry names this host.
    NotFound,
    /// The host is known, with different key(s).
    Mismatch,
    /// The key is listed as `@revoked`.
    Revoked,
}

/// The known_hosts file loaded into libssh2 structures tied to one session.
pub struct KnownHostsDb {
    path: PathBuf,
    /// One libssh2 set per key type (blob type name), so checks can be per type.
    by_type: Vec<(String, KnownHosts)>,
    revoked: Vec<Vec<u8>>,
}

impl KnownHostsDb {
    /// Load `path` (a missing file is an empty set). Errors are I/O errors reading the file.
    pub fn load(path: &Path, session: &Session) -> Result<Self, String> {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut db = KnownHostsDb {
            path: path.to_path_buf(),
            by_type: Vec::new(),
            revoked: Vec::new(),
        };
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut marker = None;
            if first.starts_with('@') {
                marker = Some(first);
                first = fields.next().unwrap_or_default();
            }
            // `first` is the host pattern list, matched by libssh2 below.
            let (false, Some(_type_field), Some(b64)) =
                (first.is_empty(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(blob) = STANDARD.decode(b64) else {
                continue;
            };
            match marker {
                Some("@revoked") => {
                    db.revoked.push(blob);
                    continue;
                }
                Some(_) => continue, // @cert-authority: certificates are not supported
                None => {}
            }
            let Some(ktype) = blob_key_type(&blob) else {
                continue;
            };
            let idx = match db.by_type.iter().position(|(t, _)| t == ktype) {
                Some(i) => i,
                None => {
                    let kh = session
                        .known_hosts()
                        .map_err(|e| format!("libssh2 known hosts init: {e}"))?;
                    db.by_type.push((ktype.to_string(), kh));
                    db.by_type.len() - 1
                }
            };
            // A line libssh2 cannot parse is skipped rather than aborting the whole file.
            let _ = db.by_type[idx].1.read_str(line, KnownHostFileKind::OpenSSH);
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Key types (blob type names) recorded for this host, in file order of first appearance.
    pub fn known_key_types(&self, addr: &str, port: u16) -> Vec<String> {
        let name = lookup_name(addr, port);
        // A one-byte "key" never equals a real key, so a host-name hit reports Mismatch.
        self.by_type
            .iter()
            .filter(|(_, kh)| matches!(kh.check(&name, &[0]), CheckResult::Mismatch))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Check the server's key blob for `addr`:`port`.
    pub fn check(&self, addr: &str, port: u16, blob: &[u8]) -> Result<Verdict, String> {
        if self.revoked.iter().any(|r| r == blob) {
            return Ok(Verdict::Revoked);
        }
        let name = lookup_name(addr, port);
        let ktype = blob_key_type(blob).unwrap_or_default();
        let mut host_known = false;
        for (t, kh) in &self.by_type {
            let probe: &[u8] = if t == ktype { blob } else { &[0] };
            match kh.check(&name, probe) {
                CheckResult::Match if t == ktype => return Ok(Verdict::Match),
                CheckResult::Match | CheckResult::Mismatch => host_known = true,
                CheckResult::NotFound => {}
                CheckResult::Failure => {
                    return Err(format!("checking {} failed", self.path.display()))
                }
            }
        }
        Ok(if host_known {
            Verdict::Mismatch
        } else {
            Verdict::NotFound
        })
    }
}

/// Append one `host keytype base64` line to `path`, creating it (0600, parent 0700) if absent.
/// The line goes out in a single `write(2)` on an `O_APPEND` descriptor, so concurrent
/// appenders (several hosts accepting new keys at once) cannot interleave or overwrite.
pub fn append_host_key(path: &Path, addr: &str, port: u16, blob: &[u8]) -> Result<(), String> {
    let ktype =
        blob_key_type(blob).ok_or_else(|| "server host key blob is malformed".to_string())?;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut line = String::new();
    // Do not glue our line onto a last line lacking its newline.
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    if len > 0 {
        let mut last = [0u8; 1];
        if file.seek(SeekFrom::Start(len - 1)).is_ok()
            && file.read_exact(&mut last).is_ok()
            && last[0] != b'\n'
        {
            line.push('\n');
        }
    }
    line.push_str(&format!(
        "{} {} {}\n",
        host_pattern(&addr.to_ascii_lowercase(), port),
        ktype,
        STANDARD.encode(blob)
    ));
    let n = file
        .write(line.as_bytes())
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
    if n != line.len() {
        return Err(format!("short write appending to {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_from_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 1, 9]);
        assert_eq!(blob_key_type(&blob), Some("ssh-ed25519"));
        assert_eq!(blob_key_type(&[0, 0, 0, 50, 1]), None);
        assert_eq!(blob_key_type(&[]), None);
    }

    #[test]
    fn patterns() {
        assert_eq!(host_pattern("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(host_pattern("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }

    #[test]
    fn fingerprint_format() {
        // echo -n "" | sha256 -> 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= ; padding stripped.
        assert_eq!(
            fingerprint_sha256(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
