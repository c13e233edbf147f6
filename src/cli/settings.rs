//! Resolves clap args + environment + files into the settings a run uses, validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::RunArgs;
use crate::engine::conn::ConnectSpec;
use crate::engine::RunOptions;
use crate::error::Error;
use crate::inventory::{Host, Inventory};
use crate::transport::ssh::SshTarget;

pub struct RunSettings {
    pub inventory_path: PathBuf,
    pub playbook: PlaybookSource,
    pub limit: Option<String>,
    pub opts: RunOptions,
    pub extra_vars: Vec<String>,
    pub known_hosts: PathBuf,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    pub default_user: String,
    pub private_key: Option<PathBuf>,
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
    pub fn from_args(a: RunArgs, force_preview: bool) -> Result<Self, Error> {
        let json_report = match a.output.as_slice() {
            [] => None,
            [fmt, file] if fmt == "json" => Some(PathBuf::from(file)),
            [fmt, _] => {
                return Err(Error::Usage(format!(
                    "--output: unknown format {fmt:?} (supported: json)"
                )))
            }
            _ => return Err(Error::Usage("--output takes FORMAT FILE".into())),
        };
        if a.forks == 0 {
            return Err(Error::Usage("--forks must be at least 1".into()));
        }
        Ok(RunSettings {
            inventory_path: a.inventory,
            playbook: match a.playbook {
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
            detailed_exitcode: a.detailed_exitcode,
            json_report,
            verbose: a.verbose,
        })
    }

    /// How to reach `host`: inventory `ansible_*` vars first, then the command line.
    pub fn connect_spec(&self, host: &Host) -> Result<ConnectSpec, Error> {
        let cfg = |e: crate::inventory::InventoryError| Error::Config(e.to_string());
        if host.connection().map_err(cfg)? == "local" {
            return Ok(ConnectSpec::Local);
        }
        let mut known_hosts = self.known_hosts.clone();
        if let Some(args) = host
            .vars
            .get("ansible_ssh_common_args")
            .and_then(|v| v.as_str())
        {
            if let Some(file) = ssh_option(args, "UserKnownHostsFile") {
                known_hosts = expand_home(&file);
            }
        }
        Ok(ConnectSpec::Ssh(SshTarget {
            host: host.name.clone(),
            address: host.address().map_err(cfg)?,
            port: host.port().map_err(cfg)?.unwrap_or(22),
            user: host
                .user()
                .map_err(cfg)?
                .unwrap_or_else(|| self.default_user.clone()),
            identity_file: host
                .private_key_file()
                .map_err(cfg)?
                .or_else(|| self.private_key.clone()),
            known_hosts,
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: self.connect_timeout,
        }))
    }

    pub fn load_inventory(&self) -> Result<Inventory, Error> {
        Inventory::load(&self.inventory_path).map_err(|e| Error::Config(e.to_string()))
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

pub fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => Path::new(p).to_path_buf(),
    }
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
}
