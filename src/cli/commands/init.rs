//! `init DIR`: write the shipped playbooks, templates and the example inventory to DIR for
//! customising. A playbook run from DIR then finds its templates in `DIR/templates` before
//! the embedded ones, and imports DIR's own playbooks.

use std::path::{Path, PathBuf};

use crate::content;
use crate::error::{CommandError, Error};

/// Every file `init` writes, relative to DIR, with its content.
fn files() -> Vec<(PathBuf, &'static str)> {
    let mut out: Vec<(PathBuf, &'static str)> = content::PLAYBOOKS
        .iter()
        .map(|(n, t)| (PathBuf::from(n), *t))
        .collect();
    out.extend(
        content::TEMPLATES
            .iter()
            .map(|(n, t)| (Path::new("templates").join(n), *t)),
    );
    out.push((PathBuf::from("inventory.yaml"), content::EXAMPLE_INVENTORY));
    out
}

pub fn run(dir: &Path, force: bool) -> Result<i32, Error> {
    let files = files();
    // All or nothing: a half-written directory would mix the user's edits with new files.
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(rel, _)| dir.join(rel).symlink_metadata().is_ok())
            .map(|(rel, _)| rel.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(CommandError::InitExists {
                dir: dir.to_path_buf(),
                files: existing,
            }
            .into());
        }
    }
    for (rel, text) in &files {
        let path = dir.join(rel);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)
        };
        write().map_err(|source| CommandError::InitWrite {
            path: path.clone(),
            source,
        })?;
        println!("wrote {}", path.display());
    }
    println!(
        "\nEdit them, then: bootstrapctl apply -i {} {}",
        dir.join("inventory.yaml").display(),
        dir.join("site.yaml").display()
    );
    Ok(0)
}
