//! `sysctl`: a kernel parameter set in the running kernel (`sysctl -w`) and persisted in a
//! sysctl.d file, as ansible.posix.sysctl does with `sysctl_set: true`.

use serde::Deserialize;

use super::template::{absolute, opt};
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::kernel::{normalize_value, sysctl_name};
use crate::hoststate::{FileKind, HostView, KernelRead, Read};
use crate::plan::{DiffItem, Op, Planned};
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
    #[serde(alias = "key")]
    pub name: Tpl<String>,
    #[serde(alias = "val")]
    pub value: Option<Tpl<String>>,
    pub state: Option<Tpl<State>>,
    pub sysctl_file: Option<Tpl<String>>,
    /// Set the running value when it differs (Ansible reloads the file only when it changed;
    /// here the running value always converges, so a re-run repairs a value changed by hand).
    pub reload: Option<Tpl<bool>>,
    /// Ansible's switch for setting the running value; here `reload` already does, and
    /// `sysctl_set: true` sets it even with `reload: false`.
    pub sysctl_set: Option<Tpl<bool>>,
}

/// Ansible's default file; the shipped playbooks give a sysctl.d file.
pub const DEFAULT_FILE: &str = "/etc/sysctl.conf";

#[derive(Debug)]
pub struct Sysctl {
    name: String,
    /// Normalized; `None` with `state: absent`.
    value: Option<String>,
    file: String,
    set_live: bool,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Sysctl, ModuleError> {
        let name = sysctl_name(&self.name.resolve(cx.templates, cx.vars, cx.what)?);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:@+".contains(&b))
        {
            return Err(ModuleError::Invalid(format!(
                "name: {name:?} is not a sysctl name"
            )));
        }
        let state = opt(&self.state, cx)?.unwrap_or(State::Present);
        let value = match (state, opt(&self.value, cx)?) {
            (State::Present, None) => {
                return Err(ModuleError::Invalid(
                    "`value` is required with state present".into(),
                ))
            }
            (State::Present, Some(v)) => {
                let v = normalize_value(&v);
                if v.is_empty() || v.contains('\n') {
                    return Err(ModuleError::Invalid(format!(
                        "value: {v:?} is not a sysctl value"
                    )));
                }
                Some(v)
            }
            (State::Absent, _) => None,
        };
        let reload = opt(&self.reload, cx)?.unwrap_or(true);
        let sysctl_set = opt(&self.sysctl_set, cx)?.unwrap_or(false);
        Ok(Sysctl {
            name,
            value,
            file: absolute(
                opt(&self.sysctl_file, cx)?.unwrap_or_else(|| DEFAULT_FILE.into()),
                "sysctl_file",
            )?,
            set_live: reload || sysctl_set,
        })
    }
}

/// The directory holding `path` (absolute).
pub(crate) fn parent_dir(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((d, _)) => d.to_string(),
    }
}

/// The key a sysctl.conf line sets, if it sets one (`key = value`, `-key = value`).
fn line_key(line: &str) -> Option<String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    Some(sysctl_name(k.trim().trim_start_matches('-')))
}

fn line_value(line: &str) -> String {
    normalize_value(line.split_once('=').map(|(_, v)| v).unwrap_or(""))
}

/// The file with `name` set to `value` (first line of the key rewritten when its value
/// differs, later duplicates dropped, appended when absent) or, for `None`, with every line
/// of the key removed.
pub fn edit_conf(text: &str, name: &str, value: Option<&str>) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.split_inclusive('\n') {
        if line_key(line).as_deref() != Some(name) {
            out.push_str(line);
            continue;
        }
        match value {
            Some(v) if !done => {
                done = true;
                if line_value(line) == v {
                    out.push_str(line);
                } else {
                    out.push_str(&format!("{name}={v}\n"));
                }
            }
            _ => {}
        }
    }
    if let (Some(v), false) = (value, done) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name}={v}\n"));
    }
    out
}

impl Module for Sysctl {
    fn reads(&self) -> Vec<Read> {
        let mut r = vec![
            Read::File(self.file.clone()),
            Read::File(parent_dir(&self.file)),
        ];
        if self.value.is_some() && self.set_live {
            r.push(Read::Kernel(KernelRead::Sysctl(self.name.clone())));
        }
        r
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        if let (Some(v), true) = (&self.value, self.set_live) {
            let live = view.sysctl(&self.name).cloned().flatten();
            if live.as_deref() != Some(v.as_str()) {
                ops.push(Op::Sysctl {
                    name: self.name.clone(),
                    value: v.clone(),
                });
                diffs.push(DiffItem {
                    subject: format!("sysctl {}", self.name),
                    before: live.map(|l| format!("{l}\n")).unwrap_or_default(),
                    after: format!("{v}\n"),
                    secret: false,
                });
            }
        }
        let file = view.file(&self.file);
        let before = file
            .and_then(|f| f.content.as_deref())
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        let after = edit_conf(&before, &self.name, self.value.as_deref());
        let exists = file.is_some_and(|f| f.exists());
        if after != before && (exists || self.value.is_some()) {
            let parent = parent_dir(&self.file);
            if !view
                .file(&parent)
                .is_some_and(|f| f.kind == FileKind::Directory)
            {
                ops.push(Op::Mkdir {
                    path: parent,
                    mode: 0o755,
                    owner: None,
                    group: None,
                });
            }
            let f = file.filter(|f| f.exists());
            ops.push(Op::WriteFile {
                path: self.file.clone(),
                content: after.clone().into_bytes(),
                mode: f.map_or(0o644, |f| f.mode),
                owner: f.map(|f| f.owner.clone()),
                group: f.map(|f| f.group.clone()),
            });
            diffs.push(DiffItem {
                subject: self.file.clone(),
                before,
                after,
                secret: false,
            });
        }
        if !ops.is_empty() {
            return Ok(Planned::Change { ops, diffs });
        }
        Ok(Planned::NoChange {
            reason: match &self.value {
                Some(v) if self.set_live => {
                    format!("{} is {v}, and so in {}", self.name, self.file)
                }
                Some(v) => format!("{} = {v} in {}", self.name, self.file),
                None => format!("{} is not in {}", self.name, self.file),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::edit_conf;

    #[test]
    fn edits_keep_every_other_line() {
        let text = "# kernel\nvm.swappiness = 10\nnet.ipv4.ip_forward = 0\nnet.ipv4.ip_forward=0\n";
        assert_eq!(
            edit_conf(text, "net.ipv4.ip_forward", Some("1")),
            "# kernel\nvm.swappiness = 10\nnet.ipv4.ip_forward=1\n"
        );
        assert_eq!(
            edit_conf("a = 1", "net.ipv4.ip_forward", Some("1")),
            "a = 1\nnet.ipv4.ip_forward=1\n"
        );
        assert_eq!(
            edit_conf(text, "net.ipv4.ip_forward", None),
            "# kernel\nvm.swappiness = 10\n"
        );
        assert_eq!(
            edit_conf(
                "net/ipv4/ip_forward = 1\n",
                "net.ipv4.ip_forward",
                Some("1")
            ),
            "net/ipv4/ip_forward = 1\n"
        );
    }
}
