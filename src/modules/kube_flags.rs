//! `kube_flags`: ensure or remove `--flag=value` options of a Kubernetes component, in a
//! systemd unit's ExecStart or a static pod manifest's container command; all else kept.
//! List flags can be given as members to ensure (`members:`), keeping the ones already there.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::flags::manifest::edit_manifest_flags;
use crate::flags::unit::edit_unit_flags;
use crate::flags::{validate_members, FlagEdit};
use crate::hoststate::{HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Unit,
    Manifest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub path: Tpl<String>,
    /// `--name: value` to set; `--name: null` to remove.
    #[serde(default)]
    pub flags: BTreeMap<String, Option<Tpl<String>>>,
    /// Flags to remove.
    #[serde(default)]
    pub absent: Vec<String>,
    /// `--name: [member, ...]`: members a comma-list flag must have, the others kept.
    /// A key of its own rather than a second shape of a `flags:` value, so each key has one
    /// type (a wrong one is reported at its line) and a whole-value set and a member merge of
    /// the same flag cannot be asked for by accident in one spelling.
    #[serde(default)]
    pub members: BTreeMap<String, Vec<Tpl<String>>>,
    pub format: Option<Format>,
    pub container: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct KubeFlags {
    path: String,
    edits: Vec<FlagEdit>,
    format: Format,
    container: Option<String>,
}

fn flag_name(name: &str) -> Result<String, ModuleError> {
    let bare = name.trim_start_matches('-');
    if bare.is_empty()
        || !bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ModuleError::Invalid(format!(
            "flags: {name:?} is not a flag name"
        )));
    }
    Ok(format!("--{bare}"))
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<KubeFlags, ModuleError> {
        let path = absolute(self.path.resolve(cx.templates, cx.vars, cx.what)?, "path")?;
        let mut edits = Vec::new();
        for (name, value) in &self.flags {
            let name = flag_name(name)?;
            edits.push(match value {
                Some(v) => FlagEdit::Set {
                    value: v.resolve(cx.templates, cx.vars, cx.what)?,
                    name,
                },
                None => FlagEdit::Remove { name },
            });
        }
        for name in &self.absent {
            edits.push(FlagEdit::Remove {
                name: flag_name(name)?,
            });
        }
        let mut seen: Vec<String> = edits.iter().map(|e| e.name().to_string()).collect();
        for (name, members) in &self.members {
            let name = flag_name(name)?;
            if seen.contains(&name) {
                return Err(ModuleError::Invalid(format!(
                    "members: {name} is also in flags or absent; give each flag in one place"
                )));
            }
            let members = members
                .iter()
                .map(|m| m.resolve(cx.templates, cx.vars, cx.what))
                .collect::<Result<Vec<_>, _>>()?;
            validate_members(&name, &members).map_err(|e| ModuleError::Invalid(e.to_string()))?;
            seen.push(name.clone());
            edits.push(FlagEdit::Members { name, members });
        }
        let format = self
            .format
            .unwrap_or(if path.ends_with(".yaml") || path.ends_with(".yml") {
                Format::Manifest
            } else {
                Format::Unit
            });
        Ok(KubeFlags {
            path,
            edits,
            format,
            container: opt(&self.container, cx)?,
        })
    }
}

impl Module for KubeFlags {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.path.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let host_err = |message: String| ModuleError::Host {
            path: self.path.clone(),
            message,
        };
        let file = view
            .file(&self.path)
            .filter(|f| f.exists())
            .ok_or_else(|| {
                host_err("not found: kube_flags edits an existing unit or manifest".into())
            })?;
        let before = String::from_utf8(file.content.clone().unwrap_or_default())
            .map_err(|_| host_err("is not UTF-8 text".into()))?;
        let after = match self.format {
            Format::Unit => edit_unit_flags(&before, &self.edits),
            Format::Manifest => {
                edit_manifest_flags(&before, self.container.as_deref(), &self.edits)
            }
        }
        .map_err(|e| host_err(e.to_string()))?;
        if after == before {
            return Ok(Planned::NoChange {
                reason: format!("{} already has the wanted flags", self.path),
            });
        }
        Ok(Planned::Change {
            ops: vec![Op::WriteFile {
                path: self.path.clone(),
                content: after.clone().into_bytes(),
                mode: file.mode,
                owner: Some(file.owner.clone()),
                group: Some(file.group.clone()),
            }],
            diffs: vec![DiffItem {
                subject: self.path.clone(),
                before,
                after,
                secret: false,
            }],
        })
    }
}
