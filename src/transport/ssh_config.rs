//! OpenSSH client configuration (`~/.ssh/config`, `--ssh-config FILE`) as far as bootstrapctl
//! uses it, read with the `ssh2-config` crate.
//!
//! The crate parses the file, follows `Include` (globs; relative paths under `~/.ssh`;
//! includes inside a `Host` block stay scoped to it), matches `Host` pattern lists (`*`, `?`,
//! `!negation`) and merges matching blocks first-obtained-value-wins, as OpenSSH does. Around
//! it this module adds: the options the crate keeps only as raw text (`IdentitiesOnly`,
//! `UserKnownHostsFile`, `StrictHostKeyChecking`), `IdentityFile` accumulated over every
//! matching block (OpenSSH offers them all), `%h %r %p %d %u %%` tokens, and `Match` blocks
//! in the main file, which the crate does not know: their options are ignored (never
//! misapplied to the preceding `Host` block).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig as Parsed};

/// Why an ssh_config file or a jump host spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read ssh config {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ssh config {}", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<ssh2_config::SshParserError>,
    },
    #[error("bad jump host {0:?}")]
    JumpSpec(String),
    #[error("bad port in jump host {spec:?}")]
    JumpPort {
        spec: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// What ssh_config says about one host (the name as given to `ssh`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Every `IdentityFile` of every matching block, in order, tokens not yet expanded.
    pub identity_files: Vec<String>,
    pub identities_only: Option<bool>,
    /// `ProxyJump` hops; `Some(empty)` for `ProxyJump none`.
    pub proxy_jump: Option<Vec<String>>,
    /// The first `UserKnownHostsFile` (tokens not yet expanded).
    pub user_known_hosts_file: Option<String>,
    /// `StrictHostKeyChecking`, lower-cased: yes, ask, accept-new, no, off.
    pub strict_host_key_checking: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub connection_attempts: Option<usize>,
}

/// A parsed ssh_config; empty when there is none.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    parsed: Option<Parsed>,
    source: Option<PathBuf>,
}

impl SshConfig {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Read `path`. A missing file is an empty config unless `required` (an explicit
    /// `--ssh-config`). `home` resolves `~` and relative `Include` paths (`home/.ssh/…`).
    pub fn load(path: &Path, home: &Path, required: bool) -> Result<Self, SshConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::empty())
            }
            Err(source) => {
                return Err(SshConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut cfg = Self::parse_str(&text, home).map_err(|source| SshConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    pub fn parse_str(text: &str, home: &Path) -> Result<Self, ssh2_config::SshParserError> {
        let text = neutralise_match_blocks(text);
        let parsed = Parsed::default().home_dir(home).parse(
            &mut text.as_bytes(),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )?;
        Ok(SshConfig {
            parsed: Some(parsed),
            source: None,
        })
    }

    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The options for `host` (matched case-insensitively, as OpenSSH lower-cases it).
    pub fn lookup(&self, host: &str) -> HostConfig {
        let Some(parsed) = &self.parsed else {
            return HostConfig::default();
        };
        let host = host.to_ascii_lowercase();
        let p = parsed.query(&host);
        let raw = |name: &str| -> Option<Vec<String>> {
            // The crate keeps the first value per block; blocks merge first-wins.
            parsed
                .intersecting_hosts(&host)
                .find_map(|h| h.params.unsupported_fields.get(name).cloned())
        };
        let identity_files = parsed
            .intersecting_hosts(&host)
            .filter_map(|h| h.params.identity_file.clone())
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        HostConfig {
            host_name: p.host_name.clone(),
            user: p.user.clone(),
            port: p.port,
            identity_files,
            identities_only: raw("identitiesonly").and_then(|v| v.first().map(|s| yes(s))),
            proxy_jump: p.proxy_jump.clone().map(|hops| {
                if hops.len() == 1 && hops[0].eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    hops
                }
            }),
            user_known_hosts_file: raw("userknownhostsfile").and_then(|v| v.first().cloned()),
            strict_host_key_checking: raw("stricthostkeychecking")
                .and_then(|v| v.first().map(|s| s.to_ascii_lowercase())),
            connect_timeout: p.connect_timeout,
            connection_attempts: p.connection_attempts,
        }
    }
}

fn yes(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "on")
}

