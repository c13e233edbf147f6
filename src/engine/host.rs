//! One host's run of one play, as a pipeline: connect, lock and prefetch (one round trip),
//! the tasks, the handlers they notified, then the last flush of batched writes. Blocks,
//! includes, meta and handler flushes are in `flow.rs`; the task
//! rules are in `task.rs`, batching in `batch.rs`, reads and the lock in `reads.rs`, and the
//! one place where check and apply part in `realise.rs`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use minijinja::Value;

use super::flow::Stop;
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
    /// Control-flow state of the host's run (blocks, includes): see `flow.rs`.
    pub flow: super::flow::FlowState,
}

impl HostRunner<'_> {
    pub fn run(&self) -> HostPlayOutcome {
        let play = self.play();
        self.take_carried();
        let mut notified = BTreeSet::new();
        let fatal = match self.play_context() {
            Ok(ctx) => play
                .any_errors_fatal
                .resolve(&self.run.templates, &ctx, "any_errors_fatal"),
            Err(e) => Err(e),
        };
        let mut outcome = HostPlayOutcome {
            failed: false,
            unreachable: false,
        };
        let fatal = match fatal {
            Ok(f) => f,
            Err(msg) => {
                self.report_failure("any_errors_fatal", msg);
                outcome.failed = true;
                return outcome;
            }
        };
        if fatal {
            self.state.set_fatal();
        }
        // Connecting happens on first use; the lock rides on the first read, so that a
        // no-op run stays one round trip per host.
        let all: Vec<&Task> = play.all_tasks();
        self.connect_lock_and_prefetch(&all, play.gather_facts);
        let ran = self
            .run_list(&play.tasks, &mut notified)
            // The handlers' changes join the tasks' in the same batch, which may go on into
            // the next play's.
            .and_then(|()| self.run_notified(&mut notified))
            .and_then(|()| self.carry_or_flush().map_err(Stop::Failed));
        match ran {
            Ok(()) | Err(Stop::EndHost) | Err(Stop::EndPlay) => {
                // Ended on purpose: what was planned is applied, the host did not fail.
                if self.flush().is_err() {
                    outcome.failed = true;
                }
            }
            Err(Stop::Failed(TaskStatus::Unreachable)) => outcome.unreachable = true,
            Err(Stop::Failed(_)) => outcome.failed = true,
        }
        if (outcome.failed || outcome.unreachable) && fatal {
            self.state.abort();
        }
        outcome
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
