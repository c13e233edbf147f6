//! SSH keys of a lab: the client key, one host key per host (ssh-keygen, run in parallel), and
//! the known_hosts / authorized_keys files built from them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::LabError;

/// How many ssh-keygen processes run at once: enough to hide process start-up, few enough not
/// to swamp a small machine.
const PARALLEL_KEYGEN: usize = 32;

/// True when both halves of a key pair exist (a lab restarted in the same dir reuses its keys,
/// so known_hosts copied elsewhere stays valid).
pub(crate) fn pair_exists(private: &Path) -> bool {
    private.is_file() && pub_path(private).is_file()
}

pub(crate) fn pub_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Generates an ed25519 key pair (no passphrase) at each path, PARALLEL_KEYGEN at a time.
pub(crate) fn generate(keys: &[(PathBuf, String)]) -> Result<(), LabError> {
    for chunk in keys.chunks(PARALLEL_KEYGEN) {
        let mut children: Vec<(&Path, Child)> = Vec::with_capacity(chunk.len());
        for (path, comment) in chunk {
            // ssh-keygen asks before overwriting; a half pair is stale anyway.
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(pub_path(path));
            let child = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(LabError::io(format!(
                    "running ssh-keygen for {}",
                    path.display()
                )))?;
            children.push((path, child));
        }
        for (path, child) in children {
            let out = child.wait_with_output().map_err(LabError::io(format!(
                "waiting for ssh-keygen for {}",
                path.display()
            )))?;
            if !out.status.success() {
                return Err(LabError::Command {
                    what: format!("generating {}", path.display()),
                    detail: format!(
                        "ssh-keygen {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `ssh-ed25519 AAAA...` of a public key file, without its comment.
pub(crate) fn public_key(private: &Path) -> Result<String, LabError> {
    let path = pub_path(private);
    let text =
        fs::read_to_string(&path).map_err(LabError::io(format!("reading {}", path.display())))?;
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(b64)) => Ok(format!("{kind} {b64}")),
        _ => Err(LabError::Command {
            what: format!("reading {}", path.display()),
            detail: "not an OpenSSH public key".into(),
        }),
    }
}

/// The host pattern OpenSSH writes in known_hosts: bare address on port 22, `[addr]:port` otherwise.
pub(crate) fn known_hosts_pattern(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Writes `contents` with mode 0600 (keys and key lists are nobody else's business).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), LabError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(LabError::io(format!("writing {}", path.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(LabError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_pattern_follows_openssh() {
        assert_eq!(known_hosts_pattern("127.10.0.1", 22), "127.10.0.1");
        assert_eq!(known_hosts_pattern("127.10.0.1", 2222), "[127.10.0.1]:2222");
    }
}
