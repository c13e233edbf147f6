//! Resolves clap args + environment + files into the settings a run uses, validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::RunArgs;
use crate::engine::conn::ConnectSpec;
use crate::engine::RunOptions;
use crate::error::SettingsError;
use crate::inventory::{Host, Inventory};
use crate::transport::ssh::{HostKeyPolicy, SshTarget};
use crate::transport::ssh_config::{self, expand_tokens, HostConfig, SshConfig, Tokens};
use crate::transport::BecomePassword;

/// Environment variable holding the sudo password for `become` (when not prompted for).
pub const BECOME_PASSWORD_ENV: &str = "BOOTSTRAPCTL_BECOME_PASSWORD";

pub struct RunSettings {
    /// Inventory sources in the order given (`-i` repeated), as Ansible merges them.
    pub inventory_sources: Vec<PathBuf>,
    pub vault_password_files: Vec<PathBuf>,
    pub ask_vault_pass: bool,
    pub playbook: PlaybookSource,
    pub limit: Option<String>,
    pub opts: RunOptions,
    pub extra_vars: Vec<String>,
    pub known_hosts: PathBuf,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    pub default_user: String,
    pub private_key: Option<PathBuf>,
    pub ssh_config: SshConfig,
    pub connect_retries: u32,
    /// From `--ask-become-pass` or $BOOTSTRAPCTL_BECOME_PASSWORD.
    pub become_password: Option<BecomePassword>,
    pub detailed_exitcode: bool,
    pub json_report: Option<PathBuf>,
    pub verbose: u8,
}

