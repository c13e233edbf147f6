//! SSH keys of a lab: the client key, one host key per host (made in this process), and
//! the known_hosts / authorized_keys files built from them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::LabError;

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

/// Generates an ed25519 key pair (no passphrase) at each path, in this process: a 500-host lab
/// would otherwise start 500 ssh-keygen processes, about a second of CPU on a small machine.
/// The files are what `ssh-keygen -t ed25519 -N ''` writes (OpenSSH private key format,
/// mode 0600, and the `.pub` line).
pub(crate) fn generate(keys: &[(PathBuf, String)]) -> Result<(), LabError> {
    let rng = SystemRandom::new();
    for (path, comment) in keys {
        let failed = |what: &str| LabError::Command {
            what: format!("generating {}", path.display()),
            detail: what.to_string(),
        };
        let mut seed = [0u8; 32];
        let mut check = [0u8; 4];
        rng.fill(&mut seed)
            .and_then(|()| rng.fill(&mut check))
            .map_err(|_| failed("no randomness from the kernel"))?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| failed("ed25519 key from seed rejected"))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| failed("ed25519 public key is not 32 bytes"))?;
        // ssh-keygen asks before overwriting; a half pair is stale anyway.
        let _ = fs::remove_file(path);
        let _ = fs::remove_file(pub_path(path));
        write_private(path, &openssh_private(&seed, &public, comment, check))?;
        let line = format!("{} {comment}\n", public_line(&public));
        fs::write(pub_path(path), line).map_err(LabError::io(format!(
            "writing {}",
            pub_path(path).display()
        )))?;
    }
    Ok(())
}

const ED25519: &[u8] = b"ssh-ed25519";

/// An SSH wire-format string: u32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn public_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    put_string(&mut blob, ED25519);
    put_string(&mut blob, public);
    blob
}

/// `ssh-ed25519 AAAA...`, as in a `.pub` file or authorized_keys, without a comment.
fn public_line(public: &[u8; 32]) -> String {
    format!("ssh-ed25519 {}", B64.encode(public_blob(public)))
}

/// An unencrypted key in OpenSSH's `openssh-key-v1` format (PROTOCOL.key in OpenSSH).
fn openssh_private(seed: &[u8; 32], public: &[u8; 32], comment: &str, check: [u8; 4]) -> String {
    let mut private = Vec::with_capacity(160);
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, ED25519);
    put_string(&mut private, public);
    let mut secret = Vec::with_capacity(64);
    secret.extend_from_slice(seed);
    secret.extend_from_slice(public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    // Padded with 1, 2, 3, ... to the cipher's block size (8 for "none").
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut blob = b"openssh-key-v1\0".to_vec();
    put_string(&mut blob, b"none");
    put_string(&mut blob, b"none");
    put_string(&mut blob, b"");
    blob.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut blob, &public_blob(public));
    put_string(&mut blob, &private);
    let b64 = B64.encode(&blob);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    pem
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

    /// ssh-keygen reads the private key back and derives the same public key, so OpenSSH
    /// (sshd's HostKey, ssh -i) takes the files as its own.
    #[test]
    fn generated_keys_are_read_by_ssh_keygen() {
        let dir = std::env::temp_dir().join(format!("bsctl-keys-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        generate(&[(key.clone(), "root@worker-01".to_string())]).unwrap();
        assert!(pair_exists(&key));
        let mode = fs::metadata(&key).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            derived
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
            public_key(&key).unwrap()
        );
        let line = fs::read_to_string(pub_path(&key)).unwrap();
        assert!(line.ends_with(" root@worker-01\n"), "{line}");
        // Two keys never share a seed.
        generate(&[(dir.join("other"), "x".to_string())]).unwrap();
        assert_ne!(
            public_key(&key).unwrap(),
            public_key(&dir.join("other")).unwrap()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn known_hosts_pattern_follows_openssh() {
        assert_eq!(known_hosts_pattern("127.10.0.1", 22), "127.10.0.1");
        assert_eq!(known_hosts_pattern("127.10.0.1", 2222), "[127.10.0.1]:2222");
    }
}
