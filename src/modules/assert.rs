//! `assert` (every condition of `that` holds, or the task fails with `fail_msg`) and `fail`
//! (the task fails with `msg`): checks made when the arguments resolve, so `--check` is the
//! same as a run.

use serde::de::Deserializer;
use serde::Deserialize;

use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(deserialize_with = "conditions")]
    pub that: Vec<String>,
    #[serde(alias = "msg")]
    pub fail_msg: Option<Tpl<String>>,
    pub success_msg: Option<Tpl<String>>,
    #[serde(rename = "quiet")]
    pub _quiet: Option<Tpl<bool>>,
}

fn conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    crate::playbook::Cond::deserialize(d).map(|c| c.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    pub msg: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct Passed(String);

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Passed, ModuleError> {
        for cond in &self.that {
            let ok = cx.templates.eval_bool(cond, cx.vars, cx.what)?;
            if !ok {
                let msg = match &self.fail_msg {
                    Some(m) => m.resolve(cx.templates, cx.vars, cx.what)?,
                    None => "Assertion failed".into(),
                };
                return Err(ModuleError::Invalid(format!("{msg} (assertion: {cond})")));
            }
        }
        Ok(Passed(match &self.success_msg {
            Some(m) => m.resolve(cx.templates, cx.vars, cx.what)?,
            None => "All assertions passed".into(),
        }))
    }
}

impl FailArgs {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Passed, ModuleError> {
        Err(ModuleError::Invalid(match &self.msg {
            Some(m) => m.resolve(cx.templates, cx.vars, cx.what)?,
            None => "Failed as requested from task".into(),
        }))
    }
}

impl Module for Passed {
    fn reads(&self) -> Vec<Read> {
        Vec::new()
    }
    fn plan(&self, _view: &HostView) -> Result<Planned, ModuleError> {
        Ok(Planned::NoChange {
            reason: self.0.clone(),
        })
    }
    fn changes_host(&self) -> bool {
        false
    }
}