/// `Match` is not understood by the crate, which would apply the options under it to the
/// preceding `Host` block. Turn each `Match` line into a block that matches no host.
fn neutralise_match_blocks(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            let kw: String = t
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '=')
                .collect();
            if kw.eq_ignore_ascii_case("match") {
                "Host !*".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expand OpenSSH tokens (`%h` host name, `%r` remote user, `%p` port, `%d` local home,
/// `%u` local user, `%n` the name as given, `%%`) and a leading `~/`.
pub fn expand_tokens(s: &str, t: &Tokens) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&t.host_name),
            Some('r') => out.push_str(&t.user),
            Some('p') => out.push_str(&t.port.to_string()),
            Some('d') => out.push_str(&t.home.display().to_string()),
            Some('u') => out.push_str(&t.local_user),
            Some('n') => out.push_str(&t.original),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    if let Some(rest) = out.strip_prefix("~/") {
        return t.home.join(rest).display().to_string();
    }
    if out == "~" {
        return t.home.display().to_string();
    }
    out
}

/// Values for [`expand_tokens`].
#[derive(Debug, Clone)]
pub struct Tokens {
    pub host_name: String,
    pub original: String,
    pub user: String,
    pub port: u16,
    pub home: PathBuf,
    pub local_user: String,
}

/// A jump spec `[user@]host[:port]` or `ssh://[user@]host[:port]` (IPv6 as `[addr]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

