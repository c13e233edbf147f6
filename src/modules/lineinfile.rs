//! `lineinfile`: one line present (replacing the last line `regexp` matches, or inserted
//! after/before a matching line or at the end) or absent, as Ansible's module edits it; the
//! write itself is the file plan of `file_common`.

use serde::Deserialize;

use super::file_common::{ManagedFile, Mode};
use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(alias = "dest", alias = "name")]
    pub path: Tpl<String>,
    #[serde(alias = "regex")]
    pub regexp: Option<Tpl<String>>,
    pub line: Option<Tpl<String>>,
    pub state: Option<Tpl<State>>,
    pub create: Option<Tpl<bool>>,
    pub insertafter: Option<Tpl<String>>,
    pub insertbefore: Option<Tpl<String>>,
    pub mode: Option<Tpl<Mode>>,
    pub owner: Option<Tpl<String>>,
    pub group: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct LineInFile {
    path: String,
    regexp: Option<regex::Regex>,
    line: Option<String>,
    state: State,
    create: bool,
    after: Option<Anchor>,
    before: Option<Anchor>,
    mode: Option<Mode>,
    owner: Option<String>,
    group: Option<String>,
}

#[derive(Debug)]
enum Anchor {
    /// `insertafter: EOF` / `insertbefore: BOF`.
    End,
    Match(regex::Regex),
}

fn regex(what: &str, s: &str) -> Result<regex::Regex, ModuleError> {
    regex::Regex::new(s).map_err(|e| ModuleError::Invalid(format!("{what}: {e}")))
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<LineInFile, ModuleError> {
        let state = opt(&self.state, cx)?.unwrap_or(State::Present);
        let line = opt(&self.line, cx)?;
        let regexp = opt(&self.regexp, cx)?
            .map(|r| regex("regexp", &r))
            .transpose()?;
        if state == State::Present && line.is_none() {
            return Err(ModuleError::Invalid("state: present needs `line`".into()));
        }
        if state == State::Absent && line.is_none() && regexp.is_none() {
            return Err(ModuleError::Invalid(
                "state: absent needs `line` or `regexp`".into(),
            ));
        }
        let anchor = |v: Option<String>, end: &str| -> Result<Option<Anchor>, ModuleError> {
            Ok(match v {
                None => None,
                Some(s) if s == end => Some(Anchor::End),
                Some(s) => Some(Anchor::Match(regex("insertafter/insertbefore", &s)?)),
            })
        };
        let after = anchor(opt(&self.insertafter, cx)?, "EOF")?;
        let before = anchor(opt(&self.insertbefore, cx)?, "BOF")?;
        if after.is_some() && before.is_some() {
            return Err(ModuleError::Invalid(
                "give `insertafter` or `insertbefore`, not both".into(),
            ));
        }
        Ok(LineInFile {
            path: absolute(self.path.resolve(cx.templates, cx.vars, cx.what)?, "path")?,
            regexp,
            line,
            state,
            create: opt(&self.create, cx)?.unwrap_or(false),
            after,
            before,
            mode: opt(&self.mode, cx)?,
            owner: opt(&self.owner, cx)?,
            group: opt(&self.group, cx)?,
        })
    }
}

fn strip(l: &str) -> &str {
    l.trim_end_matches(['\r', '\n'])
}

impl LineInFile {
    /// The file's new lines (each with its line ending), as Ansible's `present()`.
    fn present(&self, mut lines: Vec<String>, line: &str) -> Vec<String> {
        let found = match &self.regexp {
            Some(re) => lines.iter().rposition(|l| re.is_match(strip(l))),
            None => lines.iter().position(|l| strip(l) == line),
        };
        if let Some(i) = found {
            if strip(&lines[i]) != line {
                lines[i] = format!("{line}\n");
            }
            return lines;
        }
        let at = match (&self.after, &self.before) {
            (Some(Anchor::Match(re)), _) => lines
                .iter()
                .rposition(|l| re.is_match(strip(l)))
                .map(|i| i + 1),
            (_, Some(Anchor::Match(re))) => lines.iter().position(|l| re.is_match(strip(l))),
            (_, Some(Anchor::End)) => Some(0),
            _ => None,
        };
        match at {
            Some(i) if i < lines.len() => lines.insert(i, format!("{line}\n")),
            _ => {
                if let Some(last) = lines.last_mut() {
                    if !last.ends_with('\n') {
                        last.push('\n');
                    }
                }
                lines.push(format!("{line}\n"));
            }
        }
        lines
    }
}

impl Module for LineInFile {
    fn reads(&self) -> Vec<Read> {
        vec![Read::File(self.path.clone())]
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let file = view.file(&self.path).filter(|f| f.exists());
        let text = match file.and_then(|f| f.content.as_ref()) {
            Some(c) => String::from_utf8_lossy(c).into_owned(),
            None if file.is_some() => {
                return Err(ModuleError::Host {
                    path: self.path.clone(),
                    message: "not a regular file".into(),
                })
            }
            None if self.state == State::Absent => {
                return Ok(Planned::NoChange {
                    reason: format!("{} does not exist", self.path),
                })
            }
            None if !self.create => {
                return Err(ModuleError::Host {
                    path: self.path.clone(),
                    message: "does not exist (create: true makes it)".into(),
                })
            }
            None => String::new(),
        };
        let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        let new: Vec<String> = match (self.state, &self.line) {
            (State::Present, Some(line)) => self.present(lines, line),
            _ => lines
                .into_iter()
                .filter(|l| match (&self.regexp, &self.line) {
                    (Some(re), _) => !re.is_match(strip(l)),
                    (None, Some(line)) => strip(l) != line,
                    (None, None) => true,
                })
                .collect(),
        };
        ManagedFile {
            dest: self.path.clone(),
            content: new.concat().into_bytes(),
            mode: self.mode,
            owner: self.owner.clone(),
            group: self.group.clone(),
            force: true,
        }
        .plan(view)
    }
}
