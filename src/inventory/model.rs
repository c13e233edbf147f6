//! The resolved inventory: hosts with their groups and merged variables, group membership in
//! Ansible's host order, and the variable precedence of Ansible's "Understanding variable
//! precedence" table (inventory file vars < `group_vars/` beside the inventory < beside the
//! playbook, `all` before other groups, host vars last, in the same three layers).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use crate::vault::Vault;

use super::connection;
use super::error::InventoryError;
use super::files::Files;
use super::pattern::{Pattern, Universe};
use super::raw::Raw;
pub use super::raw::{ALL, UNGROUPED};
use super::sources;

/// What to load: the `-i` sources in order, the playbook's directory (its `group_vars/` and
/// `host_vars/` come last), and the vault passwords.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub sources: Vec<PathBuf>,
    pub playbook_dir: Option<PathBuf>,
    pub vault: Vault,
}

/// A loaded inventory: hosts in creation order and every group's hosts in Ansible's order.
#[derive(Debug, Clone)]
pub struct Inventory {
    source: Arc<Path>,
    hosts: Vec<Host>,
    index: HashMap<String, usize>,
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
    secrets: Vec<String>,
    inline_vaults: HashMap<String, String>,
    unsafe_strings: HashSet<String>,
}

/// A group as declared: its own hosts and child groups in the order added, and its hosts with
/// its descendants' in Ansible's order (`members`).
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    members: Vec<usize>,
}

/// One host, with its groups and its variables merged in precedence order.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The inventory name (`inventory_hostname`).
    pub name: String,
    /// Every group the host belongs to, ancestors and `all` included, sorted by name.
    pub groups: Vec<String>,
    /// All its variables, merged as Ansible merges them (see the module doc).
    pub vars: Mapping,
    source: Arc<Path>,
}

impl Inventory {
    /// Reads one inventory source (file or directory) with its `group_vars/`/`host_vars/`;
    /// vault passwords from `$ANSIBLE_VAULT_PASSWORD_FILE` when set.
    #[cfg(test)]
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let vault = Vault::from_sources(&[], false).map_err(|source| InventoryError::Vault {
            file: path.to_path_buf(),
            source,
        })?;
        Inventory::load_with(&LoadOptions {
            sources: vec![path.to_path_buf()],
            playbook_dir: None,
            vault,
        })
    }

    /// Reads every source in order into one inventory, as `ansible -i A -i B` does.
    pub fn load_with(options: &LoadOptions) -> Result<Inventory, InventoryError> {
        let mut raw = Raw::new();
        let mut files = Files::new(options.vault.clone());
        for source in &options.sources {
            sources::read_source(source, &mut raw, &mut files)?;
        }
        let mut dirs: Vec<PathBuf> = options
            .sources
            .iter()
            .map(|s| sources::basedir(s))
            .collect();
        let inventory_dirs = dirs.len();
        dirs.extend(options.playbook_dir.clone());
        let first = options.sources.first().cloned().unwrap_or_default();
        resolve(raw, &first, &dirs, inventory_dirs, &mut files)
    }

    /// Parses inventory text (YAML or INI) without reading any vars files; `source` names the
    /// file in error messages.
    #[cfg(test)]
    pub fn parse(text: &str, source: &Path) -> Result<Inventory, InventoryError> {
        let mut raw = Raw::new();
        let mut files = Files::new(Vault::none());
        sources::read_text(text, source, &mut raw, &mut files)?;
        resolve(raw, source, &[], 0, &mut files)
    }

    /// All hosts in creation order, each once.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host with this inventory name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index.get(name).map(|&i| &self.hosts[i])
    }

    /// Every group name, `all` and `ungrouped` included, sorted.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        names.sort();
        names
    }

    /// The group with this name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.group_index.get(name).map(|&i| &self.groups[i])
    }

    /// The hosts of `group` and of its descendant groups in Ansible's order (the group's own
    /// hosts in listing order, then its children's, level by level); empty for an unknown
    /// group. This is the order of `groups['x']` and of `x[0]` in patterns.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        self.group(group)
            .map(|g| {
                g.members
                    .iter()
                    .map(|&i| self.hosts[i].name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The hosts an Ansible host pattern selects (`all`, `web*`, `~web\d+`, `a,b`,
    /// `web:&prod:!web-3`, `web[0:2]`), in Ansible's order. Selecting no host is an error.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, InventoryError> {
        let parsed = Pattern::parse(pattern).map_err(|message| InventoryError::Pattern {
            pattern: pattern.to_string(),
            message,
        })?;
        let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        let groups: Vec<(&str, &[usize])> = self
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.members.as_slice()))
            .collect();
        let universe = Universe {
            hosts: &names,
            groups: &groups,
        };
        let selected = parsed
            .select(&universe)
            .map_err(|message| InventoryError::Pattern {
                pattern: pattern.to_string(),
                message,
            })?;
        if selected.is_empty() {
            return Err(InventoryError::NoMatch {
                pattern: pattern.to_string(),
                file: self.source.to_path_buf(),
            });
        }
        Ok(selected.into_iter().map(|i| &self.hosts[i]).collect())
    }

    /// The first source the inventory was read from, as given.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Decrypted vault values: secrets for the redactor.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Whether a string was written `!unsafe` (never templated).
    pub fn is_unsafe(&self, text: &str) -> bool {
        self.unsafe_strings.contains(text)
    }

    /// The ciphertext of an inline `!vault` value, given its plaintext.
    pub fn inline_vault(&self, plaintext: &str) -> Option<&str> {
        self.inline_vaults.get(plaintext).map(String::as_str)
    }
}

