//! One host's run of one play: its tasks in order, then the handlers it notified. Planning is
//! done by the modules against the host's view; applying (skipped in --check) by the executor.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minijinja::Value;

use super::result::{TaskResult, TaskStatus};
use super::{executor, PlayState, RunCx};
use crate::hoststate::{parse_reads, reads_script, HostView, Read};
use crate::modules::{Module, ResolveCx};
use crate::plan::{simulate, DiffItem, Op, Planned};
use crate::playbook::{Cond, Task};
use crate::template::render_yaml;
use crate::transport::{Become, Transport};
use crate::vars::{context, Scope};

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

pub struct HostPlayOutcome {
    pub failed: bool,
    pub unreachable: bool,
}

/// What one execution of a module on one host gave.
struct Step {
    status: TaskStatus,
    msg: String,
    diffs: Vec<DiffItem>,
    registered: BTreeMap<String, Value>,
    /// Planned and simulated, to be applied with the next flush of the host's batch.
    deferred: Option<Vec<Op>>,
}

impl Step {
    fn new(status: TaskStatus, msg: impl Into<String>) -> Step {
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
        }
    }
    fn set(&mut self, key: &str, v: Value) {
        self.registered.insert(key.into(), v);
    }
    fn value(&self) -> Value {
        Value::from(self.registered.clone())
    }
}

pub struct HostRunner<'a> {
    pub run: &'a RunCx,
    pub state: &'a PlayState,
    pub host: &'a str,
    /// Results planned but not yet applied: consecutive file and unit tasks are applied
    /// together, in one round trip, in task order (see `flush`).
    pub pending: RefCell<Vec<Deferred>>,
    /// Values the last planned module gave for `register` (e.g. the token it will use).
    pub outputs: RefCell<Vec<(String, Value)>>,
}

pub struct Deferred {
    result: TaskResult,
    ops: Vec<Op>,
    become_: Option<Become>,
}

