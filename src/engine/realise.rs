//! `realise`: the one place where `--check` and a real apply part. Check simulates the
//! planned ops on the target's view (its overlay of planned changes); apply runs them with
//! the executor (or defers them to the host's batch), then the same simulation keeps the view
//! current. A command that really ran (in an apply, or under `--check` with
//! `check_mode: false`) refreshes what was read, never what is planned.

use super::conn::HostConn;
use super::executor;
use super::host::HostRunner;
use super::result::TaskStatus;
use super::step::Step;
use crate::modules::Module;
use crate::plan::{simulate, DiffItem, Op};
use crate::playbook::Task;
use crate::transport::{Become, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Plan only: `--check`, or a task with `check_mode: true`.
    Check,
    Apply,
}

/// The host a task's ops go to: its own, or the one it is delegated to.
pub(super) struct Target<'a> {
    pub name: &'a str,
    pub delegated: bool,
    pub become_: Option<&'a Become>,
}

impl HostRunner<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn realise(
        &self,
        task: &Task,
        module: &dyn Module,
        target: &Target,
        conn: &mut HostConn,
        ops: Vec<Op>,
        diffs: Vec<DiffItem>,
        mode: Mode,
    ) -> Step {
        match mode {
            Mode::Check => {
                if module.runs_commands() {
                    // Its outcome is known only by running it; what it would run is shown.
                    let mut s = Step::new(TaskStatus::Skipped, "check mode: command not run");
                    if module.changes_host() {
                        s.diffs = diffs;
                    }
                    return s;
                }
                // In a preview later tasks see the change; in a real run (a `check_mode: true`
                // task) it is never applied, so they must not.
                if self.run.opts.check {
                    simulate(&mut conn.view, &ops);
                }
                let mut s = Step::new(TaskStatus::Changed, "would change");
                s.diffs = diffs;
                s
            }
            Mode::Apply => self.apply(task, module, target, conn, ops, diffs),
        }
    }

    fn apply(
        &self,
        task: &Task,
        module: &dyn Module,
        target: &Target,
        conn: &mut HostConn,
        ops: Vec<Op>,
        diffs: Vec<DiffItem>,
    ) -> Step {
        // Only a real run defers: under --check a `check_mode: false` task is applied on the
        // spot, so that its change alone moves from planned to applied.
        let deferrable = !self.run.opts.check
            && !target.delegated
            && self.batchable(task)
            && ops.iter().all(Op::deferrable);
        if deferrable {
            simulate(&mut conn.view, &ops);
            let mut s = Step::new(TaskStatus::Changed, "changed");
            s.diffs = diffs;
            s.deferred = Some(ops);
            return s;
        }
        let transport: &mut dyn Transport = match conn.transport() {
            Ok(t) => t,
            Err(e) => return Step::new(TaskStatus::Unreachable, e),
        };
        let timeout = self.run.opts.command_timeout;
        let reporter = &self.run.reporter;
        let out = match executor::apply_reporting(
            transport,
            &ops,
            target.become_,
            timeout,
            &self.run.uploads,
            &mut |what, sent, total| reporter.transfer(target.name, what, sent, total),
            &mut |what, script| {
                if !task.no_log {
                    self.run.trace(target.name, what, script)
                }
            },
        ) {
            Ok(o) => o,
            Err(e) if e.is_unreachable() => {
                conn.unreachable = Some(e.to_string());
                return Step::new(TaskStatus::Unreachable, e.to_string());
            }
            Err(e) => {
                conn.view.refresh();
                return Step::new(TaskStatus::Failed, e.to_string());
            }
        };
        if ops.iter().any(|o| matches!(o, Op::Artifact(_))) {
            conn.bytes_transferred += crate::artifact::bytes_reported(&out.stdout);
        }
        let ran_command = ops.iter().any(|o| matches!(o, Op::Exec { .. }));
        if ran_command || !out.success() {
            // It may have changed anything it could read (a failed script: part of it).
            conn.view.refresh();
        } else {
            conn.view.record_applied(|view| simulate(view, &ops));
        }
        let status = match (out.success(), module.changes_host()) {
            (true, true) => TaskStatus::Changed,
            (true, false) => TaskStatus::Ok,
            (false, _) => TaskStatus::Failed,
        };
        // Housekeeping an install did first (temp files an interrupted install left): recorded.
        let stale = executor::stale_removed(&out.stdout);
        let msg = if out.success() && stale.is_empty() {
            "changed".to_string()
        } else if out.success() {
            format!("changed; {}", executor::stale_message(&stale))
        } else {
            let (stdout, stderr) = (out.stdout_lossy(), out.stderr_lossy());
            format!(
                "exit status {}: {}",
                out.status,
                if stderr.trim().is_empty() {
                    stdout.trim()
                } else {
                    stderr.trim()
                }
            )
        };
        let mut step = Step::new(status, msg);
        if status == TaskStatus::Changed || status == TaskStatus::Failed {
            step.diffs = diffs;
        }
        if ran_command {
            step.ran = Some(Box::new(out));
        }
        step
    }
}
