//! `copy`: put given content, or a local file, at a path on the host.

use serde::Deserialize;

use super::file_common::{ManagedFile, Mode};
use super::template::{absolute, opt};
use super::{ModuleError, ResolveCx};
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub content: Option<Tpl<String>>,
    pub src: Option<Tpl<String>>,
    pub dest: Tpl<String>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
    /// `false`: only create `dest` when it does not exist (Ansible's `force: no`).
    pub force: Option<Tpl<bool>>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<ManagedFile, ModuleError> {
        let content = match (&self.content, &self.src) {
            (Some(c), None) => c.resolve(cx.templates, cx.vars, cx.what)?.into_bytes(),
            (None, Some(src)) => {
                let src = src.resolve(cx.templates, cx.vars, cx.what)?;
                let candidates = [cx.base_dir.join("files").join(&src), cx.base_dir.join(&src)];
                let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                    ModuleError::Invalid(format!(
                        "src: local file {src:?} not found in {} or its files/ directory",
                        cx.base_dir.display()
                    ))
                })?;
                std::fs::read(path).map_err(|e| {
                    ModuleError::Invalid(format!("src: reading {}: {e}", path.display()))
                })?
            }
            _ => {
                return Err(ModuleError::Invalid(
                    "copy needs exactly one of `content` and `src`".into(),
                ))
            }
        };
        Ok(ManagedFile {
            force: opt(&self.force, cx)?.unwrap_or(true),
            dest: absolute(self.dest.resolve(cx.templates, cx.vars, cx.what)?, "dest")?,
            content,
            mode: opt(&self.mode, cx)?,
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}
