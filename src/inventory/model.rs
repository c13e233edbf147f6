//! The resolved inventory: hosts with their groups and merged variables, and group membership.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use super::connection;
use super::error::{InventoryError, Place};
use super::loader::{self, Raw};
use super::pattern::Pattern;

/// The implicit group every host belongs to.
pub const ALL: &str = "all";
/// The implicit group of hosts that belong to no group other than `all`.
pub const UNGROUPED: &str = "ungrouped";

/// A loaded inventory: hosts in file order and every group's hosts.
#[derive(Debug, Clone)]
pub struct Inventory {
    source: Arc<Path>,
    hosts: Vec<Host>,
    index: HashMap<String, usize>,
    /// Every group (including `all` and `ungrouped`) → indices of its hosts, descendants'
    /// included, in inventory order.
    pub(crate) members: BTreeMap<String, Vec<usize>>,
}

/// One host, with its groups and its variables merged in precedence order.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The inventory name (`inventory_hostname`).
    pub name: String,
    /// Every group the host belongs to, ancestors and `all` included, sorted by name.
    pub groups: Vec<String>,
    /// Group and host variables merged: `all` < parent groups < child groups < the host's own.
    pub vars: Mapping,
    source: Arc<Path>,
}

impl Inventory {
    /// Reads and parses the inventory file at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Inventory::parse(&text, path)
    }

    /// Parses inventory YAML; `source` names the file in error messages.
    pub fn parse(text: &str, source: &Path) -> Result<Inventory, InventoryError> {
        let raw = loader::read(text, source)?;
        resolve(raw, text, source)
    }

    /// All hosts in file order (first appearance), each once.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host with this inventory name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index.get(name).map(|&i| &self.hosts[i])
    }

    /// Every group name, `all` and `ungrouped` included, sorted.
    pub fn group_names(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The hosts of `group` and of its descendant groups, in inventory order; empty for an
    /// unknown group.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        self.members
            .get(group)
            .map(|hosts| hosts.iter().map(|&i| self.hosts[i].name.clone()).collect())
            .unwrap_or_default()
    }

    /// The hosts an Ansible host pattern selects (`all`, `web*`, `a,b`, `web:&prod:!web-3`,
    /// `web[0:2]`), in inventory order. Selecting no host is an error.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, InventoryError> {
        let parsed = Pattern::parse(pattern).map_err(|message| InventoryError::Pattern {
            pattern: pattern.to_string(),
            message,
        })?;
        let selected = parsed.select(self);
        if selected.is_empty() {
            return Err(InventoryError::NoMatch {
                pattern: pattern.to_string(),
                file: self.source.to_path_buf(),
            });
        }
        Ok(selected.into_iter().map(|i| &self.hosts[i]).collect())
    }

    /// The file the inventory was read from, as given.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl Host {
    /// A host built in code (not read from a file), member of `all` only.
    pub fn new(name: impl Into<String>, vars: Mapping) -> Host {
        Host {
            name: name.into(),
            groups: vec![ALL.to_string()],
            vars,
            source: Arc::from(Path::new("<inline>")),
        }
    }

    /// Where to connect: `ansible_host`, else the inventory name.
    pub fn address(&self) -> Result<String, InventoryError> {
        Ok(self
            .typed(connection::HOST, connection::string)?
            .flatten()
            .unwrap_or_else(|| self.name.clone()))
    }

    /// `ansible_port`; `None` means the caller's default (22).
    pub fn port(&self) -> Result<Option<u16>, InventoryError> {
        Ok(self.typed(connection::PORT, connection::port)?.flatten())
    }

    /// `ansible_user`.
    pub fn user(&self) -> Result<Option<String>, InventoryError> {
        Ok(self.typed(connection::USER, connection::string)?.flatten())
    }

    /// `ansible_ssh_private_key_file`, with a leading `~/` expanded to `$HOME`.
    pub fn private_key_file(&self) -> Result<Option<PathBuf>, InventoryError> {
        let file = self
            .typed(connection::KEY_FILE, connection::string)?
            .flatten();
        Ok(file.map(|file| expand_home(&file)))
    }

    /// `ansible_become`; false when unset.
    pub fn become_(&self) -> Result<bool, InventoryError> {
        Ok(self
            .typed(connection::BECOME, connection::boolean)?
            .unwrap_or(false))
    }

    /// `ansible_become_user` (Ansible's default when unset is root).
    pub fn become_user(&self) -> Result<Option<String>, InventoryError> {
        Ok(self
            .typed(connection::BECOME_USER, connection::string)?
            .flatten())
    }

    /// `ansible_connection`: `"ssh"` (the default) or `"local"`.
    pub fn connection(&self) -> Result<String, InventoryError> {
        Ok(self
            .typed(connection::CONNECTION, connection::connection)?
            .unwrap_or_else(|| "ssh".to_string()))
    }

    /// The first of `names` the host has, converted; `None` when it has none of them.
    fn typed<T>(
        &self,
        names: &[&str],
        convert: fn(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, InventoryError> {
        let Some((name, value)) = names
            .iter()
            .find_map(|name| self.vars.get(*name).map(|value| (*name, value)))
        else {
            return Ok(None);
        };
        convert(value)
            .map(Some)
            .map_err(|message| InventoryError::Var {
                file: self.source.to_path_buf(),
                host: self.name.clone(),
                var: name.to_string(),
                message,
            })
    }
}

fn expand_home(file: &str) -> PathBuf {
    match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(file),
    }
}