impl Host {
    #[cfg(test)]
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

/// Ansible's `reconcile_inventory`, then each host's variables and each group's host order.
///
/// Variables, later overriding earlier (Ansible's default `VARIABLE_PRECEDENCE`): `all`'s
/// inventory vars, the other groups' inventory vars, `group_vars/all` beside each source then
/// beside the playbook, the other groups' `group_vars/` beside each source then beside the
/// playbook, the host's inventory vars, `host_vars/` beside each source then the playbook.
/// Groups are ordered by depth (longest path from `all`), `ansible_group_priority`, name.
/// Merging replaces whole values (`hash_behaviour=replace`).
fn resolve(
    mut raw: Raw,
    first: &Path,
    dirs: &[PathBuf],
    inventory_dirs: usize,
    files: &mut Files,
) -> Result<Inventory, InventoryError> {
    // Groups without a parent are children of `all`, in creation order.
    for g in 0..raw.groups.len() {
        if raw.groups[g].name != ALL && raw.groups[g].parents.is_empty() {
            let name = raw.groups[g].name.clone();
            raw.add_child(ALL, &name)
                .expect("a group without parents makes no cycle");
        }
    }
    let all = raw.group(ALL).expect("all exists");
    let ungrouped = raw.group(UNGROUPED).expect("ungrouped exists");
    let mut direct: Vec<Vec<usize>> = vec![Vec::new(); raw.hosts.len()];
    for (g, group) in raw.groups.iter().enumerate() {
        for &h in &group.hosts {
            direct[h].push(g);
        }
    }
    let mut host_groups: Vec<HashSet<usize>> = Vec::with_capacity(raw.hosts.len());
    for (h, groups) in direct.iter().enumerate() {
        let mut set: HashSet<usize> = HashSet::new();
        for &g in groups {
            set.insert(g);
            set.extend(raw.ancestors(g));
        }
        if set.contains(&ungrouped) && set.iter().any(|&g| g != all && g != ungrouped) {
            raw.groups[ungrouped].hosts.retain(|&x| x != h);
            set.remove(&ungrouped);
        } else if set.iter().all(|&g| g == all) {
            raw.groups[ungrouped].hosts.push(h);
            set.insert(ungrouped);
            set.insert(all);
        }
        set.insert(all);
        host_groups.push(set);
    }

    let depth = depths(&raw, all);
    let source: Arc<Path> = Arc::from(first);
    let (inventory, playbook) = dirs.split_at(inventory_dirs);
    let mut hosts = Vec::with_capacity(raw.hosts.len());
    for (h, rh) in raw.hosts.iter().enumerate() {
        let mut ordered: Vec<usize> = host_groups[h]
            .iter()
            .copied()
            .filter(|&g| g != all)
            .collect();
        ordered.sort_by(|&a, &b| {
            (depth[a], raw.groups[a].priority, &raw.groups[a].name).cmp(&(
                depth[b],
                raw.groups[b].priority,
                &raw.groups[b].name,
            ))
        });
        let mut vars = raw.groups[all].vars.clone();
        let merge = |vars: &mut Mapping, more: Mapping| {
            for (k, v) in more {
                vars.insert(k, v);
            }
        };
        for &g in &ordered {
            merge(&mut vars, raw.groups[g].vars.clone());
        }
        for layer in [inventory, playbook] {
            for dir in layer {
                merge(&mut vars, files.entity_vars(&dir.join("group_vars"), ALL)?);
            }
        }
        for layer in [inventory, playbook] {
            for dir in layer {
                for &g in &ordered {
                    merge(
                        &mut vars,
                        files.entity_vars(&dir.join("group_vars"), &raw.groups[g].name)?,
                    );
                }
            }
        }
        merge(&mut vars, rh.vars.clone());
        for layer in [inventory, playbook] {
            for dir in layer {
                merge(
                    &mut vars,
                    files.entity_vars(&dir.join("host_vars"), &rh.name)?,
                );
            }
        }
        let mut names: Vec<String> = host_groups[h]
            .iter()
            .map(|&g| raw.groups[g].name.clone())
            .collect();
        names.sort();
        hosts.push(Host {
            name: rh.name.clone(),
            groups: names,
            vars,
            source: Arc::from(rh.source.as_path()),
        });
    }
    let groups: Vec<Group> = (0..raw.groups.len())
        .map(|g| Group {
            name: raw.groups[g].name.clone(),
            hosts: raw.groups[g]
                .hosts
                .iter()
                .map(|&h| raw.hosts[h].name.clone())
                .collect(),
            children: raw.groups[g]
                .children
                .iter()
                .map(|&c| raw.groups[c].name.clone())
                .collect(),
            members: members(&raw, g),
        })
        .collect();
    let index = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i))
        .collect();
    let group_index = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.clone(), i))
        .collect();
    Ok(Inventory {
        source,
        hosts,
        index,
        groups,
        group_index,
        secrets: std::mem::take(&mut files.secrets),
        inline_vaults: std::mem::take(&mut files.inline),
        unsafe_strings: std::mem::take(&mut files.unsafe_strings),
    })
}