pub fn parse_jump_spec(spec: &str) -> Result<JumpSpec, SshConfigError> {
    let s = spec.trim();
    let s = s.strip_prefix("ssh://").unwrap_or(s);
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, s),
    };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| SshConfigError::JumpSpec(spec.to_string()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|source| SshConfigError::JumpPort {
                spec: spec.to_string(),
                source,
            })?),
            None => None,
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                Some(p.parse().map_err(|source| SshConfigError::JumpPort {
                    spec: spec.to_string(),
                    source,
                })?),
            ),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || user.as_deref() == Some("") {
        return Err(SshConfigError::JumpSpec(spec.to_string()));
    }
    Ok(JumpSpec { user, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> PathBuf {
        PathBuf::from("/home/alice")
    }

    #[test]
    fn first_value_wins_patterns_and_negation() {
        let cfg = SshConfig::parse_str(
            "Host web-* !web-special\n  User webuser\n  Port 2200\n\
             Host web-0?\n  User ignored-second\n  HostName %h.example.com\n\
             Host *\n  User everyone\n  ConnectTimeout 7\n",
            &home(),
        )
        .unwrap();
        let c = cfg.lookup("web-01");
        assert_eq!(c.user.as_deref(), Some("webuser"));
        assert_eq!(c.port, Some(2200));
        assert_eq!(c.host_name.as_deref(), Some("%h.example.com"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
        let c = cfg.lookup("web-special");
        assert_eq!(c.user.as_deref(), Some("everyone"));
        assert_eq!(c.port, None);
        // Case-insensitive, as OpenSSH lower-cases the host.
        assert_eq!(cfg.lookup("WEB-01").user.as_deref(), Some("webuser"));
    }

    #[test]
    fn identity_files_accumulate_and_raw_options() {
        let cfg = SshConfig::parse_str(
            "Host db1\n  IdentityFile ~/.ssh/db_key\n  IdentitiesOnly yes\n\
               UserKnownHostsFile ~/.ssh/fleet_hosts /other\n  StrictHostKeyChecking accept-new\n\
             Host *\n  IdentityFile %d/.ssh/id_%r\n  IdentitiesOnly no\n\
               StrictHostKeyChecking yes\n",
            &home(),
        )
        .unwrap();
        let c = cfg.lookup("db1");
        assert_eq!(
            c.identity_files,
            vec!["/home/alice/.ssh/db_key", "%d/.ssh/id_%r"]
        );
        assert_eq!(c.identities_only, Some(true));
        // Raw: `~` and tokens are expanded by the caller (expand_tokens); the first file wins.
        assert_eq!(
            c.user_known_hosts_file.as_deref(),
            Some("~/.ssh/fleet_hosts")
        );
        assert_eq!(c.strict_host_key_checking.as_deref(), Some("accept-new"));
        let c = cfg.lookup("other");
        assert_eq!(c.identities_only, Some(false));
        assert_eq!(c.strict_host_key_checking.as_deref(), Some("yes"));
    }

    #[test]
    fn proxy_jump_hops_and_none() {
        let cfg = SshConfig::parse_str(
            "Host direct\n  ProxyJump none\nHost *.internal\n  ProxyJump jump1,admin@jump2:2222\n",
            &home(),
        )
        .unwrap();
        assert_eq!(
            cfg.lookup("a.internal").proxy_jump,
            Some(vec!["jump1".to_string(), "admin@jump2:2222".to_string()])
        );
        assert_eq!(cfg.lookup("direct").proxy_jump, Some(vec![]));
        assert_eq!(cfg.lookup("elsewhere").proxy_jump, None);
    }

    #[test]
    fn include_relative_to_dot_ssh_with_globs() {
        let dir = std::env::temp_dir().join(format!("bsctl-sshcfg-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".ssh/config.d")).unwrap();
        std::fs::write(
            dir.join(".ssh/config.d/10-fleet.conf"),
            "Host node-*\n  User fleet\n  Port 2022\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".ssh/config.d/20-other.conf"),
            "Host node-*\n  User not-first\n  HostName 10.1.1.1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".ssh/config"),
            "Include config.d/*.conf\nHost *\n  User fallback\n",
        )
        .unwrap();
        let cfg = SshConfig::load(&dir.join(".ssh/config"), &dir, true).unwrap();
        let c = cfg.lookup("node-3");
        assert_eq!(c.user.as_deref(), Some("fleet"));
        assert_eq!(c.port, Some(2022));
        assert_eq!(c.host_name.as_deref(), Some("10.1.1.1"));
        assert_eq!(cfg.lookup("x").user.as_deref(), Some("fallback"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn match_blocks_are_ignored_not_misapplied() {
        let cfg = SshConfig::parse_str(
            "Host a\n  Port 2201\nMatch host a exec \"true\"\n  User from-match\n  Port 9\n",
            &home(),
        )
        .unwrap();
        let c = cfg.lookup("a");
        assert_eq!(c.port, Some(2201));
        assert_eq!(c.user, None);
    }

    #[test]
    fn missing_default_file_is_empty_but_explicit_is_an_error() {
        let p = Path::new("/nonexistent/bsctl/config");
        assert!(SshConfig::load(p, &home(), false)
            .unwrap()
            .lookup("x")
            .user
            .is_none());
        assert!(SshConfig::load(p, &home(), true)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/bsctl/config"));
    }

    #[test]
    fn tokens() {
        let t = Tokens {
            host_name: "10.0.0.5".into(),
            original: "node5".into(),
            user: "deploy".into(),
            port: 2222,
            home: home(),
            local_user: "alice".into(),
        };
        assert_eq!(
            expand_tokens("%d/.ssh/keys/%r@%h:%p-%n-%u-100%%", &t),
            "/home/alice/.ssh/keys/deploy@10.0.0.5:2222-node5-alice-100%"
        );
        assert_eq!(expand_tokens("~/.ssh/id", &t), "/home/alice/.ssh/id");
    }

    #[test]
    fn jump_specs() {
        assert_eq!(
            parse_jump_spec("admin@bastion:2222").unwrap(),
            JumpSpec {
                user: Some("admin".into()),
                host: "bastion".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            parse_jump_spec("bastion").unwrap(),
            JumpSpec {
                user: None,
                host: "bastion".into(),
                port: None
            }
        );
        assert_eq!(
            parse_jump_spec("ssh://u@[fd00::1]:22").unwrap(),
            JumpSpec {
                user: Some("u".into()),
                host: "fd00::1".into(),
                port: Some(22)
            }
        );
        assert!(parse_jump_spec("host:notaport").is_err());
        assert!(parse_jump_spec("@host").is_err());
    }
}
