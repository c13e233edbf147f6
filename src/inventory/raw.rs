//! The inventory as the source files declare it, built the way Ansible's `InventoryData` is:
//! groups and hosts in creation order, each group's hosts and children in the order added.
//! The YAML and INI readers fill it; `model` resolves it.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use super::connection;

/// The implicit group every host belongs to.
pub const ALL: &str = "all";
/// The implicit group of hosts that belong to no group other than `all`.
pub const UNGROUPED: &str = "ungrouped";

#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) groups: Vec<RawGroup>,
    group_index: HashMap<String, usize>,
    pub(crate) hosts: Vec<RawHost>,
    host_index: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct RawGroup {
    pub(crate) name: String,
    pub(crate) vars: Mapping,
    pub(crate) hosts: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) parents: Vec<usize>,
    /// `ansible_group_priority` (Ansible's default 1); not kept among the group's vars.
    pub(crate) priority: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct RawHost {
    pub(crate) name: String,
    pub(crate) vars: Mapping,
    /// The source the host was first read from.
    pub(crate) source: PathBuf,
}

impl Raw {
    /// An empty inventory with `all` and its child `ungrouped`, as Ansible starts.
    pub(crate) fn new() -> Raw {
        let mut raw = Raw {
            groups: Vec::new(),
            group_index: HashMap::new(),
            hosts: Vec::new(),
            host_index: HashMap::new(),
        };
        raw.add_group(ALL);
        raw.add_group(UNGROUPED);
        raw.add_child(ALL, UNGROUPED)
            .expect("a fresh inventory has no cycle");
        raw
    }

    pub(crate) fn group(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    #[cfg(test)]
    pub(crate) fn host(&self, name: &str) -> Option<usize> {
        self.host_index.get(name).copied()
    }

    pub(crate) fn add_group(&mut self, name: &str) -> usize {
        if let Some(&i) = self.group_index.get(name) {
            return i;
        }
        self.groups.push(RawGroup {
            name: name.to_string(),
            vars: Mapping::new(),
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
            priority: 1,
        });
        self.group_index
            .insert(name.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// Adds the host if new (remembering `source`), and to `group` if given.
    pub(crate) fn add_host(
        &mut self,
        name: &str,
        group: Option<usize>,
        source: &std::path::Path,
    ) -> usize {
        let h = match self.host_index.get(name) {
            Some(&h) => h,
            None => {
                self.hosts.push(RawHost {
                    name: name.to_string(),
                    vars: Mapping::new(),
                    source: source.to_path_buf(),
                });
                self.host_index
                    .insert(name.to_string(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        if let Some(g) = group {
            if !self.groups[g].hosts.contains(&h) {
                self.groups[g].hosts.push(h);
            }
        }
        h
    }

    pub(crate) fn set_host_var(&mut self, host: usize, key: &str, value: Value) {
        self.hosts[host]
            .vars
            .insert(Value::String(key.to_string()), value);
    }

    /// Sets a group variable; `ansible_group_priority` sets the priority instead, as Ansible.
    pub(crate) fn set_group_var(
        &mut self,
        group: usize,
        key: &str,
        value: Value,
    ) -> Result<(), String> {
        if key == connection::GROUP_PRIORITY {
            self.groups[group].priority =
                connection::integer(&value).map_err(|m| format!("variable {key}: {m}"))?;
            return Ok(());
        }
        self.groups[group]
            .vars
            .insert(Value::String(key.to_string()), value);
        Ok(())
    }

    /// Makes `child` a child group of `parent`; refuses a cycle with Ansible's words.
    pub(crate) fn add_child(&mut self, parent: &str, child: &str) -> Result<(), String> {
        let (p, c) = (self.add_group(parent), self.add_group(child));
        if p == c || self.ancestors(p).contains(&c) {
            let mut cycle = self.path(c, p).unwrap_or_default();
            cycle.push(child.to_string());
            return Err(format!(
                "group {child:?} includes itself: {}",
                cycle.join(" -> ")
            ));
        }
        if !self.groups[p].children.contains(&c) {
            self.groups[p].children.push(c);
            self.groups[c].parents.push(p);
        }
        Ok(())
    }

    /// Group names on a path of children from `from` down to `to`, both included.
    fn path(&self, from: usize, to: usize) -> Option<Vec<String>> {
        if from == to {
            return Some(vec![self.groups[from].name.clone()]);
        }
        for &c in &self.groups[from].children {
            if let Some(mut rest) = self.path(c, to) {
                rest.insert(0, self.groups[from].name.clone());
                return Some(rest);
            }
        }
        None
    }

    pub(crate) fn ancestors(&self, g: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut todo = self.groups[g].parents.clone();
        while let Some(p) = todo.pop() {
            if !out.contains(&p) {
                out.push(p);
                todo.extend(self.groups[p].parents.iter().copied());
            }
        }
        out
    }
}
