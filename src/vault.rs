//! Ansible Vault (format 1.1/1.2, AES256): decrypting vaulted files and inline `!vault` values
//! with the passwords of `--vault-password-file`, `--ask-vault-pass` or
//! `ANSIBLE_VAULT_PASSWORD_FILE`.
//!
//! The format, as `ansible-vault` writes it: a `$ANSIBLE_VAULT;1.1;AES256` header, then hex
//! lines of `hex(salt) \n hex(hmac) \n hex(ciphertext)`. PBKDF2-HMAC-SHA256 (10000 rounds) of
//! the password and salt gives 80 bytes: the AES-256 key, the HMAC-SHA256 key and the CTR IV.

use std::path::{Path, PathBuf};

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Environment variable naming a vault password file, as Ansible's.
pub const PASSWORD_FILE_ENV: &str = "ANSIBLE_VAULT_PASSWORD_FILE";
const HEADER: &str = "$ANSIBLE_VAULT;";

/// Why vaulted text could not be decrypted (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("it is vault-encrypted, but no vault password was given (--vault-password-file, --ask-vault-pass or ${PASSWORD_FILE_ENV})")]
    NoPassword,
    #[error("no vault password given decrypts it (HMAC mismatch: wrong password)")]
    WrongPassword,
    #[error("not a valid vault: {0}")]
    Format(String),
    #[error("reading vault password file {}: {source}", .path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vault password script {}: {message}", .path.display())]
    PasswordScript { path: PathBuf, message: String },
    #[error("--ask-vault-pass: cannot read the password from the terminal: {0}")]
    Prompt(#[source] std::io::Error),
}

/// The vault passwords of a run, tried in order.
#[derive(Clone, Default)]
pub struct Vault {
    passwords: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({} passwords)", self.passwords.len())
    }
}

/// Whether `text` is vaulted (starts with the vault header).
pub fn is_encrypted(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

impl Vault {
    /// No password: decrypting fails with [`VaultError::NoPassword`].
    pub fn none() -> Vault {
        Vault::default()
    }

    /// Whether no password was given.
    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// A vault with the given passwords.
    pub fn with_passwords(passwords: Vec<Vec<u8>>) -> Vault {
        Vault { passwords }
    }

    /// Passwords from each file (an executable file is run and its output taken, as Ansible
    /// does), then `$ANSIBLE_VAULT_PASSWORD_FILE` when no file was given, then a prompt.
    pub fn from_sources(files: &[PathBuf], ask: bool) -> Result<Vault, VaultError> {
        let mut files = files.to_vec();
        if files.is_empty() {
            if let Some(env) = std::env::var_os(PASSWORD_FILE_ENV).filter(|v| !v.is_empty()) {
                files.push(PathBuf::from(env));
            }
        }
        let mut passwords = Vec::new();
        for file in &files {
            passwords.push(read_password_file(file)?);
        }
        if ask {
            let pw = rpassword::prompt_password("Vault password: ").map_err(VaultError::Prompt)?;
            passwords.push(pw.into_bytes());
        }
        Ok(Vault { passwords })
    }

    /// Decrypts vaulted text with the first password whose HMAC matches.
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, VaultError> {
        let (salt, mac, ciphertext) = parse(text)?;
        if self.passwords.is_empty() {
            return Err(VaultError::NoPassword);
        }
        for password in &self.passwords {
            let mut derived = [0u8; 80];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, 10_000, &mut derived);
            let (key, rest) = derived.split_at(32);
            let (mac_key, iv) = rest.split_at(32);
            let mut check =
                <Hmac<Sha256> as Mac>::new_from_slice(mac_key).expect("HMAC takes any key size");
            check.update(&ciphertext);
            if check.verify_slice(&mac).is_err() {
                continue;
            }
            let mut plain = ciphertext.clone();
            ctr::Ctr128BE::<aes::Aes256>::new(key.into(), iv.into()).apply_keystream(&mut plain);
            return unpad(plain);
        }
        Err(VaultError::WrongPassword)
    }

    /// Decrypts vaulted text that must be UTF-8 (files and values Ansible reads as text).
    pub fn decrypt_text(&self, text: &str) -> Result<String, VaultError> {
        String::from_utf8(self.decrypt(text)?)
            .map_err(|_| VaultError::Format("the decrypted data is not UTF-8 text".to_string()))
    }
}

fn read_password_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| VaultError::PasswordFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let bytes = if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        let out = std::process::Command::new(path)
            .stdin(std::process::Stdio::inherit())
            .output()
            .map_err(io)?;
        if !out.status.success() {
            return Err(VaultError::PasswordScript {
                path: path.to_path_buf(),
                message: format!("exited with {}", out.status),
            });
        }
        out.stdout
    } else {
        std::fs::read(path).map_err(io)?
    };
    Ok(trim(&bytes).to_vec())
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

type Parts = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Header checks and the three hex fields: salt, HMAC, ciphertext.
fn parse(text: &str) -> Result<Parts, VaultError> {
    let bad = |m: &str| VaultError::Format(m.to_string());
    let mut lines = text.trim().lines();
    let header = lines.next().unwrap_or_default().trim();
    let fields: Vec<&str> = header.split(';').map(str::trim).collect();
    if fields.len() < 3 || fields[0] != "$ANSIBLE_VAULT" {
        return Err(bad("no $ANSIBLE_VAULT header"));
    }
    if fields[2] != "AES256" {
        return Err(VaultError::Format(format!(
            "unsupported cipher {:?}",
            fields[2]
        )));
    }
    let body: String = lines.map(str::trim).collect();
    let inner = hex::decode(body).map_err(|e| VaultError::Format(format!("hex: {e}")))?;
    let mut parts = inner.splitn(3, |b| *b == b'\n');
    let (Some(salt), Some(mac), Some(ciphertext)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected salt, HMAC and ciphertext"));
    };
    let decode =
        |part: &[u8]| hex::decode(trim(part)).map_err(|e| VaultError::Format(format!("hex: {e}")));
    Ok((decode(salt)?, decode(mac)?, decode(ciphertext)?))
}

/// Removes PKCS#7 padding (16-byte blocks).
fn unpad(mut plain: Vec<u8>) -> Result<Vec<u8>, VaultError> {
    let n = *plain.last().unwrap_or(&0) as usize;
    if n == 0
        || n > 16
        || n > plain.len()
        || !plain[plain.len() - n..].iter().all(|b| *b as usize == n)
    {
        return Err(VaultError::Format("bad padding".to_string()));
    }
    plain.truncate(plain.len() - n);
    Ok(plain)
}
