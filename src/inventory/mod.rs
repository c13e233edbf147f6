//! The inventory: Ansible's YAML inventory format, host ranges, variable precedence, host patterns.
//!
//! `Inventory::load` reads a file (`loader` walks the YAML keeping positions for errors,
//! `range` expands `worker-[01:50]`), `model` resolves group membership and variable
//! precedence, and `pattern` implements `Inventory::select` for play `hosts:` and `--limit`.

mod connection;
mod error;
mod loader;
mod model;
mod pattern;
mod range;

pub use error::{InventoryError, Place};
pub use model::{Host, Inventory, ALL, UNGROUPED};

#[cfg(test)]
mod fixtures;
