//! Publickey authentication, as OpenSSH orders it: identity files (through the agent when it
//! holds the same key), the agent's other keys unless IdentitiesOnly, then the default keys.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ssh2::Session;

use super::identity::Ed25519Identity;
use super::target::SshTarget;
use super::TransportError;

/// The public key blob of an identity file, from `FILE.pub` (or FILE itself if it is a
/// `.pub`), used to recognise the same key in the agent.
fn public_blob(path: &Path) -> Option<Vec<u8>> {
    let pub_path = if path.extension().is_some_and(|e| e == "pub") {
        path.to_path_buf()
    } else {
        let mut p = path.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let text = std::fs::read_to_string(pub_path).ok()?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().nth(1)?)
        .ok()
}

/// The agent and its keys, or why it cannot be used.
fn open_agent(
    t: &SshTarget,
    session: &Session,
) -> Result<(ssh2::Agent, Vec<ssh2::PublicKey>), String> {
    let socket = match &t.agent_socket {
        Some(p) => p.clone(),
        None => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => return Err("agent (SSH_AUTH_SOCK not set)".into()),
        },
    };
    let fail = |e: ssh2::Error| format!("agent {} ({})", socket.display(), e.message());
    let mut agent = session.agent().map_err(fail)?;
    agent.set_identity_path(&socket).map_err(fail)?;
    agent.connect().map_err(fail)?;
    agent.list_identities().map_err(fail)?;
    let ids = agent.identities().map_err(fail)?;
    Ok((agent, ids))
}

/// Publickey authentication, as OpenSSH orders it: each identity file (through the agent
/// when the agent holds that key, else from the file), then — unless IdentitiesOnly — the
/// agent's other keys; with no identity file configured, every agent key then the default
/// ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
pub(super) fn authenticate(session: &Session, t: &SshTarget) -> Result<(), TransportError> {
    let auth_err = |reason: String| TransportError::Auth {
        user: format!("{}@{}", t.user, t.host),
        reason,
    };
    let mut tried: Vec<String> = Vec::new();
    let mut agent = match open_agent(t, session) {
        Ok(a) => Some(a),
        Err(why) => {
            if t.identity_files.is_empty() || !t.identities_only {
                tried.push(why);
            }
            None
        }
    };
    // Indices of agent keys already offered.
    let mut used: Vec<usize> = Vec::new();
    let agent_try = |agent: &mut (ssh2::Agent, Vec<ssh2::PublicKey>), i: usize| {
        agent.0.userauth(&t.user, &agent.1[i]).is_ok() && session.authenticated()
    };

    if !t.identity_files.is_empty() {
        for path in &t.identity_files {
            let blob = public_blob(path);
            if let (Some(a), Some(blob)) = (agent.as_mut(), blob.as_ref()) {
                if let Some(i) = a.1.iter().position(|id| id.blob() == blob.as_slice()) {
                    used.push(i);
                    if agent_try(a, i) {
                        let _ = a.0.disconnect();
                        return Ok(());
                    }
                    tried.push(format!("{} (via agent: not accepted)", path.display()));
                    continue;
                }
            }
            match std::fs::File::open(path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tried.push(format!("private key file {} not found", path.display()));
                    continue;
                }
                Err(e) => {
                    tried.push(format!(
                        "private key file {} is unreadable: {e}",
                        path.display()
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            match try_key_file(session, &t.user, path) {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(format!("publickey {}: {e}", path.display())),
            }
        }
        if !t.identities_only {
            if let Some(a) = agent.as_mut() {
                let others: Vec<usize> = (0..a.1.len()).filter(|i| !used.contains(i)).collect();
                for &i in &others {
                    if agent_try(a, i) {
                        let _ = a.0.disconnect();
                        return Ok(());
                    }
                }
                if !others.is_empty() {
                    tried.push(format!(
                        "{} other agent key(s) (not accepted)",
                        others.len()
                    ));
                }
            }
        }
        if let Some(mut a) = agent {
            let _ = a.0.disconnect();
        }
        return Err(auth_err(format!("tried {}", tried.join("; "))));
    }

    if let Some(a) = agent.as_mut() {
        let n = a.1.len();
        for i in 0..n {
            if agent_try(a, i) {
                let _ = a.0.disconnect();
                return Ok(());
            }
        }
        tried.push(format!("agent ({n} key(s), none accepted)"));
        let _ = a.0.disconnect();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let Some(path) = home.as_ref().map(|h| h.join(".ssh").join(name)) else {
            break;
        };
        if !path.exists() {
            continue;
        }
        match try_key_file(session, &t.user, &path) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    if home.is_none() {
        tried.push("default keys (HOME not set)".into());
    } else if !tried.iter().any(|s| s.contains("/.ssh/")) {
        tried.push("no default key in ~/.ssh (id_ed25519, id_ecdsa, id_rsa)".into());
    }
    Err(auth_err(format!("tried {}", tried.join("; "))))
}

fn try_key_file(session: &Session, user: &str, path: &Path) -> Result<(), String> {
    if let Some(id) = Ed25519Identity::shared(path) {
        return id.authenticate(session, user);
    }
    session
        .userauth_pubkey_file(user, None, path, None)
        .map_err(|e| e.message().to_string())?;
    if session.authenticated() {
        Ok(())
    } else {
        Err("partial success only".into())
    }
}
