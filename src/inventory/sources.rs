//! Inventory sources as Ansible's inventory manager takes them: each `-i` is a file or a
//! directory (its entries in sorted order, recursively, skipping what Ansible skips), and each
//! file is tried as YAML, then INI; when neither reads it, one error says why for each.

use std::path::{Path, PathBuf};

use super::error::InventoryError;
use super::files::Files;
use super::raw::Raw;
use super::{ini, yaml};

/// Ansible's `inventory_ignore_extensions` default (`REJECT_EXTS` + `.orig .ini .cfg .retry`):
/// in a directory source, even `.ini` files are skipped.
const IGNORED_EXTENSIONS: [&str; 13] = [
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini", ".cfg",
    ".retry",
];
/// Extensions the YAML plugin accepts (a file without extension is tried too).
const YAML_EXTENSIONS: [&str; 3] = [".yaml", ".yml", ".json"];

/// Whether Ansible skips this directory entry (hidden, `group_vars`, `host_vars`,
/// `vars_plugins`, or an ignored extension).
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || IGNORED_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Reads one `-i` source (file or directory) into `raw`.
pub(crate) fn read_source(
    path: &Path,
    raw: &mut Raw,
    files: &mut Files,
) -> Result<(), InventoryError> {
    if path.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map_err(|source| InventoryError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names.iter().filter(|n| !ignored(n)) {
            read_source(&path.join(name), raw, files)?;
        }
        return Ok(());
    }
    let (text, _) = files.read_text(path)?;
    read_text(&text, path, raw, files)
}

/// Reads inventory text: YAML when it is a YAML mapping of groups, else INI.
pub(crate) fn read_text(
    text: &str,
    path: &Path,
    raw: &mut Raw,
    files: &mut Files,
) -> Result<(), InventoryError> {
    let ext = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rfind('.').filter(|&i| i > 0).map(|i| n[i..].to_string()));
    let yaml_reason = match &ext {
        Some(ext) if !YAML_EXTENSIONS.contains(&ext.as_str()) => {
            format!("not tried for a {ext} file")
        }
        _ => {
            // A failed attempt must leave what earlier sources added untouched.
            let mut attempt = raw.clone();
            match yaml::read(text, path, &mut attempt) {
                Ok(()) => {
                    *raw = attempt;
                    return devault_all(raw, path, files);
                }
                Err(yaml::Outcome::Failed(e)) => return Err(e),
                Err(yaml::Outcome::NotYaml(reason)) => reason,
            }
        }
    };
    let mut attempt = raw.clone();
    match ini::read(text, path, &mut attempt) {
        Ok(()) => {
            *raw = attempt;
            Ok(())
        }
        Err(ini_error) => Err(InventoryError::Format {
            file: path.to_path_buf(),
            yaml: yaml_reason,
            ini: ini_error.to_string(),
        }),
    }
}

/// Decrypts inline vault values in the variables just read from `path`.
fn devault_all(raw: &mut Raw, path: &Path, files: &mut Files) -> Result<(), InventoryError> {
    for group in &mut raw.groups {
        for (_, v) in group.vars.iter_mut() {
            files.devault(v, path)?;
        }
    }
    for host in &mut raw.hosts {
        for (_, v) in host.vars.iter_mut() {
            files.devault(v, path)?;
        }
    }
    Ok(())
}

/// The directory whose `group_vars/`/`host_vars/` belong to a source: the source itself when
/// it is a directory, else the directory holding it.
pub(crate) fn basedir(source: &Path) -> PathBuf {
    if source.is_dir() {
        source.to_path_buf()
    } else {
        match source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::new(),
        }
    }
}
