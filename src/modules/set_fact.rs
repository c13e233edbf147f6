//! `set_fact`: variables of the host from this task on (in every later play too), rendered
//! now. The engine stores them; the module only renders them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::render_yaml;

/// The variables to set; `cacheable` is accepted (there is no fact cache to keep them in).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Args(pub serde_yaml::Mapping);

#[derive(Debug)]
pub struct SetFact {
    facts: BTreeMap<String, minijinja::Value>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<SetFact, ModuleError> {
        let mut facts = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(name) = k.as_str() else {
                return Err(ModuleError::Invalid(format!(
                    "set_fact: {k:?} is not a variable name"
                )));
            };
            if name == "cacheable" {
                continue;
            }
            let what = format!("{} set_fact {name}", cx.what);
            facts.insert(
                name.to_string(),
                render_yaml(cx.templates, v, cx.vars, &what)?,
            );
        }
        if facts.is_empty() {
            return Err(ModuleError::Invalid("set_fact: no variables given".into()));
        }
        Ok(SetFact { facts })
    }
}

impl Module for SetFact {
    fn reads(&self) -> Vec<Read> {
        Vec::new()
    }
    fn plan(&self, _view: &HostView) -> Result<Planned, ModuleError> {
        Ok(Planned::NoChange {
            reason: format!(
                "set {}",
                self.facts.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
    fn output(&self, _view: &HostView) -> Vec<(String, minijinja::Value)> {
        vec![(
            "ansible_facts".into(),
            minijinja::Value::from(self.facts.clone()),
        )]
    }
    fn changes_host(&self) -> bool {
        false
    }
}
