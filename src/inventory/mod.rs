//! The inventory as Ansible reads it: YAML and INI files, directories of them, several `-i`
//! sources, `group_vars/`/`host_vars/`, vault, host ranges, variable precedence, host patterns.
//!
//! `sources` reads each `-i` (trying `yaml` then `ini`) into `raw`, `files` reads vars files
//! and decrypts vaults, `model` resolves membership, host order and precedence, `pattern`
//! selects hosts, `output` renders what `ansible-inventory` prints.

mod connection;
mod error;
mod files;
mod ini;
mod model;
mod output;
mod pattern;
mod pylit;
mod range;
mod raw;
mod sources;
mod yaml;

pub use error::InventoryError;
pub use model::{Host, Inventory, LoadOptions};
pub use output::{graph, host_json, list_json};

#[cfg(test)]
mod fixtures;
