//! `template`: render a minijinja template file to a path on the host.

use serde::Deserialize;

use super::file_common::{ManagedFile, Mode};
use super::{ModuleError, ResolveCx};
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub src: Tpl<String>,
    pub dest: Tpl<String>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
}

pub(crate) fn opt<T: serde::de::DeserializeOwned + Clone>(
    v: &Option<Tpl<T>>,
    cx: &ResolveCx<'_>,
) -> Result<Option<T>, ModuleError> {
    v.as_ref()
        .map(|t| t.resolve(cx.templates, cx.vars, cx.what))
        .transpose()
        .map_err(Into::into)
}

pub(crate) fn absolute(path: String, arg: &str) -> Result<String, ModuleError> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(ModuleError::Invalid(format!(
            "{arg}: {path:?} is not an absolute path"
        )))
    }
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<ManagedFile, ModuleError> {
        let src = self.src.resolve(cx.templates, cx.vars, cx.what)?;
        // A role's own templates/ first (base_dir is the role's directory for its tasks).
        let own = [
            cx.base_dir.join("templates").join(&src),
            cx.base_dir.join(&src),
        ];
        let content = match own.iter().find(|p| p.is_file()) {
            Some(p) => cx.templates.render_path(p, &src, cx.vars)?,
            None => cx.templates.render_file(&src, cx.vars)?,
        };
        Ok(ManagedFile {
            force: true,
            dest: absolute(self.dest.resolve(cx.templates, cx.vars, cx.what)?, "dest")?,
            content: content.into_bytes(),
            mode: opt(&self.mode, cx)?,
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}
