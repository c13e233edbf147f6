//! `debug`: a message (`msg`) or a variable's value (`var`), reported as ok.

use serde::Deserialize;

use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub msg: Option<serde_yaml::Value>,
    pub var: Option<String>,
    /// Accepted: bootstrapctl shows every message at -v.
    #[serde(rename = "verbosity")]
    pub _verbosity: Option<u8>,
}

#[derive(Debug)]
pub struct Debug {
    key: String,
    value: minijinja::Value,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<Debug, ModuleError> {
        let (key, value) = match (&self.msg, &self.var) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::Invalid(
                    "debug takes `msg` or `var`, not both".into(),
                ))
            }
            (_, Some(var)) => {
                let v = cx
                    .templates
                    .eval(var, cx.vars, cx.what)
                    .unwrap_or_else(|_| minijinja::Value::from("VARIABLE IS NOT DEFINED!"));
                (var.clone(), v)
            }
            (Some(m), None) => (
                "msg".to_string(),
                crate::template::render_yaml(cx.templates, m, cx.vars, cx.what)?,
            ),
            (None, None) => ("msg".to_string(), minijinja::Value::from("Hello world!")),
        };
        Ok(Debug { key, value })
    }
}

impl Module for Debug {
    fn reads(&self) -> Vec<Read> {
        Vec::new()
    }
    fn plan(&self, _view: &HostView) -> Result<Planned, ModuleError> {
        let shown = match self.value.as_str() {
            Some(s) => s.to_string(),
            None => serde_json::to_string(&self.value).unwrap_or_default(),
        };
        Ok(Planned::NoChange {
            reason: if self.key == "msg" {
                shown
            } else {
                format!("{}: {shown}", self.key)
            },
        })
    }
    fn output(&self, _view: &HostView) -> Vec<(String, minijinja::Value)> {
        vec![(self.key.clone(), self.value.clone())]
    }
    fn changes_host(&self) -> bool {
        false
    }
}
