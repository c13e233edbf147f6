//! `include_vars`: the variables of a YAML file beside the playbook (or in the role's
//! `vars/`), for the host from this task on; with `name:`, under that one variable.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, Read};
use crate::plan::Planned;
use crate::template::Tpl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub file: Tpl<String>,
    pub name: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct IncludeVars {
    file: String,
    vars: BTreeMap<String, minijinja::Value>,
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<IncludeVars, ModuleError> {
        let file = self.file.resolve(cx.templates, cx.vars, cx.what)?;
        let candidates = [
            cx.base_dir.join("vars").join(&file),
            cx.base_dir.join(&file),
        ];
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            ModuleError::Invalid(format!(
                "include_vars: {file:?} not found in {} or its vars/ directory",
                cx.base_dir.display()
            ))
        })?;
        let map = crate::playbook::expand::vars_file(path)
            .map_err(|e| ModuleError::Invalid(e.to_string()))?;
        let mut vars: BTreeMap<String, minijinja::Value> = map
            .iter()
            .filter_map(|(k, v)| {
                k.as_str()
                    .map(|k| (k.to_string(), minijinja::Value::from_serialize(v)))
            })
            .collect();
        if let Some(name) = opt(&self.name, cx)? {
            vars = BTreeMap::from([(name, minijinja::Value::from(vars))]);
        }
        Ok(IncludeVars {
            file: path.display().to_string(),
            vars,
        })
    }
}

impl Module for IncludeVars {
    fn reads(&self) -> Vec<Read> {
        Vec::new()
    }
    fn plan(&self, _view: &HostView) -> Result<Planned, ModuleError> {
        Ok(Planned::NoChange {
            reason: format!("variables of {}", self.file),
        })
    }
    fn output(&self, _view: &HostView) -> Vec<(String, minijinja::Value)> {
        vec![
            (
                "ansible_facts".into(),
                minijinja::Value::from(self.vars.clone()),
            ),
            (
                "ansible_included_var_files".into(),
                minijinja::Value::from(vec![self.file.clone()]),
            ),
        ]
    }
    fn changes_host(&self) -> bool {
        false
    }
}
