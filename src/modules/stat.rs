//! `stat`: what is at a path (registered as `stat`: `exists, isdir, isreg, mode, pw_name,
//! gr_name, size`), read with the host's other reads; never changes anything.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{FileKind, HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(alias = "dest", alias = "name")]
    pub path: Tpl<String>,
    /// Accepted: bootstrapctl reads what it reads for every file (the checksum is not given).
    #[serde(default, rename = "get_checksum")]
    pub _get_checksum: Option<Tpl<bool>>,
    #[serde(default, rename = "follow")]
    pub _follow: Option<Tpl<bool>>,
}

#[derive(Debug)]
pub struct Stat {
    path: String,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Stat, ModuleError> {
        Ok(Stat {
            path: super::template::absolute(
                self.path.resolve(cx.templates, cx.vars, cx.what)?,
                "path",
            )?,
        })
    }
}

impl Module for Stat {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.path.clone())]
    }
    fn plan(&self, _view: &HostView) -> Result<Planned, ModuleError> {
        Ok(Planned::NoChange {
            reason: format!("read {}", self.path),
        })
    }
    fn output(&self, view: &HostView) -> Vec<(String, minijinja::Value)> {
        let mut s: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        let f = view.file(&self.path).filter(|f| f.exists());
        s.insert("exists".into(), f.is_some().into());
        if let Some(f) = f {
            s.insert("path".into(), self.path.clone().into());
            s.insert("isdir".into(), (f.kind == FileKind::Directory).into());
            s.insert("isreg".into(), (f.kind == FileKind::File).into());
            s.insert("mode".into(), format!("{:04o}", f.mode).into());
            s.insert("pw_name".into(), f.owner.clone().into());
            s.insert("gr_name".into(), f.group.clone().into());
            if let Some(c) = &f.content {
                s.insert("size".into(), c.len().into());
            }
        }
        vec![("stat".into(), minijinja::Value::from(s))]
    }
    fn changes_host(&self) -> bool {
        false
    }
}