impl HostRunner<'_> {
    pub fn run(&self) -> HostPlayOutcome {
        let play = &self.run.playbook.plays[self.state.play_index];
        let mut notified: BTreeSet<String> = BTreeSet::new();
        let mut outcome = HostPlayOutcome {
            failed: false,
            unreachable: false,
        };
        self.prefetch(&play.tasks, play.gather_facts);
        let fail = |status: TaskStatus, outcome: &mut HostPlayOutcome, fatal: bool| {
            match status {
                TaskStatus::Unreachable => outcome.unreachable = true,
                _ => outcome.failed = true,
            }
            if fatal {
                self.state.abort();
            }
        };
        for (i, task) in play.tasks.iter().enumerate() {
            if self.state.aborted() || self.run.is_interrupted() {
                break;
            }
            if !self.run.opts.tags_allow(&task.tags, &play.tags) {
                continue;
            }
            if let Err(status) = self.flush_unless_batchable(task) {
                fail(status, &mut outcome, play.any_errors_fatal);
                return outcome;
            }
            let status = self.run_task(task, Some(i), false, &mut notified);
            match status {
                TaskStatus::Unreachable | TaskStatus::Failed
                    if !(status == TaskStatus::Failed && task.ignore_errors) =>
                {
                    fail(status, &mut outcome, play.any_errors_fatal);
                    return outcome;
                }
                _ => {}
            }
        }
        for handler in &play.handlers {
            if self.state.aborted() || self.run.is_interrupted() {
                break;
            }
            let name = handler.name.clone().unwrap_or_default();
            if notified.contains(&name) || handler.listen.iter().any(|l| notified.contains(l)) {
                if let Err(status) = self.flush_unless_batchable(handler) {
                    fail(status, &mut outcome, play.any_errors_fatal);
                    return outcome;
                }
                let status = self.run_task(handler, None, true, &mut notified);
                match status {
                    TaskStatus::Unreachable | TaskStatus::Failed
                        if !(status == TaskStatus::Failed && handler.ignore_errors) =>
                    {
                        fail(status, &mut outcome, play.any_errors_fatal);
                        return outcome;
                    }
                    _ => {}
                }
            }
        }
        if let Err(status) = self.flush() {
            fail(status, &mut outcome, play.any_errors_fatal);
        }
        outcome
    }

    /// Whether a task's changes may wait for the next flush: file and unit changes whose
    /// outcome is known from the plan. Commands, loops, delegation, run_once, custom
    /// changed/failed conditions and ignore_errors need their own round trip.
    fn batchable(&self, task: &Task) -> bool {
        !task.module.runs_commands()
            && task.delegate_to.is_none()
            && !task.run_once
            && task.loop_.is_none()
            && task.changed_when.is_none()
            && task.failed_when.is_none()
            && !task.ignore_errors
    }

    fn flush_unless_batchable(&self, task: &Task) -> Result<(), TaskStatus> {
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

    /// Apply every deferred change in one script, with a marker after each task, and report
    /// the tasks in order. On a failure the tasks after it were not attempted and are not
    /// reported; the host's view is dropped, since the host is now partly changed.
    fn flush(&self) -> Result<(), TaskStatus> {
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
            if !matches!(&result, Ok(o) if o.success()) {
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

    fn report(&self, result: TaskResult) {
        self.run.reporter.task_done(&result);
        self.run.collect(result);
    }

    fn slot(&self, host: &str) -> Arc<Mutex<super::conn::HostConn>> {
        self.run
            .pool
            .get(host)
            .expect("every inventory host has a slot")
    }

    fn become_for(&self, task: &Task) -> Option<Become> {
        let play = &self.run.playbook.plays[self.state.play_index];
        let host = self.run.inventory.host(self.host);
        let inv_become = host.and_then(|h| h.become_().ok()).unwrap_or(false);
        let on = task.become_.or(play.become_).unwrap_or(inv_become);
        on.then(|| Become {
            user: task
                .become_user
                .clone()
                .or_else(|| play.become_user.clone())
                .or_else(|| host.and_then(|h| h.become_user().ok().flatten())),
        })
    }

    fn context(&self, task: &Task, item: Option<&Value>) -> Result<Value, String> {
        let play = &self.run.playbook.plays[self.state.play_index];
        let slot = self.slot(self.host);
        let conn = slot.lock().expect("host slot");
        let empty = serde_yaml::Mapping::new();
        let inventory = self
            .run
            .inventory
            .host(self.host)
            .map(|h| &h.vars)
            .unwrap_or(&empty);
        context(
            &self.run.templates,
            &self.run.shared,
            &Scope {
                host: self.host,
                inventory,
                play_vars: &play.vars,
                task_vars: &task.vars,
                facts: conn.view.facts(),
                registered: &conn.registered,
                item,
            },
        )
        .map_err(|e| e.to_string())
    }

    /// Read in one round trip what this host's tasks will need, before the first task runs.
    fn prefetch(&self, tasks: &[Task], gather_facts: bool) {
        let play = &self.run.playbook.plays[self.state.play_index];
        let mut reads = Vec::new();
        if gather_facts {
            reads.push(Read::Facts);
        }
        for task in tasks.iter().chain(&play.handlers) {
            if task.delegate_to.is_some() || task.loop_.is_some() {
                continue;
            }
            if let Ok(ctx) = self.context(task, None) {
                let what = format!("task {:?}", task.display_name());
                let cx = ResolveCx {
                    templates: &self.run.templates,
                    vars: &ctx,
                    base_dir: &self.run.base_dir,
                    what: &what,
                };
                // A task whose arguments need results of earlier tasks reads when it runs.
                if let Ok(r) = task.module.reads(&cx) {
                    reads.extend(r);
                }
            }
        }
        let become_ = self.become_for(tasks.first().unwrap_or(&dummy_task()));
        let slot = self.slot(self.host);
        let mut conn = slot.lock().expect("host slot");
        let _ = fetch_into(
            self.run,
            self.host,
            &mut conn,
            &reads,
            become_.as_ref(),
            self.run.opts.command_timeout,
        );
        if gather_facts {
            conn.facts_gathered = true;
        }
    }

    fn resolve(&self, task: &Task, ctx: &Value) -> Result<Box<dyn Module>, String> {
        let what = format!("task {:?}", task.display_name());
        task.module
            .resolve(&ResolveCx {
                templates: &self.run.templates,
                vars: ctx,
                base_dir: &self.run.base_dir,
                what: &what,
            })
            .map_err(|e| e.to_string())
    }

    fn cond(&self, cond: &Option<Cond>, ctx: &Value, what: &str) -> Result<Option<bool>, String> {
        let Some(Cond(exprs)) = cond else {
            return Ok(None);
        };
        for e in exprs {
            if !self
                .run
                .templates
                .eval_bool(e, ctx, what)
                .map_err(|e| e.to_string())?
            {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    }

    /// Run a task (all its loop items) and report it. Returns its overall status.
    fn run_task(
        &self,
        task: &Task,
        index: Option<usize>,
        handler: bool,
        notified: &mut BTreeSet<String>,
    ) -> TaskStatus {
        let started = Instant::now();
        let name = task.display_name();
        self.run.reporter.task_start(self.host, &name);
        let (step, ran_here) = match (task.run_once, index) {
            (true, Some(i)) => {
                let cell = self.state.run_once_cell(i);
                let mut guard = cell.lock().expect("run_once cell");
                match &*guard {
                    Some((host, status, value)) => {
                        let mut s = Step::new(
                            if *status == TaskStatus::Failed {
                                TaskStatus::Failed
                            } else {
                                TaskStatus::Ok
                            },
                            format!("run_once: ran on {host}"),
                        );
                        s.registered = value_map(value);
                        (s, false)
                    }
                    None => {
                        let s = self.run_items(task);
                        *guard = Some((self.host.to_string(), s.status, s.value()));
                        (s, true)
                    }
                }
            }
            _ => (self.run_items(task), true),
        };
        let _ = ran_here;
        if let Some(reg) = &task.register {
            let slot = self.slot(self.host);
            slot.lock()
                .expect("host slot")
                .registered
                .insert(reg.clone(), step.value());
        }
        if step.status == TaskStatus::Changed {
            notified.extend(task.notify.iter().cloned());
        }
        let redact = |s: &str| self.run.redactor.redact(s);
        let result = TaskResult {
            play: self.run.playbook.plays[self.state.play_index].display_name(),
            host: self.host.to_string(),
            task: name,
            status: step.status,
            changed: step.status == TaskStatus::Changed,
            msg: if task.no_log && step.status != TaskStatus::Skipped {
                NO_LOG_MSG.into()
            } else {
                redact(&step.msg)
            },
            diffs: if task.no_log {
                Vec::new()
            } else {
                step.diffs
                    .into_iter()
                    .map(|d| DiffItem {
                        before: redact(&d.before),
                        after: redact(&d.after),
                        subject: redact(&d.subject),
                        secret: d.secret,
                    })
                    .collect()
            },
            duration: started.elapsed(),
            no_log: task.no_log,
            handler,
        };
        let status = result.status;
        let failed = matches!(status, TaskStatus::Failed | TaskStatus::Unreachable);
        if let Some(ops) = step.deferred {
            let become_ = self.become_for(task);
            self.pending.borrow_mut().push(Deferred {
                result,
                ops,
                become_,
            });
        } else if !failed && !self.pending.borrow().is_empty() {
            // Keep the report in task order behind the changes still to be applied.
            self.pending.borrow_mut().push(Deferred {
                result,
                ops: Vec::new(),
                become_: None,
            });
        } else {
            if failed {
                // Changes planned before this failure are still applied, as they would
                // have been one by one.
                if let Err(s) = self.flush() {
                    return s;
                }
            }
            self.report(result);
        }
        status
    }

    fn run_items(&self, task: &Task) -> Step {
        let base = match self.context(task, None) {
            Ok(c) => c,
            Err(e) => return Step::new(TaskStatus::Failed, e),
        };
        let Some(loop_) = &task.loop_ else {
            return self.run_one(task, &base, None);
        };
        let items = match render_yaml(&self.run.templates, loop_, &base, "loop") {
            Ok(v) => v,
            Err(e) => return Step::new(TaskStatus::Failed, e.to_string()),
        };
        let Ok(iter) = items.try_iter() else {
            return Step::new(
                TaskStatus::Failed,
                format!("loop: expected a list, got {items}"),
            );
        };
        let mut results = Vec::new();
        let mut agg = Step::new(TaskStatus::Skipped, "no items");
        let mut msgs = Vec::new();
        for item in iter {
            let ctx = match self.context(task, Some(&item)) {
                Ok(c) => c,
                Err(e) => return Step::new(TaskStatus::Failed, e),
            };
            let mut s = self.run_one(task, &ctx, Some(&item));
            s.set("item", item.clone());
            agg.status = worst(agg.status, s.status);
            msgs.push(format!("{item}: {}", s.msg));
            agg.diffs.append(&mut s.diffs);
            results.push(s.value());
            if s.status == TaskStatus::Failed || s.status == TaskStatus::Unreachable {
                break;
            }
        }
        let mut out = Step::new(agg.status, msgs.join("; "));
        out.diffs = agg.diffs;
        out.set("results", Value::from(results));
        out
    }

    fn run_one(&self, task: &Task, ctx: &Value, _item: Option<&Value>) -> Step {
        let what = format!("task {:?}", task.display_name());
        match self.cond(&task.when, ctx, &format!("{what} when")) {
            Err(e) => return Step::new(TaskStatus::Failed, e),
            Ok(Some(false)) => {
                return Step::new(TaskStatus::Skipped, "conditional result was false")
            }
            _ => {}
        }
        let module = match self.resolve(task, ctx) {
            Ok(m) => m,
            Err(e) => return Step::new(TaskStatus::Failed, e),
        };
        // Before anything can print them.
        for secret in module.secrets() {
            self.run.redactor.register(&secret);
        }
        let mut step = self.run_module(task, ctx, &*module);
        for (k, v) in std::mem::take(&mut *self.outputs.borrow_mut()) {
            step.set(&k, v);
        }
        step
    }

    /// Plan `module` on its target host and apply (or, in --check, simulate) the change.
    fn run_module(&self, task: &Task, ctx: &Value, module: &dyn Module) -> Step {
        let what = format!("task {:?}", task.display_name());
        let target = match &task.delegate_to {
            None => self.host.to_string(),
            Some(d) => match self.run.templates.render_str(d, ctx, "delegate_to") {
                Ok(t) if self.run.pool.get(&t).is_some() => t,
                Ok(t) => {
                    return Step::new(
                        TaskStatus::Failed,
                        format!("delegate_to: {t:?} is not a host of the inventory"),
                    )
                }
                Err(e) => return Step::new(TaskStatus::Failed, e.to_string()),
            },
        };
        let delegated = target != self.host;
        let become_ = self.become_for(task);
        let timeout = self.run.opts.command_timeout;
        let slot = self.slot(&target);
        let mut conn = slot.lock().expect("host slot");
        // A delegated task plans against a fresh read of the delegate, not this host's overlay.
        let mut scratch = HostView::new();
        let reads = module.reads();
        if delegated {
            if let Err(s) = fetch_view(
                self.run,
                &target,
                &mut conn,
                &mut scratch,
                &reads,
                become_.as_ref(),
                timeout,
            ) {
                return s;
            }
        } else if let Err(s) = fetch_into(
            self.run,
            self.host,
            &mut conn,
            &reads,
            become_.as_ref(),
            timeout,
        ) {
            return s;
        }
        let view = if delegated { &scratch } else { &conn.view };
        let planned = match module.plan(view) {
            Ok(p) => p,
            Err(e) => return Step::new(TaskStatus::Failed, e.to_string()),
        };
        let outputs = module.output(view);
        for (k, v) in &outputs {
            if let Some(text) = v.as_str().filter(|_| crate::secret::is_secret_name(k)) {
                self.run.redactor.register(text);
            }
        }
        *self.outputs.borrow_mut() = outputs;
        let (ops, diffs) = match planned {
            Planned::NoChange { reason } => return Step::new(TaskStatus::Ok, reason),
            Planned::Change { ops, diffs } => (ops, diffs),
        };
        if task.check_mode.unwrap_or(self.run.opts.check) {
            if module.runs_commands() {
                return Step::new(TaskStatus::Skipped, "check mode: command not run");
            }
            if !delegated {
                simulate(&mut conn.view, &ops);
            }
            let mut s = Step::new(TaskStatus::Changed, "would change");
            s.diffs = diffs;
            return s;
        }
        let runs_command = ops.iter().any(|o| matches!(o, Op::Exec { .. }));
        if !delegated && self.batchable(task) && !runs_command {
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
        for op in ops.iter().filter(|_| !task.no_log) {
            if let Op::Exec { command, chdir } = op {
                self.run
                    .trace(self.host, "command", &executor::exec_script(command, chdir));
            } else {
                self.run.trace(
                    self.host,
                    "apply",
                    &executor::ops_script(std::slice::from_ref(op)),
                );
            }
        }
        let out = match executor::apply(transport, &ops, become_.as_ref(), timeout) {
            Ok(o) => o,
            Err(e) if e.is_unreachable() => {
                conn.unreachable = Some(e.to_string());
                return Step::new(TaskStatus::Unreachable, e.to_string());
            }
            Err(e) => return Step::new(TaskStatus::Failed, e.to_string()),
        };
        let ran_command = ops.iter().any(|o| matches!(o, Op::Exec { .. }));
        if ran_command {
            conn.view.forget_all();
        } else if !delegated {
            simulate(&mut conn.view, &ops);
        }
        drop(conn);
        let mut status = match (out.success(), module.changes_host()) {
            (true, true) => TaskStatus::Changed,
            (true, false) => TaskStatus::Ok,
            (false, _) => TaskStatus::Failed,
        };
        let stdout = out.stdout_lossy();
        let stderr = out.stderr_lossy();
        let mut msg = if out.success() {
            "changed".to_string()
        } else {
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
        let mut step = Step::new(status, msg.clone());
        if ran_command {
            step.set("rc", Value::from(out.status));
            step.set("stdout", Value::from(stdout.trim_end_matches('\n')));
            step.set("stderr", Value::from(stderr.trim_end_matches('\n')));
            step.set(
                "stdout_lines",
                Value::from(stdout.lines().map(str::to_string).collect::<Vec<_>>()),
            );
            step.set(
                "stderr_lines",
                Value::from(stderr.lines().map(str::to_string).collect::<Vec<_>>()),
            );
            let mut rctx: BTreeMap<String, Value> = BTreeMap::new();
            if let Ok(iter) = ctx.try_iter() {
                for k in iter {
                    if let (Some(key), Ok(v)) = (k.as_str(), ctx.get_item(&k)) {
                        rctx.insert(key.to_string(), v);
                    }
                }
            }
            for (k, v) in &step.registered {
                rctx.insert(k.clone(), v.clone());
            }
            rctx.insert("result".into(), step.value());
            if let Some(reg) = &task.register {
                rctx.insert(reg.clone(), step.value());
            }
            let rctx = Value::from(rctx);
            match self.cond(&task.failed_when, &rctx, &format!("{what} failed_when")) {
                Err(e) => return Step::new(TaskStatus::Failed, e),
                Ok(Some(f)) => {
                    status = if f {
                        TaskStatus::Failed
                    } else {
                        TaskStatus::Changed
                    };
                    if !f {
                        msg = "changed".into();
                    }
                }
                Ok(None) => {}
            }
            if status != TaskStatus::Failed {
                match self.cond(&task.changed_when, &rctx, &format!("{what} changed_when")) {
                    Err(e) => return Step::new(TaskStatus::Failed, e),
                    Ok(Some(false)) => {
                        status = TaskStatus::Ok;
                        msg = "ran; changed_when was false".into();
                    }
                    _ => {}
                }
            }
            let registered = std::mem::take(&mut step.registered);
            step = Step::new(status, msg);
            for (k, v) in registered {
                if !["changed", "failed", "msg", "skipped"].contains(&k.as_str()) {
                    step.set(&k, v);
                }
            }
        }
        if step.status == TaskStatus::Changed || step.status == TaskStatus::Failed {
            step.diffs = diffs;
        }
        step
    }
}

fn worst(a: TaskStatus, b: TaskStatus) -> TaskStatus {
    let rank = |s: TaskStatus| match s {
        TaskStatus::Skipped => 0,
        TaskStatus::Ok => 1,
        TaskStatus::Changed => 2,
        TaskStatus::Failed => 3,
        TaskStatus::Unreachable => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn value_map(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Ok(iter) = v.try_iter() {
        for k in iter {
            if let (Some(key), Ok(val)) = (k.as_str(), v.get_item(&k)) {
                out.insert(key.to_string(), val);
            }
        }
    }
    out
}

fn dummy_task() -> Task {
    crate::playbook::parse(
        "- hosts: all\n  tasks: [{command: 'true'}]\n",
        std::path::Path::new("-"),
    )
    .expect("static playbook")
    .plays
    .remove(0)
    .tasks
    .remove(0)
}

/// Fetch into the host's own view the reads it does not have yet.
fn fetch_into(
    run: &RunCx,
    host: &str,
    conn: &mut super::conn::HostConn,
    reads: &[Read],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<(), Step> {
    let mut view = std::mem::take(&mut conn.view);
    let r = fetch_view(run, host, conn, &mut view, reads, become_, timeout);
    conn.view = view;
    r
}

fn fetch_view(
    run: &RunCx,
    host: &str,
    conn: &mut super::conn::HostConn,
    view: &mut HostView,
    reads: &[Read],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<(), Step> {
    let missing = view.missing(reads);
    // A run that changes hosts takes each host's lock with its first script there.
    // (Not for `ansible_connection: local`: those "hosts" are this machine, often several
    // of them in one inventory, and the operator sees any other run on it.)
    let lock =
        !run.opts.check && !conn.locked && matches!(conn.spec, super::conn::ConnectSpec::Ssh(_));
    if missing.is_empty() && !lock {
        return Ok(());
    }
    let t = conn
        .transport()
        .map_err(|e| Step::new(TaskStatus::Unreachable, e))?;
    let mut script = reads_script(&missing);
    if lock {
        script = format!("{}{script}", super::lock::acquire(&run.run_id));
    }
    run.trace(host, "read", &script);
    let out = match executor::run_script(t, &script, become_, timeout) {
        Ok(o) => o,
        Err(e) if e.is_unreachable() => {
            let msg = e.to_string();
            conn.unreachable = Some(msg.clone());
            return Err(Step::new(TaskStatus::Unreachable, msg));
        }
        Err(e) => return Err(Step::new(TaskStatus::Failed, e.to_string())),
    };
    if lock {
        if let Some(msg) = super::lock::held(&out.stdout) {
            return Err(Step::new(TaskStatus::Failed, msg));
        }
        conn.locked = true;
    }
    parse_reads(&missing, &out.stdout, &out.stderr, view)
        .map_err(|e| Step::new(TaskStatus::Failed, e.to_string()))
}
