//! Playbooks: the Play/Task model and its loader (Ansible's YAML, unknown keys are errors);
//! roles, imports and blocks are expanded when the playbook loads.

pub mod expand;
pub mod kv;
pub mod list;
pub mod loader;
pub mod model;
pub mod roles;
pub mod task;

pub use loader::{load_with, parse, PlaybookError};
pub use model::{BoolKw, Cond, Play, Playbook};
pub use task::{Block, Body, Meta, Reference, RoleCx, Task};