/// Turns the groups and hosts as declared into hosts with groups and merged variables.
///
/// Variable precedence follows Ansible: groups are applied in order of depth (longest path
/// from `all`, which is 0), then `ansible_group_priority` (default 1), then name, later
/// overriding earlier; the host's own variables come last. So `all` < parent < child < host,
/// and of two sibling groups at the same depth the one whose name sorts later wins. Merging
/// replaces whole values (Ansible's default `hash_behaviour=replace`).
fn resolve(mut raw: Raw, text: &str, source: &Path) -> Result<Inventory, InventoryError> {
    raw.groups.entry(ALL.to_string()).or_default();
    raw.groups.entry(UNGROUPED.to_string()).or_default();
    let mut top = std::mem::take(&mut raw.top);
    if !top.iter().any(|g| g == UNGROUPED) {
        top.push(UNGROUPED.to_string());
    }
    let all = raw.groups.get_mut(ALL).expect("all was just added");
    for group in top {
        if !all.children.contains(&group) {
            all.children.push(group);
        }
    }

    if let Some(cycle) = find_cycle(&raw) {
        let (parent, child) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        let place = Place {
            file: source.to_path_buf(),
            position: loader::locate_child(text, parent, child),
        };
        return Err(InventoryError::Cycle { place, cycle });
    }

    let order = topological(&raw);
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut ancestors: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for name in &order {
        let d = depth.get(name.as_str()).copied().unwrap_or(0);
        let mine = ancestors.remove(name.as_str()).unwrap_or_default();
        for child in &raw.groups[name].children {
            let entry = depth.entry(child.as_str()).or_insert(0);
            *entry = (*entry).max(d + 1);
            let theirs = ancestors.entry(child.as_str()).or_default();
            theirs.insert(name.as_str());
            theirs.extend(mine.iter().copied());
        }
        ancestors.insert(name.as_str(), mine);
    }
    let mut priority: HashMap<&str, i64> = HashMap::new();
    for (name, group) in &raw.groups {
        let value = group.vars.get(connection::GROUP_PRIORITY);
        // Checked when loaded; a template there cannot be used for ordering, so it counts as 1.
        let p = value.and_then(|v| connection::integer(v).ok()).unwrap_or(1);
        priority.insert(name.as_str(), p);
    }

    let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, group) in &raw.groups {
        for host in &group.hosts {
            direct.entry(host.as_str()).or_default().push(name.as_str());
        }
    }

    let source: Arc<Path> = Arc::from(source);
    let mut hosts = Vec::with_capacity(raw.hosts.len());
    let mut members: BTreeMap<String, Vec<usize>> = raw
        .groups
        .keys()
        .map(|name| (name.clone(), Vec::new()))
        .collect();
    for (i, name) in raw.hosts.iter().enumerate() {
        let mut groups: BTreeSet<&str> = BTreeSet::from([ALL]);
        for group in direct.get(name.as_str()).into_iter().flatten() {
            groups.insert(group);
            groups.extend(ancestors[group].iter().copied());
        }
        if groups.iter().all(|g| *g == ALL || *g == UNGROUPED) {
            groups.insert(UNGROUPED);
        } else {
            groups.remove(UNGROUPED);
        }
        let mut ordered: Vec<&str> = groups.iter().copied().collect();
        ordered.sort_by_key(|g| (depth.get(g).copied().unwrap_or(0), priority[g], *g));
        let mut vars = Mapping::new();
        for group in ordered {
            for (key, value) in &raw.groups[group].vars {
                if key.as_str() != Some(connection::GROUP_PRIORITY) {
                    vars.insert(key.clone(), value.clone());
                }
            }
        }
        for (key, value) in raw.host_vars.get(name).into_iter().flatten() {
            vars.insert(key.clone(), value.clone());
        }
        for group in &groups {
            members.get_mut(*group).expect("every group listed").push(i);
        }
        hosts.push(Host {
            name: name.clone(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            vars,
            source: source.clone(),
        });
    }
    let index = raw
        .hosts
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), i))
        .collect();
    Ok(Inventory {
        source,
        hosts,
        index,
        members,
    })
}

