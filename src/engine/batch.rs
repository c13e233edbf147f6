//! Batching of a host's consecutive file and unit changes: planned tasks wait in `pending`
//! and are applied together in one script, with a marker after each task, then reported in
//! task order.

use super::executor;
use super::host::HostRunner;
use super::result::{TaskResult, TaskStatus};
use super::step::Deferred;
use crate::modules::ModuleArgs;
use crate::plan::Op;
use crate::playbook::Task;

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
            Ok(())
        } else {
            self.flush()
        }
    }

    /// Keep a finished task's result behind the changes still to be applied, or report it.
    pub(super) fn defer_or_report(&self, result: TaskResult, ops: Option<Vec<Op>>, task: &Task) {
        let failed = matches!(result.status, TaskStatus::Failed | TaskStatus::Unreachable);
        if let Some(ops) = ops {
            let become_ = self.become_for(task);
            self.pending.borrow_mut().push(Deferred {
                result,
                ops,
                become_,
            });
        } else if !failed && !self.pending.borrow().is_empty() {
            self.pending.borrow_mut().push(Deferred {
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
                    self.report(d.result);
                    return Err(*status);
                }
                _ => self.report(d.result),
            }
        }
        Ok(())
    }

    pub(super) fn report(&self, mut result: TaskResult) {
        if result.status == TaskStatus::Failed && !result.ignored && self.flow.rescuing.get() > 0 {
            result.rescued = true;
        }
        self.run.reporter.task_done(&result);
        self.run.collect(result);
    }
}
