//! OpenSSH `known_hosts` handling for the SSH transport.
//!
//! The file is parsed once per run and shared by every connection that names it (a fleet's
//! known_hosts has a line per host, so parsing it per connection cost N² lines); it is
//! parsed again only when its stat (inode, size, mtime) changes, as after a key is recorded.
//! Host names match as OpenSSH matches them: comma lists, `*`/`?` wildcards, `!negation`,
//! hashed `|1|salt|hash` names (HMAC-SHA1) and `[host]:port`; plain names are indexed, so a
//! lookup costs the same at any file size unless the file has hashed or wildcard lines.
//! Entries are grouped by key type, so a host known only with an RSA key is not reported as
//! "changed" merely because the server offered an ed25519 key (the caller prefers the known
//! key types during key exchange, as OpenSSH does); `@revoked` keys are refused;
//! `@cert-authority` lines and unparsable lines are skipped; new keys are appended with a
//! single `O_APPEND` write so concurrent appends never interleave.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::per_file::PerFile;

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

/// How a line names its hosts.
#[derive(Debug)]
enum Names {
    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as `HashKnownHosts` writes.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// A comma list with wildcards or negations (lower-cased), matched as OpenSSH does.
    Patterns(Vec<String>),
    /// Plain names only: found through the index.
    Indexed,
}

#[derive(Debug)]
struct Entry {
    names: Names,
    key_type: String,
    blob: Vec<u8>,
}

/// A known_hosts file, parsed.
#[derive(Debug)]
pub struct KnownHostsDb {
    path: PathBuf,
    /// In file order.
    entries: Vec<Entry>,
    /// Plain (lower-cased) name → its entries, in file order.
    by_name: HashMap<String, Vec<usize>>,
    /// Entries that have to be matched one by one (hashed, wildcards, negations).
    scanned: Vec<usize>,
    revoked: Vec<Vec<u8>>,
}

/// Every known_hosts file this process has parsed, by path.
static PARSED: PerFile<Arc<KnownHostsDb>> = PerFile::new();

impl KnownHostsDb {
    /// `path` parsed, shared with every other connection of this process that names it; parsed
    /// again when the file changed since.
    pub fn shared(path: &Path) -> Result<Arc<KnownHostsDb>, String> {
        PARSED.get(path, || Self::load(path).map(Arc::new))
    }