/// A path of groups from a group back to itself (`[a, b, a]`), if the children form a cycle.
/// Walks from `all` (every group is reachable from it) in declaration order.
fn find_cycle(raw: &Raw) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        raw: &'a Raw,
        name: &'a str,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|g| *g == name).expect("on the path");
                let mut cycle: Vec<String> = path[start..].iter().map(|g| g.to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name, Mark::Visiting);
        path.push(name);
        for child in &raw.groups[name].children {
            if let Some(cycle) = visit(raw, child, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    let mut path = Vec::new();
    visit(raw, ALL, &mut marks, &mut path).or_else(|| {
        // Groups unreachable from `all` cannot exist, but be safe rather than loop.
        raw.groups
            .keys()
            .find_map(|name| visit(raw, name, &mut marks, &mut path))
    })
}

/// Groups ordered parents before children (the children graph has no cycle).
fn topological(raw: &Raw) -> Vec<String> {
    fn visit(raw: &Raw, name: &str, seen: &mut BTreeSet<String>, out: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        for child in &raw.groups[name].children {
            visit(raw, child, seen, out);
        }
        out.push(name.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    visit(raw, ALL, &mut seen, &mut out);
    for name in raw.groups.keys() {
        visit(raw, name, &mut seen, &mut out);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, String> {
        Inventory::parse(text, Path::new("inv.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn host_declared_twice_merges_its_vars_later_wins() {
        let inv =
            parse("a:\n  hosts:\n    h: {x: 1, y: 1}\nb:\n  hosts:\n    h: {y: 2}\n").unwrap();
        let h = inv.host("h").unwrap();
        assert_eq!(
            h.vars,
            serde_yaml::from_str::<Mapping>("{x: 1, y: 2}").unwrap()
        );
        assert_eq!(h.groups, ["a", "all", "b"]);
        assert_eq!(inv.hosts().len(), 1);
    }

    #[test]
    fn private_key_file_expands_home() {
        let inv =
            parse("all:\n  hosts:\n    h: {ansible_ssh_private_key_file: ~/.ssh/id}\n").unwrap();
        let home = std::env::var_os("HOME").expect("HOME is set in tests");
        assert_eq!(
            inv.host("h").unwrap().private_key_file().unwrap(),
            Some(Path::new(&home).join(".ssh/id"))
        );
    }

    #[test]
    fn host_built_in_code_has_defaults() {
        let host = Host::new("box", Mapping::new());
        assert_eq!(host.address().unwrap(), "box");
        assert_eq!(host.port().unwrap(), None);
        assert_eq!(host.connection().unwrap(), "ssh");
        assert!(!host.become_().unwrap());
        assert_eq!(host.groups, ["all"]);
    }

    #[test]
    fn a_group_including_all_is_a_cycle() {
        assert_eq!(
            parse("all:\n  children:\n    x:\n      children:\n        all:\n").unwrap_err(),
            "inv.yaml:5:9: group \"all\" includes itself: all -> x -> all"
        );
    }

    #[test]
    fn other_shape_errors_point_at_the_node() {
        let cases = [
            (
                "all:\n  vars: [1]\n",
                "inv.yaml:2:9: group \"all\": variables must be a mapping, found a list",
            ),
            (
                "all:\n  children: [a]\n",
                "inv.yaml:2:13: group \"all\": \"children\" must be a mapping of group names (each name followed by \":\"), found a list",
            ),
            (
                "all:\n  children:\n    web: yes\n",
                "inv.yaml:3:10: group \"web\": expected a mapping with hosts, vars or children, found \"yes\"",
            ),
            (
                "all:\n  hosts:\n    true:\n",
                "inv.yaml:3:5: group \"all\": host names must be strings, found true",
            ),
            (
                "all:\n  vars:\n    ansible_connection: winrm\n",
                "inv.yaml:3:25: group \"all\": variable ansible_connection: expected \"ssh\" or \"local\", found \"winrm\"",
            ),
            (
                "all:\n  vars:\n    ansible_group_priority: high\n",
                "inv.yaml:3:29: group \"all\": variable ansible_group_priority: expected an integer, found \"high\"",
            ),
            (
                "all:\n---\nall:\n",
                "inv.yaml: deserializing from YAML containing more than one document is not supported",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "parsing {text:?}");
        }
    }
}
