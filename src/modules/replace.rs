//! `replace`: every match of `regexp` in a file replaced (Python's `\1` backreferences), and
//! `blockinfile`: a marked block of lines present, updated in place, or absent. Both plan
//! the write as `file_common` does.

use serde::Deserialize;

use super::file_common::{ManagedFile, Mode};
use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(alias = "dest", alias = "name")]
    pub path: Tpl<String>,
    pub regexp: Tpl<String>,
    pub replace: Option<Tpl<String>>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockArgs {
    #[serde(alias = "dest", alias = "name")]
    pub path: Tpl<String>,
    #[serde(default, alias = "content")]
    pub block: Option<Tpl<String>>,
    pub marker: Option<Tpl<String>>,
    pub marker_begin: Option<Tpl<String>>,
    pub marker_end: Option<Tpl<String>>,
    pub state: Option<Tpl<State>>,
    pub create: Option<Tpl<bool>>,
    pub insertafter: Option<Tpl<String>>,
    pub insertbefore: Option<Tpl<String>>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
}

/// A file edit: what its new text is, from the old one (`None`: the file does not exist).
#[derive(Debug)]
pub struct Edit {
    path: String,
    kind: Kind,
    create: bool,
    mode: Option<Mode>,
    owner: Option<String>,
    group: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Replace(regex::Regex, String),
    Block {
        begin: String,
        end: String,
        lines: Option<String>,
        after: Option<String>,
        before: Option<String>,
    },
}

fn regex(s: &str) -> Result<regex::Regex, ModuleError> {
    regex::RegexBuilder::new(s)
        .multi_line(true)
        .build()
        .map_err(|e| ModuleError::Invalid(format!("regexp: {e}")))
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Edit, ModuleError> {
        let rep = opt(&self.replace, cx)?.unwrap_or_default();
        let rep = regex::Regex::new(r"\\(\d+)")
            .expect("static regex")
            .replace_all(&rep, "$${$1}")
            .into_owned();
        Ok(Edit {
            path: absolute(self.path.resolve(cx.templates, cx.vars, cx.what)?, "path")?,
            kind: Kind::Replace(
                regex(&self.regexp.resolve(cx.templates, cx.vars, cx.what)?)?,
                rep,
            ),
            create: false,
            mode: opt(&self.mode, cx)?,
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}

impl BlockArgs {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Edit, ModuleError> {
        let marker =
            opt(&self.marker, cx)?.unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
        let begin = marker.replace(
            "{mark}",
            &opt(&self.marker_begin, cx)?.unwrap_or_else(|| "BEGIN".into()),
        );
        let end = marker.replace(
            "{mark}",
            &opt(&self.marker_end, cx)?.unwrap_or_else(|| "END".into()),
        );
        let state = opt(&self.state, cx)?.unwrap_or(State::Present);
        let block = opt(&self.block, cx)?.unwrap_or_default();
        Ok(Edit {
            path: absolute(self.path.resolve(cx.templates, cx.vars, cx.what)?, "path")?,
            kind: Kind::Block {
                begin,
                end,
                // An empty block is the same as state: absent, as in Ansible.
                lines: (state == State::Present && !block.is_empty()).then_some(block),
                after: opt(&self.insertafter, cx)?,
                before: opt(&self.insertbefore, cx)?,
            },
            create: opt(&self.create, cx)?.unwrap_or(false),
            mode: opt(&self.mode, cx)?,
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}

impl Edit {
    fn edit(&self, old: Option<&str>) -> Result<Option<String>, ModuleError> {
        match &self.kind {
            Kind::Replace(re, rep) => Ok(old.map(|t| re.replace_all(t, rep.as_str()).into_owned())),
            Kind::Block {
                begin,
                end,
                lines,
                after,
                before,
            } => {
                let Some(text) = old.or(if self.create && lines.is_some() {
                    Some("")
                } else {
                    None
                }) else {
                    return Ok(None);
                };
                let mut ls: Vec<String> = text.lines().map(str::to_string).collect();
                let b = ls.iter().position(|l| l == begin);
                let e = ls.iter().position(|l| l == end);
                let mut block: Vec<String> = Vec::new();
                if let Some(body) = lines {
                    block.push(begin.clone());
                    block.extend(body.lines().map(str::to_string));
                    block.push(end.clone());
                }
                match (b, e) {
                    (Some(b), Some(e)) if b <= e => {
                        ls.splice(b..=e, block);
                    }
                    _ if block.is_empty() => {}
                    _ => {
                        let at = match (after.as_deref(), before.as_deref()) {
                            (Some("EOF") | None, None) => ls.len(),
                            (_, Some("BOF")) => 0,
                            (Some(a), None) => {
                                let re = regex(a)?;
                                ls.iter()
                                    .rposition(|l| re.is_match(l))
                                    .map(|i| i + 1)
                                    .unwrap_or(ls.len())
                            }
                            (_, Some(bf)) => {
                                let re = regex(bf)?;
                                ls.iter().position(|l| re.is_match(l)).unwrap_or(ls.len())
                            }
                        };
                        ls.splice(at..at, block);
                    }
                }
                let mut out = ls.join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                Ok(Some(out))
            }
        }
    }
}

impl Module for Edit {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.path.clone())]
    }
    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let file = view.file(&self.path).filter(|f| f.exists());
        let old = file
            .and_then(|f| f.content.as_ref())
            .map(|c| String::from_utf8_lossy(c).into_owned());
        if file.is_some() && old.is_none() {
            return Err(ModuleError::Host {
                path: self.path.clone(),
                message: "not a regular file".into(),
            });
        }
        let Some(new) = self.edit(old.as_deref())? else {
            if matches!(self.kind, Kind::Replace(..)) {
                return Err(ModuleError::Host {
                    path: self.path.clone(),
                    message: "does not exist".into(),
                });
            }
            return Ok(Planned::NoChange {
                reason: format!("{} does not exist", self.path),
            });
        };
        ManagedFile {
            dest: self.path.clone(),
            content: new.into_bytes(),
            mode: self.mode,
            owner: self.owner.clone(),
            group: self.group.clone(),
            force: true,
        }
        .plan(view)
    }
}