pub enum PlaybookSource {
    File(PathBuf),
    /// A playbook shipped in the binary, by name.
    Embedded(&'static str),
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

impl RunSettings {
    pub fn from_args(
        a: RunArgs,
        playbook: Option<PathBuf>,
        force_preview: bool,
    ) -> Result<Self, SettingsError> {
        let json_report = match a.output.as_slice() {
            [] => None,
            [fmt, file] if fmt == "json" => Some(PathBuf::from(file)),
            [fmt, _] => return Err(SettingsError::OutputFormat(fmt.clone())),
            _ => return Err(SettingsError::OutputArgs),
        };
        if a.forks == 0 {
            return Err(SettingsError::Forks);
        }
        let ssh_config = match &a.ssh_config {
            Some(p) if p.as_os_str() == "none" => SshConfig::empty(),
            Some(p) => SshConfig::load(p, &home(), true)?,
            None => SshConfig::load(&home().join(".ssh").join("config"), &home(), false)?,
        };
        let become_password = if a.ask_become_pass {
            let pw = rpassword::prompt_password("BECOME password: ")
                .map_err(SettingsError::BecomePrompt)?;
            Some(BecomePassword::new(pw))
        } else {
            std::env::var(BECOME_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .map(BecomePassword::new)
        };
        Ok(RunSettings {
            inventory_sources: a.inventory,
            vault_password_files: a.vault_password_file,
            ask_vault_pass: a.ask_vault_pass,
            playbook: match playbook {
                Some(p) => PlaybookSource::File(p),
                None => PlaybookSource::Embedded("site.yaml"),
            },
            limit: a.limit,
            opts: RunOptions {
                check: a.check || force_preview,
                diff: a.diff || force_preview,
                forks: a.forks,
                tags: a.tags,
                skip_tags: a.skip_tags,
                command_timeout: Duration::from_secs(a.timeout.max(1)),
                verbose: a.verbose,
                upload_forks: a.upload_forks.max(1),
                start_at_task: None,
            },
            extra_vars: a.extra_vars,
            known_hosts: a
                .known_hosts
                .unwrap_or_else(|| home().join(".ssh").join("known_hosts")),
            accept_new_host_keys: a.accept_new_host_keys,
            connect_timeout: Duration::from_secs(a.connect_timeout.max(1)),
            default_user: a
                .user
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "root".into()),
            private_key: a.private_key,
            ssh_config,
            connect_retries: a.connect_retries,
            become_password,
            detailed_exitcode: a.detailed_exitcode,
            json_report,
            verbose: a.verbose,
        })
    }

    /// How to reach `host`. Precedence, per setting: inventory (`ansible_*`, `bastion`,
    /// `ansible_ssh_common_args`) > ssh_config > command line > built-in defaults. The name
    /// looked up in ssh_config is `ansible_host` when set, else the inventory name (what
    /// Ansible passes to `ssh`).
    pub fn connect_spec(
        &self,
        inventory: &Inventory,
        host: &Host,
    ) -> Result<ConnectSpec, SettingsError> {
        let become_password = self.become_password_for(host)?;
        if host.connection()? == "local" {
            return Ok(ConnectSpec::Local { become_password });
        }
        let mut target = self.host_target(host)?;
        target.become_password = become_password;
        target.jump = self.jump_chain(inventory, host, &target, 0)?;
        Ok(ConnectSpec::Ssh(Box::new(target)))
    }

    /// The inventory's `ansible_become_password` (plain text only), else the run's.
    fn become_password_for(&self, host: &Host) -> Result<Option<BecomePassword>, SettingsError> {
        for name in ["ansible_become_password", "ansible_become_pass"] {
            if let Some(v) = host.vars.get(name) {
                return match v.as_str() {
                    Some(t) if crate::template::is_template(t) => {
                        Err(SettingsError::TemplatedBecomePassword {
                            host: host.name.clone(),
                            var: name.into(),
                        })
                    }
                    Some(t) => Ok(Some(BecomePassword::new(t))),
                    None => Err(SettingsError::BecomePasswordType {
                        host: host.name.clone(),
                        var: name.into(),
                    }),
                };
            }
        }
        Ok(self.become_password.clone())
    }

    /// Everything but the jump chain and the become password, for an inventory host.
    fn host_target(&self, host: &Host) -> Result<SshTarget, SettingsError> {
        let explicit_address = ["ansible_ssh_host", "ansible_host"]
            .iter()
            .any(|k| host.vars.get(*k).is_some_and(|v| !v.is_null()));
        let alias = host.address()?;
        let common = host
            .vars
            .get("ansible_ssh_common_args")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let c = self.ssh_config.lookup(&alias);
        let address = if explicit_address {
            alias.clone()
        } else {
            c.host_name
                .as_deref()
                .map(|h| h.replace("%h", &alias).replace("%%", "%"))
                .unwrap_or_else(|| alias.clone())
        };
        let mut t = self.resolve(
            host.name.clone(),
            &alias,
            address,
            host.port()?,
            host.user()?,
            host.private_key_file()?,
            &c,
            &common,
        )?;
        t.host = host.name.clone();
        Ok(t)
    }

    /// Merge inventory values (`Some` wins), ssh_config `c`, `-o` options in `common` (ssh
    /// args from the inventory) and the command line into a target without jump hosts.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &self,
        name: String,
        alias: &str,
        address: String,
        inv_port: Option<u16>,
        inv_user: Option<String>,
        inv_key: Option<PathBuf>,
        c: &HostConfig,
        common: &str,
    ) -> Result<SshTarget, SettingsError> {
        let port = inv_port.or(c.port).unwrap_or(22);
        let user = inv_user
            .or_else(|| c.user.clone())
            .unwrap_or_else(|| self.default_user.clone());
        let tokens = Tokens {
            host_name: address.clone(),
            original: alias.to_string(),
            user: user.clone(),
            port,
            home: home(),
            local_user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        };
        let identity_files: Vec<PathBuf> = if let Some(k) = inv_key {
            vec![k]
        } else if !c.identity_files.is_empty() {
            c.identity_files
                .iter()
                .map(|f| PathBuf::from(expand_tokens(f, &tokens)))
                .collect()
        } else {
            self.private_key.iter().cloned().collect()
        };
        let identities_only = ssh_option(common, "IdentitiesOnly")
            .map(|v| v.eq_ignore_ascii_case("yes"))
            .or(c.identities_only)
            .unwrap_or(false);
        let known_hosts = match ssh_option(common, "UserKnownHostsFile")
            .or_else(|| c.user_known_hosts_file.clone())
        {
            Some(f) => PathBuf::from(expand_tokens(&f, &tokens)),
            None => self.known_hosts.clone(),
        };
        let policy = match ssh_option(common, "StrictHostKeyChecking")
            .map(|v| v.to_ascii_lowercase())
            .or_else(|| c.strict_host_key_checking.clone())
            .as_deref()
        {
            Some("yes" | "ask" | "true") => HostKeyPolicy::Strict,
            Some("accept-new") => HostKeyPolicy::AcceptNew,
            Some("no" | "off" | "false") => HostKeyPolicy::No,
            Some(other) => {
                return Err(SettingsError::StrictHostKeyChecking {
                    host: name,
                    value: other.into(),
                })
            }
            None if self.accept_new_host_keys => HostKeyPolicy::AcceptNew,
            None => HostKeyPolicy::Strict,
        };
        let connect_timeout = match ssh_option(common, "ConnectTimeout") {
            Some(v) => Duration::from_secs(v.parse::<u64>().map_err(|source| {
                SettingsError::ConnectTimeout {
                    host: name.clone(),
                    value: v.clone(),
                    source,
                }
            })?),
            None => c.connect_timeout.unwrap_or(self.connect_timeout),
        };
        let connect_retries = c
            .connection_attempts
            .map(|n| n.saturating_sub(1) as u32)
            .unwrap_or(self.connect_retries);
        Ok(SshTarget {
            host: name,
            address,
            port,
            user,
            identity_files,
            identities_only,
            agent_socket: None,
            known_hosts,
            host_key_policy: policy,
            connect_timeout,
            connect_retries,
            retry_backoff: Duration::from_millis(500),
            jump: Vec::new(),
            become_password: None,
        })
    }

    /// The jump hosts in front of `host`: the inventory `bastion` variable, else `-J` /
    /// `-o ProxyJump=` in `ansible_ssh_common_args`, else ssh_config's ProxyJump. A hop that
    /// names an inventory host uses that host's connection settings (and its own jump
    /// hosts, which come first); any other hop is resolved through ssh_config like `ssh -J`.
    fn jump_chain(
        &self,
        inventory: &Inventory,
        host: &Host,
        target: &SshTarget,
        depth: usize,
    ) -> Result<Vec<SshTarget>, SettingsError> {
        if depth > 8 {
            return Err(SettingsError::JumpTooDeep(host.name.clone()));
        }
        let common = host
            .vars
            .get("ansible_ssh_common_args")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let hops: Vec<String> = if let Some(b) = host.vars.get("bastion").filter(|v| !v.is_null()) {
            let b = b
                .as_str()
                .ok_or_else(|| SettingsError::BastionType(host.name.clone()))?;
            split_hops(b)
        } else if let Some(j) = jump_arg(common) {
            split_hops(&j)
        } else {
            let alias = host.address()?;
            self.ssh_config
                .lookup(&alias)
                .proxy_jump
                .unwrap_or_default()
        };
        let mut chain = Vec::new();
        for hop in hops {
            if hop.eq_ignore_ascii_case("none") {
                continue;
            }
            if let Some(h) = inventory.host(&hop).filter(|h| h.name != host.name) {
                let mut t = self.host_target(h)?;
                if t.known_hosts == self.known_hosts {
                    t.known_hosts = target.known_hosts.clone();
                }
                chain.extend(self.jump_chain(inventory, h, &t, depth + 1)?);
                chain.push(t);
                continue;
            }
            let spec =
                ssh_config::parse_jump_spec(&hop).map_err(|source| SettingsError::JumpHost {
                    host: host.name.clone(),
                    hop: hop.clone(),
                    source,
                })?;
            let c = self.ssh_config.lookup(&spec.host);
            let address = c
                .host_name
                .as_deref()
                .map(|h| h.replace("%h", &spec.host).replace("%%", "%"))
                .unwrap_or_else(|| spec.host.clone());
            let mut t = self.resolve(
                hop.clone(),
                &spec.host,
                address,
                spec.port,
                spec.user,
                None,
                &c,
                "",
            )?;
            // A jump host with no known_hosts of its own checks against the target's.
            if c.user_known_hosts_file.is_none() {
                t.known_hosts = target.known_hosts.clone();
            }
            chain.push(t);
        }
        Ok(chain)
    }

    /// The run's secrets that are not inventory variables: the become password.
    pub fn secrets(&self) -> Vec<String> {
        self.become_password
            .iter()
            .map(|p| p.expose().to_string())
            .collect()
    }

    /// The inventory with group_vars/host_vars beside it and beside the playbook file.
    pub fn load_inventory(&self) -> Result<Inventory, crate::error::Error> {
        let playbook_dir = match &self.playbook {
            PlaybookSource::File(p) => p.parent().map(Path::to_path_buf),
            PlaybookSource::Embedded(_) => None,
        };
        let vault =
            crate::vault::Vault::from_sources(&self.vault_password_files, self.ask_vault_pass)?;
        let options = crate::inventory::LoadOptions {
            sources: self.inventory_sources.clone(),
            playbook_dir,
            vault,
        };
        Ok(Inventory::load_with(&options)?)
    }
}

/// The value of `-o NAME=VALUE` (or `-oNAME=VALUE`, `-o NAME VALUE`) in ssh arguments.
pub fn ssh_option(args: &str, name: &str) -> Option<String> {
    let words = shell_words::split(args).ok()?;
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        let opt = if w == "-o" {
            it.next().cloned()
        } else {
            w.strip_prefix("-o").map(str::to_string)
        };
        if let Some(opt) = opt {
            let (k, v) = opt
                .split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .or_else(|| {
                    opt.split_once(' ')
                        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                })?;
            if k.eq_ignore_ascii_case(name) {
                return Some(v);
            }
        }
    }
    None
}

