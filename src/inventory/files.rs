//! Reading inventory files as Ansible's loader does: vaulted files decrypted, inline `!vault`
//! values decrypted (their plaintext kept as secrets), and `group_vars/`/`host_vars/` found
//! with Ansible's file forms (`NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json`, or a directory
//! `NAME/` whose files merge in lexical order).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::vault::{self, Vault};
use crate::yaml11;

use super::error::{InventoryError, Place};

/// The extensions Ansible reads vars files with (`YAML_FILENAME_EXTENSIONS`).
const VARS_EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

/// The state of one load: the vault, the secrets found, and the vars files already read.
pub(crate) struct Files {
    pub(crate) vault: Vault,
    /// Plaintext of every decrypted value (inline vaults, and string values of vaulted files).
    pub(crate) secrets: Vec<String>,
    /// Inline vault plaintext → its ciphertext, so listings can show what Ansible shows.
    pub(crate) inline: HashMap<String, String>,
    /// `!unsafe` strings, which listings show marked as Ansible does.
    pub(crate) unsafe_strings: std::collections::HashSet<String>,
    cache: HashMap<PathBuf, Mapping>,
}

impl Files {
    pub(crate) fn new(vault: Vault) -> Files {
        Files {
            vault,
            secrets: Vec::new(),
            inline: HashMap::new(),
            unsafe_strings: Default::default(),
            cache: HashMap::new(),
        }
    }

    /// The text of a file, decrypted when it is vaulted; the flag says whether it was.
    pub(crate) fn read_text(&mut self, path: &Path) -> Result<(String, bool), InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !vault::is_encrypted(&text) {
            return Ok((text, false));
        }
        let plain = self
            .vault
            .decrypt_text(&text)
            .map_err(|source| InventoryError::Vault {
                file: path.to_path_buf(),
                source,
            })?;
        Ok((plain, true))
    }

    /// Replaces inline `!vault` values by their plaintext (kept as secrets) and `!unsafe`
    /// strings by the string (remembered). Without any vault
    /// password the values stay encrypted, as Ansible leaves them until they are used.
    pub(crate) fn devault(&mut self, value: &mut Value, file: &Path) -> Result<(), InventoryError> {
        match value {
            Value::Tagged(tagged) if tagged.tag == yaml11::VAULT_TAG => {
                let Some(ciphertext) = tagged.value.as_str().map(str::to_string) else {
                    return Ok(());
                };
                if self.vault.is_empty() {
                    return Ok(());
                }
                let plain = self.vault.decrypt_text(&ciphertext).map_err(|source| {
                    InventoryError::Vault {
                        file: file.to_path_buf(),
                        source,
                    }
                })?;
                self.secrets.push(plain.clone());
                self.inline.insert(plain.clone(), ciphertext);
                *value = Value::String(plain);
            }
            Value::Tagged(tagged) if tagged.tag == yaml11::UNSAFE_TAG => {
                if let Some(text) = tagged.value.as_str().map(str::to_string) {
                    self.unsafe_strings.insert(text.clone());
                    *value = Value::String(text);
                }
            }
            Value::Sequence(items) => {
                for item in items {
                    self.devault(item, file)?;
                }
            }
            Value::Mapping(map) => {
                for (_, v) in map.iter_mut() {
                    self.devault(v, file)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The merged variables of `dir/NAME*` (a group_vars or host_vars entity), empty when
    /// there is none; each file is read once per load.
    pub(crate) fn entity_vars(
        &mut self,
        dir: &Path,
        name: &str,
    ) -> Result<Mapping, InventoryError> {
        let mut vars = Mapping::new();
        if name.starts_with('/') || !dir.is_dir() {
            return Ok(vars);
        }
        for file in find_vars_files(dir, name) {
            let data = match self.cache.get(&file) {
                Some(data) => data.clone(),
                None => {
                    let data = self.vars_file(&file)?;
                    self.cache.insert(file.clone(), data.clone());
                    data
                }
            };
            for (k, v) in data {
                vars.insert(k, v);
            }
        }
        Ok(vars)
    }

    /// One vars file: a YAML (1.1) mapping, maybe vaulted; empty files are ignored.
    pub(crate) fn vars_file(&mut self, file: &Path) -> Result<Mapping, InventoryError> {
        let (text, vaulted) = self.read_text(file)?;
        let node = yaml11::parse(&text).map_err(|e| InventoryError::Syntax {
            place: Place {
                file: file.to_path_buf(),
                position: Some((e.line, e.column)),
            },
            message: e.message,
        })?;
        let mut value = node.as_ref().map_or(Value::Null, yaml11::to_value);
        self.devault(&mut value, file)?;
        match value {
            Value::Null => Ok(Mapping::new()),
            Value::Mapping(map) => {
                if vaulted {
                    collect_strings(&Value::Mapping(map.clone()), &mut self.secrets);
                }
                Ok(map)
            }
            other => Err(InventoryError::Invalid {
                place: Place {
                    file: file.to_path_buf(),
                    position: node.map(|n| (n.line, n.column)),
                },
                message: format!(
                    "a vars file must be a mapping of variable names, found {}",
                    super::connection::describe(&other)
                ),
            }),
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Mapping(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Ansible's `find_vars_files`: the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json`
/// that exists; a directory gives its files (recursively, sorted, hidden and `~` files
/// skipped, only files without extension or with a vars extension).
fn find_vars_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    for ext in std::iter::once("").chain(VARS_EXTENSIONS) {
        let path = dir.join(format!("{name}{ext}"));
        if path.is_dir() {
            return dir_vars_files(&path);
        }
        if path.exists() {
            return vec![path];
        }
    }
    Vec::new()
}

fn dir_vars_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut found = Vec::new();
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = Path::new(&name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()));
        if path.is_dir() && ext.is_none() {
            found.extend(dir_vars_files(&path));
        } else if path.is_file() && ext.as_deref().is_none_or(|e| VARS_EXTENSIONS.contains(&e)) {
            found.push(path);
        }
    }
    found
}
