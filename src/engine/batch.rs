//! Batching of a host's consecutive file and unit changes: planned tasks wait in `pending`
//! and are applied together in one script, with a marker after each task, then reported in
//! task order. A task that will be skipped on the host needs nothing applied before it, and a
//! play whose batch is still pending at its end may hand it to the next play (see
//! `carry_or_flush`), so that consecutive plays' changes go out in one script.

use super::executor;
use super::host::HostRunner;
use super::result::{TaskResult, TaskStatus};
use super::step::Deferred;
use super::{PlayState, RunCx};
use crate::modules::ModuleArgs;
use crate::plan::Op;
use crate::playbook::{Body, Play, Task};

impl HostRunner<'_> {
    /// Whether a task's changes may wait for the next flush: file and unit changes whose
    /// outcome is known from the plan. Commands, cluster changes, loops, delegation,
    /// run_once, custom changed/failed conditions and ignore_errors need their own round trip.
    pub(super) fn batchable(&self, task: &Task) -> bool {
        let Some(module) = task.module() else {
            return false;
        };
        !module.runs_commands()
            && !matches!(
                module,
                ModuleArgs::KubeObject(_) | ModuleArgs::BootstrapToken(_)
            )
            && !crate::modules::controller_side(module)
            && task.until.is_none()
            && task.environment.is_empty()
            && task.delegate_to.is_none()
            && !task.run_once
            && task.loop_.is_none()
            && task.changed_when.is_none()
            && task.failed_when.is_none()
            && task.ignore_errors == crate::playbook::BoolKw::Lit(false)
    }

    pub(super) fn flush_unless_batchable(&self, task: &Task) -> Result<(), TaskStatus> {
        let same_become = self
            .pending
            .borrow()
            .iter()
            .rfind(|d| !d.ops.is_empty())
            .is_none_or(|d| d.become_ == self.become_for(task));
        if self.batchable(task) && same_become {
            return Ok(());
        }
        let waiting = self.pending.borrow().iter().any(|d| !d.ops.is_empty());
        if waiting && self.skipped_here(task) {
            // Nothing of it runs: the changes before it may wait for the next flush.
            return Ok(());
        }
        self.flush()
    }

    /// Whether `task` will be skipped on this host: its `when` is false, or its loop has no
    /// items. Flushing does not change what either depends on (variables, registered results
    /// and facts), so the answer here is the one the task gets when it runs. A condition that
    /// does not evaluate, or a loop with items (whose `when` may depend on the item), counts
    /// as not skipped.
    fn skipped_here(&self, task: &Task) -> bool {
        let Ok(ctx) = self.context(task, None) else {
            return false;
        };
        if let Some(l) = &task.loop_ {
            return crate::template::render_yaml(&self.run.templates, l, &ctx, "loop")
                .ok()
                .and_then(|v| v.try_iter().ok().map(|mut it| it.next().is_none()))
                .unwrap_or(false);
        }
        matches!(self.cond(&task.when, &ctx, "when"), Ok(Some(false)))
    }

    /// At the end of the play (its handlers run): hand the batch still pending to the host's
    /// next play, or apply it now. It is carried only where nothing a user sees changes: no
    /// `--check`, no interrupt; this play and the next are plain (no `serial`,
    /// `max_fail_percentage` or `any_errors_fatal`, so a failure found later counts as it
    /// would have here), the next play is this host's, right after this one, with no blocks
    /// or includes (a rescue there must not catch this play's failure) and no task delegated
    /// to this host (which would run before these changes), and every host of the next play
    /// runs it at once (`--forks` at least its hosts): else a host could wait for a fork with
    /// its changes held back while another host's task waits for what they do (the kubelets
    /// they start, say). The next play flushes it before its first task that runs something
    /// other than batched changes, at the latest at its end; its results are reported under
    /// this play.
    pub(super) fn carry_or_flush(&self) -> Result<(), TaskStatus> {
        if !self.may_carry() {
            return self.flush();
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        self.run
            .carried
            .lock()
            .expect("carried batches")
            .insert(self.host.to_string(), pending);
        Ok(())
    }

    /// A batch carried from the previous play becomes this play's first pending changes.
    pub(super) fn take_carried(&self) {
        let carried = self
            .run
            .carried
            .lock()
            .expect("carried batches")
            .remove(self.host);
        if let Some(c) = carried {
            *self.pending.borrow_mut() = c;
        }
    }

    fn may_carry(&self) -> bool {
        let (run, pi) = (self.run, self.state.play_index);
        if run.opts.check
            || run.is_interrupted()
            || self.state.aborted()
            || self.state.ended()
            || self.state.fatal()
            || !self.pending.borrow().iter().any(|d| !d.ops.is_empty())
        {
            return false;
        }
        let Some(next) = run.playbook.plays.get(pi + 1) else {
            return false;
        };
        let plain = |p: &Play| {
            p.serial.is_none()
                && p.max_fail_percentage.is_none()
                && p.any_errors_fatal.literal() == Some(false)
        };
        plain(self.play())
            && plain(next)
            && run.play_hosts[pi + 1].iter().any(|h| h == self.host)
            && run.play_hosts[pi + 1].len() <= run.opts.forks
            && next
                .tasks
                .iter()
                .chain(&next.handlers)
                .all(|t| match &t.body {
                    Body::Module(_) => !self.may_delegate_here(pi + 1, t),
                    Body::Meta(_) => true,
                    Body::Block(_) | Body::Ref(..) => false,
                })
    }

    /// Whether `task` of play `pi` may run delegated to this host (a `delegate_to` naming it,
    /// or one that does not render here).
    fn may_delegate_here(&self, pi: usize, task: &Task) -> bool {
        let Some(d) = &task.delegate_to else {
            return false;
        };
        if !d.contains("{{") && !d.contains("{%") {
            return d == self.host;
        }
        self.context_in(pi, task, None)
            .and_then(|ctx| {
                self.run
                    .templates
                    .render_str(d, &ctx, "delegate_to")
                    .map_err(|e| e.to_string())
            })
            .map_or(true, |t| t == self.host)
    }

    /// Keep a finished task's result behind the changes still to be applied, or report it.
    pub(super) fn defer_or_report(&self, result: TaskResult, ops: Option<Vec<Op>>, task: &Task) {
        let failed = matches!(result.status, TaskStatus::Failed | TaskStatus::Unreachable);
        if let Some(ops) = ops {
            let become_ = self.become_for(task);
            self.pending.borrow_mut().push(Deferred {
                play: self.state.play_index,
                result,
                ops,
                become_,
            });
        } else if !failed && !self.pending.borrow().is_empty() {
            self.pending.borrow_mut().push(Deferred {
                play: self.state.play_index,
                result,
                ops: Vec::new(),
                become_: None,
            });
        } else {
            if failed {
                // Changes planned before this failure are still applied, as they would
                // have been one by one.
                if self.flush().is_err() {
                    return;
                }
            }
            self.report(result);
        }
    }

    /// Apply every deferred change in one script, with a marker after each task, and report
    /// the tasks in order. On a failure the tasks after it were not attempted and are not
    /// reported; the host's view is dropped, since the host is now partly changed.
    pub(super) fn flush(&self) -> Result<(), TaskStatus> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(());
        }
        let tasks: Vec<executor::TaskOps> = pending
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.ops.is_empty())
            .map(|(i, d)| executor::TaskOps {
                marker: Some(i),
                ops: &d.ops,
            })
            .collect();
        let mut script = String::from(executor::SCRIPT_PRELUDE);
        script.push_str(&executor::batch_body(&tasks));
        script.push_str(&executor::dirs_sync(tasks.iter().flat_map(|t| t.ops)));
        let needs_apply = pending.iter().any(|d| !d.ops.is_empty());
        let become_ = pending
            .iter()
            .find(|d| !d.ops.is_empty())
            .and_then(|d| d.become_.clone());
        let outcome = if needs_apply {
            let slot = self.slot(self.host);
            let mut conn = slot.lock().expect("host slot");
            if pending.iter().any(|d| d.result.no_log) {
                self.run.trace(
                    self.host,
                    "apply",
                    "(hidden: a task in this batch has no_log)",
                );
            } else {
                self.run.trace(self.host, "apply", &script);
            }
            let result = match conn.transport() {
                Ok(t) => executor::run_script(
                    t,
                    &script,
                    become_.as_ref(),
                    self.run.opts.command_timeout,
                ),
                Err(e) => Err(crate::transport::TransportError::Connect {
                    addr: self.host.to_string(),
                    reason: e,
                    transient: false,
                }),
            };
            if matches!(&result, Ok(o) if o.success()) {
                // Deferred only in a real apply: what was planned is now on the host.
                conn.view.settle();
            } else {
                conn.view.forget_all();
            }
            if let Err(e) = &result {
                if e.is_unreachable() {
                    conn.unreachable = Some(e.to_string());
                }
            }
            Some(result)
        } else {
            None
        };
        let done: usize = match &outcome {
            Some(Ok(out)) => String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("@@ done "))
                .filter_map(|n| n.parse::<usize>().ok())
                .map(|n| n + 1)
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        let failed = match &outcome {
            None => None,
            Some(Ok(out)) if out.success() => None,
            Some(Ok(out)) => Some((
                TaskStatus::Failed,
                format!("exit status {}: {}", out.status, out.stderr_lossy().trim()),
            )),
            Some(Err(e)) => Some((
                if e.is_unreachable() {
                    TaskStatus::Unreachable
                } else {
                    TaskStatus::Failed
                },
                e.to_string(),
            )),
        };
        for (i, mut d) in pending.into_iter().enumerate() {
            match &failed {
                Some((status, msg)) if i >= done && !d.ops.is_empty() => {
                    d.result.status = *status;
                    d.result.changed = false;
                    d.result.msg = self.run.redactor.redact(msg);
                    self.report_from(d.play, d.result);
                    return Err(*status);
                }
                _ => self.report_from(d.play, d.result),
            }
        }
        Ok(())
    }

    pub(super) fn report(&self, result: TaskResult) {
        self.report_from(self.state.play_index, result);
    }

    /// Report a result of play `play` (this one, or the one a carried batch came from).
    fn report_from(&self, play: usize, mut result: TaskResult) {
        if result.status == TaskStatus::Failed && !result.ignored && self.flow.rescuing.get() > 0 {
            result.rescued = true;
        }
        self.run.reporter.task_done(&result);
        self.run.collect(play, result);
    }
}

/// Apply the batches carried into a play that did not start (the run was interrupted between
/// plays): they were planned and are applied, as a play's last batch is on an interrupt.
pub(super) fn flush_carried(run: &RunCx) {
    let carried = std::mem::take(&mut *run.carried.lock().expect("carried batches"));
    for (host, pending) in carried {
        let play = pending.first().map_or(0, |d| d.play);
        let state = PlayState::new(play, run.shared.clone());
        let runner = HostRunner {
            run,
            state: &state,
            host: &host,
            pending: std::cell::RefCell::new(pending),
            outputs: Default::default(),
            flow: Default::default(),
        };
        let _ = runner.flush();
    }
}
