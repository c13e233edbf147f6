//! Control flow of one host's tasks, as Ansible runs them: a list in order, `block` with
//! `rescue` and `always` (`ansible_failed_task`/`ansible_failed_result` in the rescue),
//! dynamic `include_tasks` (loaded once per run, shared by every host), `meta`
//! (`flush_handlers`, `end_host`, `end_play`, `noop`) and the handlers that were notified.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::Value;

use super::host::HostRunner;
use super::result::{TaskResult, TaskStatus};
use crate::playbook::{Block, Body, Meta, Reference, Task};
use crate::template::render_yaml;

/// Why a list of tasks stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A task failed (not ignored, not rescued) or the host became unreachable.
    Failed(TaskStatus),
    EndHost,
    EndPlay,
}

/// What the flow keeps while a host runs its tasks.
#[derive(Default)]
pub struct FlowState {
    /// How many enclosing blocks have a `rescue` for what fails now.
    pub(super) rescuing: Cell<usize>,
    /// The last task that failed and its result, for `ansible_failed_task`/`_result`.
    pub(super) last_failed: RefCell<Option<(String, Value)>>,
    /// Parameters of the includes being run (loop item, `vars:` of the include).
    pub(super) params: RefCell<Vec<serde_yaml::Mapping>>,
    /// `--start-at-task` was reached (or not given).
    pub(super) started: Cell<bool>,
}

