//! `systemd`: daemon-reload when a unit's definition changed, enable, start/stop/restart.

use serde::Deserialize;

use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{unit_name, HostView, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::Tpl;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(alias = "unit")]
    pub name: Option<Tpl<String>>,
    #[serde(default)]
    pub daemon_reload: Option<Tpl<bool>>,
    pub enabled: Option<Tpl<bool>>,
    pub state: Option<Tpl<State>>,
}

#[derive(Debug)]
pub struct Systemd {
    name: Option<String>,
    daemon_reload: bool,
    enabled: Option<bool>,
    state: Option<State>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Systemd, ModuleError> {
        let s = Systemd {
            name: opt(&self.name, cx)?.map(|n| unit_name(&n)),
            daemon_reload: opt(&self.daemon_reload, cx)?.unwrap_or(false),
            enabled: opt(&self.enabled, cx)?,
            state: opt(&self.state, cx)?,
        };
        if s.name.is_none() && (s.enabled.is_some() || s.state.is_some()) {
            return Err(ModuleError::Invalid(
                "`name` is required with `enabled` or `state`".into(),
            ));
        }
        if s.name.is_none() && !s.daemon_reload {
            return Err(ModuleError::Invalid(
                "nothing to do: give `name` with `enabled`/`state`, or `daemon_reload: true`"
                    .into(),
            ));
        }
        Ok(s)
    }
}

impl Module for Systemd {
    fn reads(&self) -> Vec<Read> {
        self.name.iter().map(|n| Read::Unit(n.clone())).collect()
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        let unit = self
            .name
            .as_ref()
            .and_then(|n| view.unit(n))
            .cloned()
            .unwrap_or_default();
        let subject = |what: &str| format!("unit {} ({what})", self.name.as_deref().unwrap_or("*"));
        let mut item = |what: &str, before: &str, after: &str| {
            diffs.push(DiffItem {
                subject: subject(what),
                before: before.to_string(),
                after: after.to_string(),
                secret: false,
            })
        };
        // Without a unit name we cannot tell whether a reload is due: reload, as Ansible does.
        let reload_due = self.name.is_none() || unit.need_daemon_reload;
        if self.daemon_reload && reload_due {
            ops.push(Op::Systemctl {
                args: vec!["daemon-reload".into()],
            });
            item("definition", "changed on disk", "reloaded");
        }
        let Some(name) = &self.name else {
            return Ok(finish(ops, diffs, "no unit named"));
        };
        if let Some(want) = self.enabled {
            let is = unit.unit_file_state == "enabled";
            if want != is {
                let verb = if want { "enable" } else { "disable" };
                ops.push(Op::Systemctl {
                    args: vec![verb.into(), name.clone()],
                });
                item(
                    "enabled",
                    if unit.unit_file_state.is_empty() {
                        "unknown"
                    } else {
                        &unit.unit_file_state
                    },
                    if want { "enabled" } else { "disabled" },
                );
            }
        }
        let active = unit.active_state == "active";
        let verb = match self.state {
            Some(State::Started) if !active => Some("start"),
            Some(State::Stopped) if active => Some("stop"),
            Some(State::Restarted) => Some("restart"),
            Some(State::Reloaded) => Some("reload-or-restart"),
            _ => None,
        };
        if let Some(verb) = verb {
            ops.push(Op::Systemctl {
                args: vec![verb.into(), name.clone()],
            });
            let before = if unit.active_state.is_empty() {
                "inactive"
            } else {
                unit.active_state.as_str()
            };
            item("state", before, verb);
        }
        // `enable X` + `start X` is `enable --now X`: one systemctl instead of two.
        if let [.., Op::Systemctl { args: a }, Op::Systemctl { args: b }] = ops.as_slice() {
            if a[0] == "enable" && b[0] == "start" {
                ops.truncate(ops.len() - 2);
                ops.push(Op::Systemctl {
                    args: vec!["enable".into(), "--now".into(), name.clone()],
                });
            }
        }
        Ok(finish(
            ops,
            diffs,
            &format!("{name} is in the wanted state"),
        ))
    }
}

fn finish(ops: Vec<Op>, diffs: Vec<DiffItem>, reason: &str) -> Planned {
    if ops.is_empty() {
        Planned::NoChange {
            reason: reason.to_string(),
        }
    } else {
        Planned::Change { ops, diffs }
    }
}
