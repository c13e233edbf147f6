//! Identity files decoded once per process. libssh2 reads and decodes the private key file
//! again for every connection, through OpenSSL 3's decoders, which try every format they know
//! under global locks before libssh2 falls back to its own OpenSSH parser: at 200 hosts that
//! was a fifth of a no-op run's CPU. An unencrypted ed25519 key (what `ssh-keygen` makes by
//! default) is therefore decoded here once and signs the userauth request itself, through
//! libssh2's callback form of publickey auth; every other key (RSA, ECDSA, encrypted) still goes
//! to libssh2 as a file, as before.

use std::ffi::{c_char, c_int, c_uchar, c_void, CString};
use std::path::Path;
use std::sync::Arc;

use ring::signature::Ed25519KeyPair;
use ssh2::Session;

use super::per_file::PerFile;

/// A decoded ed25519 identity: its public key blob (SSH wire form) and the key pair.
pub(super) struct Ed25519Identity {
    public_blob: Vec<u8>,
    pair: Ed25519KeyPair,
}

static DECODED: PerFile<Option<Arc<Ed25519Identity>>> = PerFile::new();

impl Ed25519Identity {
    /// The identity at `path`, decoded once and shared with every other connection of this
    /// process (decoded again when the file changed). `None` when the file is missing,
    /// unreadable or not an unencrypted ed25519 key: libssh2 then reads it itself, and says
    /// why it cannot.
    pub(super) fn shared(path: &Path) -> Option<Arc<Ed25519Identity>> {
        DECODED
            .get(path, || Ok(Self::decode(path).map(Arc::new)))
            .ok()
            .flatten()
    }

    fn decode(path: &Path) -> Option<Ed25519Identity> {
        let text = zeroize::Zeroizing::new(std::fs::read(path).ok()?);
        let key = ssh_key::PrivateKey::from_openssh(&*text).ok()?;
        if key.is_encrypted() {
            return None;
        }
        let ssh_key::private::KeypairData::Ed25519(pair) = key.key_data() else {
            return None;
        };
        let seed = zeroize::Zeroizing::new(pair.private.to_bytes());
        let pair = Ed25519KeyPair::from_seed_and_public_key(&*seed, &pair.public.0).ok()?;
        let public_blob = key.public_key().to_bytes().ok()?;
        Some(Ed25519Identity { public_blob, pair })
    }

    /// Publickey auth as `user` with this key, signed here.
    pub(super) fn authenticate(&self, session: &Session, user: &str) -> Result<(), String> {
        let user = CString::new(user).map_err(|_| "user name holds a NUL byte".to_string())?;
        let mut key = &self.pair as *const Ed25519KeyPair as *mut c_void;
        let rc = {
            let raw = session.raw();
            let raw = &*raw as *const _ as *mut c_void;
            // SAFETY: `raw` is the live session, held locked by the guard for the call; the
            // blob and user outlive it; `key` points at `self.pair`, which outlives it, and
            // the callback only reads it. The session is in blocking mode, so libssh2 never
            // returns to be called again with the same state.
            unsafe {
                libssh2_userauth_publickey(
                    raw,
                    user.as_ptr(),
                    self.public_blob.as_ptr(),
                    self.public_blob.len(),
                    Some(sign_ed25519),
                    &mut key,
                )
            }
        };
        if rc == 0 && session.authenticated() {
            return Ok(());
        }
        if rc == 0 {
            return Err("partial success only".into());
        }
        Err(ssh2::Error::last_session_error(session)
            .map(|e| e.message().to_string())
            .unwrap_or_else(|| format!("libssh2 error {rc}")))
    }

    #[cfg(test)]
    fn public_key_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.public_blob)
    }
}

type SignFn = unsafe extern "C" fn(
    session: *mut c_void,
    sig: *mut *mut c_uchar,
    sig_len: *mut usize,
    data: *const c_uchar,
    data_len: usize,
    abstract_: *mut *mut c_void,
) -> c_int;

extern "C" {
    // libssh2.h: publickey auth with the signature made by the caller (`sign_callback`), in
    // libssh2 since 1.2; libssh2-sys does not declare it.
    fn libssh2_userauth_publickey(
        session: *mut c_void,
        username: *const c_char,
        pubkeydata: *const c_uchar,
        pubkeydata_len: usize,
        sign_callback: Option<SignFn>,
        abstract_: *mut *mut c_void,
    ) -> c_int;
}

/// libssh2's sign callback: the raw 64-byte ed25519 signature of `data` (libssh2 wraps it
/// with the method name), in memory libssh2 frees with its allocator, which for sessions
/// made by the ssh2 crate is the C library's `free`.
unsafe extern "C" fn sign_ed25519(
    _session: *mut c_void,
    sig: *mut *mut c_uchar,
    sig_len: *mut usize,
    data: *const c_uchar,
    data_len: usize,
    abstract_: *mut *mut c_void,
) -> c_int {
    // SAFETY: libssh2 passes back the `abstract_` given to libssh2_userauth_publickey (a
    // pointer to the key pair) and `data_len` readable bytes at `data`; `sig` and `sig_len`
    // are valid for writes.
    unsafe {
        let pair = &*((*abstract_) as *const Ed25519KeyPair);
        let signature = pair.sign(std::slice::from_raw_parts(data, data_len));
        let bytes = signature.as_ref();
        let out = libc::malloc(bytes.len()) as *mut c_uchar;
        if out.is_null() {
            return -1;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
        *sig = out;
        *sig_len = bytes.len();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
        let path = dir.join(name);
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", "test", "-f"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen -t {kind}");
        path
    }

    #[test]
    fn an_unencrypted_ed25519_key_is_decoded_once_and_others_are_left_to_libssh2() {
        let dir = std::env::temp_dir().join(format!("bsctl-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ed = keygen(&dir, "id_ed25519", "ed25519", "");
        let id = Ed25519Identity::shared(&ed).expect("decoded");
        // The blob is the one ssh-keygen wrote in the .pub file.
        let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();
        assert_eq!(
            public.split_whitespace().nth(1).unwrap(),
            id.public_key_base64()
        );
        // Shared while the file is unchanged; decoded again once it changes.
        assert!(Arc::ptr_eq(&id, &Ed25519Identity::shared(&ed).unwrap()));
        std::fs::remove_file(&ed).unwrap();
        std::fs::remove_file(dir.join("id_ed25519.pub")).unwrap();
        let ed = keygen(&dir, "id_ed25519", "ed25519", "");
        let again = Ed25519Identity::shared(&ed).unwrap();
        assert!(!Arc::ptr_eq(&id, &again));
        assert_ne!(id.public_key_base64(), again.public_key_base64());
        // Encrypted, RSA, missing, not a key: libssh2's.
        assert!(Ed25519Identity::shared(&keygen(&dir, "enc", "ed25519", "secret")).is_none());
        assert!(Ed25519Identity::shared(&keygen(&dir, "rsa", "rsa", "")).is_none());
        assert!(Ed25519Identity::shared(&dir.join("missing")).is_none());
        std::fs::write(dir.join("junk"), "not a key").unwrap();
        assert!(Ed25519Identity::shared(&dir.join("junk")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