impl HostRunner<'_> {
    /// Run a list of tasks in order; stops at the first failure that is neither ignored
    /// nor rescued.
    pub(super) fn run_list(
        &self,
        tasks: &[Task],
        notified: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        self.run_list_as(tasks, false, notified)
    }

    fn run_list_as(
        &self,
        tasks: &[Task],
        handler: bool,
        notified: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        let play = self.play();
        for task in tasks {
            if self.state.aborted() || self.run.is_interrupted() {
                break;
            }
            if self.state.ended() {
                return Err(Stop::EndPlay);
            }
            match &task.body {
                Body::Block(b) => self.run_block(b, handler, notified)?,
                Body::Meta(m) => {
                    if !task.implicit && !self.run.opts.tags_allow(&task.tags, &play.tags) {
                        continue;
                    }
                    self.run_meta(*m, task, notified)?
                }
                Body::Ref(r, dirs) => self.run_include(task, r, dirs, handler, notified)?,
                Body::Module(_) => {
                    if !handler && !self.run.opts.tags_allow(&task.tags, &play.tags) {
                        continue;
                    }
                    if !handler && !self.reached(task) {
                        continue;
                    }
                    self.flush_unless_batchable(task).map_err(Stop::Failed)?;
                    let (status, ignored) = self.run_task(task, handler, notified);
                    if matches!(status, TaskStatus::Unreachable | TaskStatus::Failed) && !ignored {
                        return Err(Stop::Failed(status));
                    }
                }
            }
        }
        Ok(())
    }

    fn run_block(
        &self,
        b: &Block,
        handler: bool,
        notified: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        let rescuable = !b.rescue.is_empty();
        let flushed = |r: Result<(), Stop>| r.and_then(|()| self.flush().map_err(Stop::Failed));
        if rescuable {
            self.flow.rescuing.set(self.flow.rescuing.get() + 1);
        }
        let mut result = flushed(self.run_list_as(&b.block, handler, notified));
        if rescuable {
            self.flow.rescuing.set(self.flow.rescuing.get() - 1);
        }
        if rescuable && result == Err(Stop::Failed(TaskStatus::Failed)) {
            self.set_failed_vars();
            result = flushed(self.run_list_as(&b.rescue, handler, notified));
        }
        let ended = matches!(
            result,
            Err(Stop::EndHost | Stop::EndPlay | Stop::Failed(TaskStatus::Unreachable))
        );
        if !b.always.is_empty() && !ended {
            let always = flushed(self.run_list_as(&b.always, handler, notified));
            if result.is_ok() {
                result = always;
            }
        }
        result
    }

    /// As Ansible's nonpersistent facts: what failed, for the rescue's tasks.
    fn set_failed_vars(&self) {
        let Some((name, result)) = self.flow.last_failed.borrow().clone() else {
            return;
        };
        let mut task: BTreeMap<String, Value> = BTreeMap::new();
        task.insert("name".into(), Value::from(name));
        let slot = self.slot(self.host);
        let mut conn = slot.lock().expect("host slot");
        conn.registered
            .insert("ansible_failed_task".into(), Value::from(task));
        conn.registered
            .insert("ansible_failed_result".into(), result);
    }

    fn run_meta(
        &self,
        meta: Meta,
        task: &Task,
        notified: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        if task.when.is_some() {
            let ctx = self
                .context(task, None)
                .map_err(|e| self.report_failure(&task.display_name(), e))?;
            match self.cond(&task.when, &ctx, "meta when") {
                Ok(Some(false)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(self.report_failure(&task.display_name(), e)),
            }
        }
        match meta {
            Meta::Noop => Ok(()),
            // The handlers' changes join the host's pending batch after the tasks' before
            // them, so they still run in Ansible's order, and a later task plans on the view
            // they leave; what must run now (a command) flushes the batch as ever.
            Meta::FlushHandlers => self.run_notified(notified),
            Meta::EndHost => {
                self.flush().map_err(Stop::Failed)?;
                Err(Stop::EndHost)
            }
            Meta::EndPlay => {
                self.flush().map_err(Stop::Failed)?;
                self.state.end();
                Err(Stop::EndPlay)
            }
        }
    }

    /// The notified handlers, in the order the play lists them; each runs once per flush.
    /// Their batchable changes join the host's pending batch. One notification runs every
    /// handler of that name and every handler that listens to it; a handler notified by an
    /// earlier one in the list runs in this pass, by a later one in the next.
    pub(super) fn run_notified(&self, notified: &mut BTreeSet<String>) -> Result<(), Stop> {
        let before = std::mem::take(notified);
        for h in &self.play().handlers {
            let mut names = vec![h.display_name()];
            names.extend(h.name.iter().cloned());
            names.extend(h.listen.iter().cloned());
            if !names
                .iter()
                .any(|n| before.contains(n) || notified.contains(n))
            {
                continue;
            }
            for n in &names {
                notified.remove(n);
            }
            self.run_list_as(std::slice::from_ref(h), true, notified)?;
        }
        Ok(())
    }

    /// `include_tasks`: its file rendered per host (and per loop item), loaded once per run.
    fn run_include(
        &self,
        task: &Task,
        r: &Reference,
        dirs: &Arc<Vec<PathBuf>>,
        handler: bool,
        notified: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        let Reference::Tasks { file, .. } = r else {
            return Err(self.report_failure(
                &task.display_name(),
                "include_role is expanded when the playbook loads".into(),
            ));
        };
        let play = self.play();
        if !self.run.opts.tags_allow(&task.tags, &play.tags) {
            return Ok(());
        }
        let name = task.display_name();
        let ctx = self
            .context(task, None)
            .map_err(|e| self.report_failure(&name, e))?;
        match self.cond(&task.when, &ctx, &format!("task {name:?} when")) {
            Ok(Some(false)) => {
                self.report_skip(task);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(self.report_failure(&name, e)),
        }
        let loop_var = task.loop_var.clone().unwrap_or_else(|| "item".into());
        let items: Vec<Option<Value>> = match &task.loop_ {
            None => vec![None],
            Some(l) => {
                let v = render_yaml(&self.run.templates, l, &ctx, "loop")
                    .map_err(|e| self.report_failure(&name, e.to_string()))?;
                match v.try_iter() {
                    Ok(it) => it.map(Some).collect(),
                    Err(_) => {
                        return Err(
                            self.report_failure(&name, format!("loop: expected a list, got {v}"))
                        )
                    }
                }
            }
        };
        for item in items {
            let mut params = task.vars.clone();
            if let Some(item) = &item {
                let yaml = serde_yaml::to_value(item).unwrap_or(serde_yaml::Value::Null);
                params.insert(loop_var.clone().into(), yaml);
            }
            let ctx = match &item {
                None => ctx.clone(),
                Some(i) => crate::vars::with(&ctx, BTreeMap::from([(loop_var.clone(), i.clone())])),
            };
            let file = self
                .run
                .templates
                .render_str(file, &ctx, "include_tasks")
                .map_err(|e| self.report_failure(&name, e.to_string()))?;
            let tasks = self
                .run
                .include(&file, dirs, task.role.clone())
                .map_err(|e| self.report_failure(&name, e))?;
            self.flow.params.borrow_mut().push(params);
            let r = self.run_list_as(&tasks, handler, notified);
            self.flow.params.borrow_mut().pop();
            r?;
        }
        Ok(())
    }

    /// Report a failure of the flow itself (a condition that cannot be evaluated, an
    /// include that does not load) as the task's result.
    pub(super) fn report_failure(&self, task: &str, msg: String) -> Stop {
        let _ = self.flush();
        let result = TaskResult {
            play: self.play().display_name(),
            host: self.host.to_string(),
            task: task.to_string(),
            status: TaskStatus::Failed,
            changed: false,
            msg: self.run.redactor.redact(&msg),
            diffs: Vec::new(),
            duration: std::time::Duration::ZERO,
            no_log: false,
            handler: false,
            ignored: false,
            rescued: false,
        };
        *self.flow.last_failed.borrow_mut() = Some((
            task.to_string(),
            Value::from(BTreeMap::from([
                ("failed".to_string(), Value::from(true)),
                ("msg".to_string(), Value::from(msg)),
            ])),
        ));
        self.report(result);
        Stop::Failed(TaskStatus::Failed)
    }

    fn report_skip(&self, task: &Task) {
        let result = TaskResult {
            play: self.play().display_name(),
            host: self.host.to_string(),
            task: task.display_name(),
            status: TaskStatus::Skipped,
            changed: false,
            msg: "conditional result was false".into(),
            diffs: Vec::new(),
            duration: std::time::Duration::ZERO,
            no_log: false,
            handler: false,
            ignored: false,
            rescued: false,
        };
        self.defer_or_report(result, None, task);
    }

    /// Whether `--start-at-task` was reached: at the first task of that name (with or
    /// without its role's prefix), and from then on.
    fn reached(&self, task: &Task) -> bool {
        let Some(want) = &self.run.opts.start_at_task else {
            return true;
        };
        if !self.flow.started.get()
            && (task.name.as_deref() == Some(want.as_str()) || task.display_name() == *want)
        {
            self.flow.started.set(true);
        }
        self.flow.started.get()
    }

    /// The host's variables outside any task (for play keywords).
    pub(super) fn play_context(&self) -> Result<Value, String> {
        self.context(super::step::dummy_task(), None)
    }
}
