//! Playbooks: the Play/Task model and its loader (Ansible's YAML, unknown keys are errors).

pub mod loader;
pub mod model;

pub use loader::{load, parse, PlaybookError};
pub use model::{Cond, Play, Playbook, Task};
