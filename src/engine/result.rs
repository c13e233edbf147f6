//! What a run produced: per task and host a status with its diff, per host a recap.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::plan::DiffItem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub play: String,
    pub host: String,
    pub task: String,
    pub status: TaskStatus,
    pub changed: bool,
    /// Why nothing changed, why it was skipped, or what failed.
    pub msg: String,
    pub diffs: Vec<DiffItem>,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Output of a no_log task is withheld everywhere.
    #[serde(skip)]
    pub no_log: bool,
    pub handler: bool,
    /// Failed, and the task has `ignore_errors` (counted as ok and ignored, as Ansible does).
    #[serde(default)]
    pub ignored: bool,
    /// Failed inside a block whose `rescue` then ran (counted as rescued, not failed).
    #[serde(default)]
    pub rescued: bool,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HostRecap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
    pub round_trips: u64,
    /// Artifact bytes uploaded to the host or fetched by it.
    pub bytes_transferred: u64,
}

impl HostRecap {
    /// Count a result as Ansible's recap does: an ignored failure is ok and ignored, a
    /// rescued one only rescued.
    pub fn add_result(&mut self, r: &TaskResult) {
        match r.status {
            TaskStatus::Failed if r.rescued => self.rescued += 1,
            TaskStatus::Failed if r.ignored => {
                self.ok += 1;
                self.ignored += 1;
            }
            s => self.add(s),
        }
    }

    pub fn add(&mut self, status: TaskStatus) {
        match status {
            TaskStatus::Ok => self.ok += 1,
            TaskStatus::Changed => {
                self.ok += 1;
                self.changed += 1
            }
            TaskStatus::Skipped => self.skipped += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Unreachable => self.unreachable += 1,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct RunOutcome {
    pub check: bool,
    pub results: Vec<TaskResult>,
    pub recap: BTreeMap<String, HostRecap>,
    pub interrupted: bool,
    /// Plays that did not start because an earlier one failed, and why.
    pub stopped: Vec<String>,
    /// Each host's `register:` results at the end, for commands that act on them (never in
    /// the JSON report: they may hold secrets).
    #[serde(skip)]
    pub registered: BTreeMap<String, BTreeMap<String, minijinja::Value>>,
}

impl RunOutcome {
    pub fn any_failed(&self) -> bool {
        self.recap
            .values()
            .any(|r| r.failed > 0 || r.unreachable > 0)
    }
    pub fn any_changed(&self) -> bool {
        self.recap.values().any(|r| r.changed > 0)
    }
}
