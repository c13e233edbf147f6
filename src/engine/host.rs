//! One host's run of one play, as a pipeline: connect, lock and prefetch (one round trip),
//! the tasks, the handlers they notified, then the last flush of batched writes. The task
//! rules are in `task.rs`, batching in `batch.rs`, reads and the lock in `reads.rs`, and the
//! one place where check and apply part in `realise.rs`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use minijinja::Value;

use super::result::TaskStatus;
use super::step::Deferred;
use super::{PlayState, RunCx};
use crate::playbook::{Play, Task};

pub struct HostPlayOutcome {
    pub failed: bool,
    pub unreachable: bool,
}

pub struct HostRunner<'a> {
    pub run: &'a RunCx,
    pub state: &'a PlayState,
    pub host: &'a str,
    /// Results planned but not yet applied: consecutive file and unit tasks are applied
    /// together, in one round trip, in task order (see `batch.rs`).
    pub pending: RefCell<Vec<Deferred>>,
    /// Values the last planned module gave for `register` (e.g. the token it will use).
    pub outputs: RefCell<Vec<(String, Value)>>,
}

/// The two lists of a play a host runs: every task, then the handlers that were notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Tasks,
    Handlers,
}

impl HostRunner<'_> {
    pub fn run(&self) -> HostPlayOutcome {
        let play = self.play();
        let mut notified = BTreeSet::new();
        // Connecting happens on first use; the lock rides on the first read, so that a
        // no-op run stays one round trip per host.
        self.connect_lock_and_prefetch(&play.tasks, play.gather_facts);
        let ran = self
            .run_section(Section::Tasks, &play.tasks, &mut notified)
            .and_then(|()| self.run_section(Section::Handlers, &play.handlers, &mut notified))
            .and_then(|()| self.flush());
        let mut outcome = HostPlayOutcome {
            failed: false,
            unreachable: false,
        };
        if let Err(status) = ran {
            match status {
                TaskStatus::Unreachable => outcome.unreachable = true,
                _ => outcome.failed = true,
            }
            if play.any_errors_fatal {
                self.state.abort();
            }
        }
        outcome
    }

    /// Run one list in order; stops at the first failure that is not ignored.
    fn run_section(
        &self,
        section: Section,
        tasks: &[Task],
        notified: &mut BTreeSet<String>,
    ) -> Result<(), TaskStatus> {
        let play = self.play();
        for (i, task) in tasks.iter().enumerate() {
            if self.state.aborted() || self.run.is_interrupted() {
                break;
            }
            let runs = match section {
                Section::Tasks => self.run.opts.tags_allow(&task.tags, &play.tags),
                Section::Handlers => {
                    let name = task.name.clone().unwrap_or_default();
                    notified.contains(&name) || task.listen.iter().any(|l| notified.contains(l))
                }
            };
            if !runs {
                continue;
            }
            self.flush_unless_batchable(task)?;
            let index = (section == Section::Tasks).then_some(i);
            let status = self.run_task(task, index, section == Section::Handlers, notified);
            let ignored = status == TaskStatus::Failed && task.ignore_errors;
            if matches!(status, TaskStatus::Unreachable | TaskStatus::Failed) && !ignored {
                return Err(status);
            }
        }
        Ok(())
    }

    pub(super) fn play(&self) -> &Play {
        &self.run.playbook.plays[self.state.play_index]
    }

    pub(super) fn slot(&self, host: &str) -> Arc<Mutex<super::conn::HostConn>> {
        self.run
            .pool
            .get(host)
            .expect("every inventory host has a slot")
    }
}