/// The value of `-J HOPS` (or `-JHOPS`) or `-o ProxyJump=HOPS` in ssh arguments.
pub fn jump_arg(args: &str) -> Option<String> {
    let words = shell_words::split(args).ok()?;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "-J" {
            return it.next().cloned();
        }
        if let Some(v) = w.strip_prefix("-J") {
            return Some(v.to_string());
        }
    }
    ssh_option(args, "ProxyJump")
}

fn split_hops(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ssh_options_in_every_spelling() {
        assert_eq!(
            ssh_option(
                "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/x/kh",
                "UserKnownHostsFile"
            )
            .as_deref(),
            Some("/x/kh")
        );
        assert_eq!(
            ssh_option("-oUserKnownHostsFile=/y", "userknownhostsfile").as_deref(),
            Some("/y")
        );
        assert_eq!(ssh_option("-J bastion", "UserKnownHostsFile"), None);
    }

    #[test]
    fn reads_jump_hosts_in_every_spelling() {
        assert_eq!(jump_arg("-J bastion").as_deref(), Some("bastion"));
        assert_eq!(jump_arg("-Ja@b:2,c").as_deref(), Some("a@b:2,c"));
        assert_eq!(
            jump_arg("-o StrictHostKeyChecking=no -o ProxyJump=j1,j2").as_deref(),
            Some("j1,j2")
        );
        assert_eq!(jump_arg("-o UserKnownHostsFile=/x"), None);
        assert_eq!(split_hops(" a , b,,"), vec!["a", "b"]);
    }
}