    /// Parse `path` (a missing file is an empty set). Errors are I/O errors reading the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self::parse(path, &text))
    }

    fn parse(path: &Path, text: &str) -> Self {
        let mut db = KnownHostsDb {
            path: path.to_path_buf(),
            entries: Vec::new(),
            by_name: HashMap::new(),
            scanned: Vec::new(),
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
            let (false, Some(_type_field), Some(b64)) =
                (first.is_empty(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(blob) = STANDARD.decode(b64) else {
                continue;
            };
            match marker {
                // Refused whatever host it names.
                Some("@revoked") => {
                    db.revoked.push(blob);
                    continue;
                }
                Some(_) => continue, // @cert-authority: certificates are not supported
                None => {}
            }
            let Some(key_type) = blob_key_type(&blob).map(str::to_string) else {
                continue;
            };
            let idx = db.entries.len();
            let names = if let Some(hashed) = first.strip_prefix("|1|") {
                let Some((salt, hash)) = hashed.split_once('|') else {
                    continue;
                };
                let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
                    continue;
                };
                db.scanned.push(idx);
                Names::Hashed { salt, hash }
            } else {
                let list: Vec<String> = first
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect();
                if list.iter().any(|p| p.contains(['*', '?', '!'])) {
                    db.scanned.push(idx);
                    Names::Patterns(list)
                } else {
                    for name in list {
                        db.by_name.entry(name).or_default().push(idx);
                    }
                    Names::Indexed
                }
            };
            db.entries.push(Entry {
                names,
                key_type,
                blob,
            });
        }
        db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries naming `addr`:`port`, in file order.
    fn entries_for(&self, addr: &str, port: u16) -> Vec<&Entry> {
        let name = lookup_name(addr, port);
        let mut idx: Vec<usize> = self.by_name.get(&name).cloned().unwrap_or_default();
        idx.extend(
            self.scanned
                .iter()
                .copied()
                .filter(|&i| names_match(&self.entries[i].names, &name)),
        );
        idx.sort_unstable();
        idx.into_iter().map(|i| &self.entries[i]).collect()
    }

    /// Key types (blob type names) recorded for this host, in file order of first appearance.
    pub fn known_key_types(&self, addr: &str, port: u16) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for e in self.entries_for(addr, port) {
            if !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    /// Check the server's key blob for `addr`:`port`.
    pub fn check(&self, addr: &str, port: u16, blob: &[u8]) -> Result<Verdict, String> {
        if self.revoked.iter().any(|r| r == blob) {
            return Ok(Verdict::Revoked);
        }
        let entries = self.entries_for(addr, port);
        Ok(if entries.iter().any(|e| e.blob == blob) {
            Verdict::Match
        } else if entries.is_empty() {
            Verdict::NotFound
        } else {
            Verdict::Mismatch
        })
    }
}

/// Whether a line's names cover `name` (lower-cased): OpenSSH's rule for a pattern list is
/// that some pattern matches and no negated one does.
fn names_match(names: &Names, name: &str) -> bool {
    match names {
        Names::Indexed => false,
        Names::Hashed { salt, hash } => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
            ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
        }
        Names::Patterns(list) => {
            let mut hit = false;
            for p in list {
                match p.strip_prefix('!') {
                    Some(neg) if wildcard(neg.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => hit |= wildcard(p.as_bytes(), name.as_bytes()),
                }
            }
            hit
        }
    }
}

/// `*` (any run) and `?` (any one byte) glob match of the whole of `s`.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
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

    fn blob(ktype: &str, body: u8) -> Vec<u8> {
        let mut b = (ktype.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(ktype.as_bytes());
        b.extend_from_slice(&[0, 0, 0, 1, body]);
        b
    }

    fn line(names: &str, ktype: &str, body: u8) -> String {
        format!("{names} {ktype} {}\n", STANDARD.encode(blob(ktype, body)))
    }

    #[test]
    fn wildcards_negation_and_lists_match_as_openssh() {
        assert!(wildcard(b"*.example.net", b"a.example.net"));
        assert!(wildcard(b"10.0.?.1", b"10.0.3.1"));
        assert!(!wildcard(b"10.0.?.1", b"10.0.33.1"));
        assert!(wildcard(b"*", b""));
        assert!(!wildcard(b"a*b", b"ac"));
        let ed = "ssh-ed25519";
        let text = [
            line("[10.0.0.1]:2222,other", ed, 1),
            line("*.lab,!bad.lab", ed, 2),
            line("[10.0.0.2]:2222", "ssh-rsa", 3),
            line("[10.0.0.2]:2222", ed, 4),
        ]
        .concat();
        let db = KnownHostsDb::parse(Path::new("kh"), &text);
        assert_eq!(db.check("10.0.0.1", 2222, &blob(ed, 1)), Ok(Verdict::Match));
        assert_eq!(db.check("OTHER", 22, &blob(ed, 1)), Ok(Verdict::Match));
        assert_eq!(
            db.check("10.0.0.1", 22, &blob(ed, 1)),
            Ok(Verdict::NotFound)
        );
        assert_eq!(db.check("w1.lab", 22, &blob(ed, 2)), Ok(Verdict::Match));
        assert_eq!(db.check("bad.lab", 22, &blob(ed, 2)), Ok(Verdict::NotFound));
        assert_eq!(db.check("w1.lab", 22, &blob(ed, 9)), Ok(Verdict::Mismatch));
        assert_eq!(
            db.known_key_types("10.0.0.2", 2222),
            vec!["ssh-rsa".to_string(), ed.to_string()]
        );
        assert_eq!(db.check("10.0.0.2", 2222, &blob(ed, 4)), Ok(Verdict::Match));
    }

    #[test]
    fn hashed_names() {
        // `ssh-keygen -H` of "[127.0.0.1]:2222": salt and HMAC-SHA1 of the name.
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&key, b"[127.0.0.1]:2222");
        let names = format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(tag.as_ref())
        );
        let db = KnownHostsDb::parse(Path::new("kh"), &line(&names, "ssh-ed25519", 5));
        let b = blob("ssh-ed25519", 5);
        assert_eq!(db.check("127.0.0.1", 2222, &b), Ok(Verdict::Match));
        assert_eq!(db.check("127.0.0.2", 2222, &b), Ok(Verdict::NotFound));
    }

    #[test]
    fn shared_is_parsed_again_when_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("bsctl-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_hosts");
        std::fs::write(&path, line("a", "ssh-ed25519", 1)).unwrap();
        let first = KnownHostsDb::shared(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &KnownHostsDb::shared(&path).unwrap()));
        append_host_key(&path, "b", 22, &blob("ssh-ed25519", 2)).unwrap();
        let again = KnownHostsDb::shared(&path).unwrap();
        assert_eq!(
            again.check("b", 22, &blob("ssh-ed25519", 2)),
            Ok(Verdict::Match)
        );
        assert_eq!(
            again.check("a", 22, &blob("ssh-ed25519", 1)),
            Ok(Verdict::Match)
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
