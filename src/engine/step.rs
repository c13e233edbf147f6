//! What running a task gives, before the rules of its task and its place in the report apply:
//! `Step` (one module execution on one host) and `Deferred` (a result waiting for the flush that
//! applies its ops). A leaf of the engine, so that the per-host modules (the pipeline, task
//! rules, reads, realise, batching) all depend on it and never on each other in a circle.

use std::collections::BTreeMap;

use minijinja::Value;

use super::result::{TaskResult, TaskStatus};
use crate::plan::{DiffItem, Op};
use crate::playbook::Task;
use crate::transport::{Become, ExecOutput};

/// What one execution of a module on one host gave.
pub(super) struct Step {
    pub(super) status: TaskStatus,
    pub(super) msg: String,
    pub(super) diffs: Vec<DiffItem>,
    pub(super) registered: BTreeMap<String, Value>,
    /// Planned and simulated, to be applied with the next flush of the host's batch.
    pub(super) deferred: Option<Vec<crate::plan::Op>>,
    /// What a command printed, when one ran: its result follows the command rules.
    pub(super) ran: Option<Box<ExecOutput>>,
}

impl Step {
    pub(super) fn new(status: TaskStatus, msg: impl Into<String>) -> Step {
        let mut registered = BTreeMap::new();
        registered.insert("changed".into(), Value::from(status == TaskStatus::Changed));
        registered.insert("failed".into(), Value::from(status == TaskStatus::Failed));
        registered.insert("skipped".into(), Value::from(status == TaskStatus::Skipped));
        let msg = msg.into();
        registered.insert("msg".into(), Value::from(msg.clone()));
        Step {
            status,
            msg,
            diffs: Vec::new(),
            registered,
            deferred: None,
            ran: None,
        }
    }
    pub(super) fn set(&mut self, key: &str, v: Value) {
        self.registered.insert(key.into(), v);
    }
    pub(super) fn value(&self) -> Value {
        Value::from(self.registered.clone())
    }
}

/// A task's result waiting for the flush that applies its ops (none: it only keeps its place
/// in the report's order).
pub struct Deferred {
    pub(super) result: TaskResult,
    pub(super) ops: Vec<Op>,
    pub(super) become_: Option<Become>,
}

/// A stand-in task for reads made before any task runs (the become of the first task).
/// Parsed once per process: it is asked for by every host in every play, and parsing a playbook
/// (YAML, and the loader's checks, which compile regexes) per call cost each host's thread
/// tens of kilobytes and a millisecond of CPU.
pub(super) fn dummy_task() -> Task {
    static DUMMY: std::sync::LazyLock<Task> = std::sync::LazyLock::new(|| {
        crate::playbook::parse(
            "- hosts: all\n  tasks: [{command: 'true'}]\n",
            std::path::Path::new("-"),
        )
        .expect("static playbook")
        .plays
        .remove(0)
        .tasks
        .remove(0)
    });
    DUMMY.clone()
}