/// Each group's depth: the longest path from `all`.
fn depths(raw: &Raw, all: usize) -> Vec<usize> {
    fn visit(raw: &Raw, g: usize, d: usize, depth: &mut [usize]) {
        if depth[g] > d && d > 0 {
            return;
        }
        depth[g] = depth[g].max(d);
        for &c in &raw.groups[g].children {
            visit(raw, c, d + 1, depth);
        }
    }
    let mut depth = vec![0; raw.groups.len()];
    visit(raw, all, 0, &mut depth);
    depth
}

/// A group's hosts as Ansible's `Group.get_hosts`: the group itself, its children in order,
/// then further descendants level by level; each host once, in the order first met.
fn members(raw: &Raw, g: usize) -> Vec<usize> {
    let mut ordered = vec![g];
    ordered.extend(raw.groups[g].children.iter().copied());
    let mut seen: HashSet<usize> = ordered.iter().copied().collect();
    let mut level = ordered.clone();
    while !level.is_empty() {
        let mut next = Vec::new();
        for &p in &level {
            for &c in &raw.groups[p].children {
                if !seen.contains(&c) && !next.contains(&c) {
                    next.push(c);
                    ordered.push(c);
                }
            }
        }
        seen.extend(next.iter().copied());
        level = next;
    }
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    for kid in ordered {
        for &h in &raw.groups[kid].hosts {
            if taken.insert(h) {
                out.push(h);
            }
        }
    }
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
            "inv.yaml:3:5: group \"x\" includes itself: x -> all -> x"
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
                "inv.yaml:3:10: group \"web\": expected a mapping with hosts, vars or children, found True",
            ),
            (
                "all:\n  hosts:\n    true:\n",
                "inv.yaml:3:5: group \"all\": host pattern True must be a string; enclose integers and floats in quotation marks",
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
                "inv.yaml: not an inventory in a format Ansible reads:\n  yaml: inv.yaml:3:1: expected a single YAML document, found another one\n  ini: inv.yaml:1: Invalid host pattern 'all:' supplied, ending in ':' is not allowed, this character is reserved to provide a port.",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "parsing {text:?}");
        }
    }
}
