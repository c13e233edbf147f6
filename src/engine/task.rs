//! The task rules of one host: `when`, loops, `run_once`, `register`, `notify`, the
//! result of a command (`rc`, `stdout`, `changed_when`, `failed_when`), no_log and
//! redaction, delegation. Planning is the module's; `realise` applies or simulates the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use minijinja::Value;

use super::host::HostRunner;
use super::realise::{Mode, Target};
use super::result::{TaskResult, TaskStatus};
use super::step::Step;
use crate::modules::{Module, ResolveCx};
use crate::plan::{DiffItem, Planned};
use crate::playbook::{Cond, Task};
use crate::template::render_yaml;
use crate::transport::{Become, ExecOutput};
use crate::vars::{context, Layer, Scope};

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

impl HostRunner<'_> {
    pub(super) fn become_for(&self, task: &Task) -> Option<Become> {
        let play = self.play();
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

    pub(super) fn context(&self, task: &Task, item: Option<&Value>) -> Result<Value, String> {
        self.context_in(self.state.play_index, task, item)
    }

    /// The variables of `task` of play `pi` on this host, in Ansible's precedence.
    pub(super) fn context_in(
        &self,
        pi: usize,
        task: &Task,
        item: Option<&Value>,
    ) -> Result<Value, String> {
        let slot = self.slot(self.host);
        let mut conn = slot.lock().expect("host slot");
        let shared = self.state.shared();
        let conn = &mut *conn;
        let inventory = conn
            .layers
            .inventory
            .get_or_insert_with(|| {
                let empty = serde_yaml::Mapping::new();
                let vars = self.run.inventory.host(self.host).map(|h| &h.vars);
                Layer::yaml(&[vars.unwrap_or(&empty)], "inventory vars")
            })
            .clone();
        let group_names = conn
            .layers
            .group_names
            .get_or_insert_with(|| crate::vars::group_names(&shared.groups, self.host))
            .clone();
        let facts = match conn.view.facts() {
            None => None,
            Some(f) => Some(match &conn.layers.facts {
                Some((made_from, layer)) if made_from == f => layer.clone(),
                _ => {
                    let layer = Layer::facts(f);
                    conn.layers.facts = Some((f.clone(), layer.clone()));
                    layer
                }
            }),
        };
        // A later play's task (prefetched) has its own play's layers.
        let own = self.run.play_layers(pi);
        let mut defaults = vec![own.defaults];
        let mut layers = vec![own.vars];
        if let Some(r) = &task.role {
            let role = self.state.role_layers(r);
            defaults.push(role.defaults);
            layers.push(role.vars);
        }
        if !task.vars.is_empty() {
            layers.push(Layer::yaml(&[&task.vars], "play vars"));
        }
        let includes = self.flow.params.borrow();
        let mut params: Vec<&serde_yaml::Mapping> = includes.iter().collect();
        params.push(&task.params);
        let mut role_magic = serde_yaml::Mapping::new();
        if let Some(r) = &task.role {
            role_magic.insert("role_name".into(), r.name.clone().into());
            role_magic.insert("role_path".into(), r.dir.display().to_string().into());
            params.push(&role_magic);
        }
        params.retain(|m| !m.is_empty());
        let params = if params.is_empty() {
            vec![]
        } else {
            vec![Layer::yaml(&params, "role and include params")]
        };
        let loop_var = task.loop_var.as_deref().unwrap_or("item");
        context(
            &self.run.templates,
            &shared,
            &Scope {
                host: self.host,
                group_names,
                defaults,
                inventory,
                play: layers,
                facts,
                registered: &conn.registered,
                params,
                item: item.map(|i| (loop_var, i)),
            },
        )
        .map_err(|e| e.to_string())
    }

    fn resolve(&self, task: &Task, ctx: &Value) -> Result<Box<dyn Module>, String> {
        let what = format!("task {:?}", task.display_name());
        let module = task.module().ok_or("not a module")?;
        // A role's task finds its templates and files in the role first.
        let base = task.role.as_ref().map(|r| r.dir.as_path());
        module
            .resolve(&ResolveCx {
                templates: &self.run.templates,
                vars: ctx,
                base_dir: base.unwrap_or(&self.run.base_dir),
                what: &what,
            })
            .map_err(|e| e.to_string())
    }

    pub(super) fn cond(
        &self,
        cond: &Option<Cond>,
        ctx: &Value,
        what: &str,
    ) -> Result<Option<bool>, String> {
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

    /// Run a task (all its loop items) and report it. Returns its overall status and
    /// whether a failure is ignored (`ignore_errors`).
    pub(super) fn run_task(
        &self,
        task: &Task,
        handler: bool,
        notified: &mut BTreeSet<String>,
    ) -> (TaskStatus, bool) {
        let started = Instant::now();
        let name = task.display_name();
        self.run.reporter.task_start(self.host, &name);
        // Tasks live as long as the run (in the playbook or a shared include), so their
        // address names them for every host.
        let key = task as *const Task as usize;
        let step = match (task.run_once, handler) {
            (true, false) => {
                let cell = self.state.run_once_cell(key);
                let mut guard = cell.lock().expect("run_once cell");
                match &*guard {
                    Some((host, status, value)) => {
                        // Skipped stays skipped on every host, as in Ansible.
                        let mut s = Step::new(
                            match status {
                                TaskStatus::Failed => TaskStatus::Failed,
                                TaskStatus::Skipped => TaskStatus::Skipped,
                                _ => TaskStatus::Ok,
                            },
                            format!("run_once: ran on {host}"),
                        );
                        s.registered = value_map(value);
                        s
                    }
                    None => {
                        let s = self.run_items(task);
                        *guard = Some((self.host.to_string(), s.status, s.value()));
                        s
                    }
                }
            }
            _ => self.run_items(task),
        };
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
        let ignored = step.status == TaskStatus::Failed && self.ignores(task);
        if step.status == TaskStatus::Failed {
            // As Ansible names it there: the task's own name, without its role.
            let own = task
                .name
                .clone()
                .unwrap_or_else(|| name.rsplit(" : ").next().unwrap_or(&name).to_string());
            *self.flow.last_failed.borrow_mut() = Some((own, step.value()));
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
            diffs: if task.no_log || task.diff == Some(false) {
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
            ignored,
            rescued: false,
        };
        let status = result.status;
        self.defer_or_report(result, step.deferred, task);
        (status, ignored)
    }

    /// `ignore_errors`, rendered for this host when it is a template.
    fn ignores(&self, task: &Task) -> bool {
        if let Some(b) = task.ignore_errors.literal() {
            return b;
        }
        self.context(task, None)
            .and_then(|ctx| {
                task.ignore_errors
                    .resolve(&self.run.templates, &ctx, "ignore_errors")
            })
            .unwrap_or(false)
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

    /// One execution (one loop item), again while `until` does not hold, as Ansible
    /// retries: `retries` (default 3) more attempts, `delay` seconds (default 5) apart.
    fn run_one(&self, task: &Task, ctx: &Value, item: Option<&Value>) -> Step {
        let Some(until) = &task.until else {
            return self.run_once_(task, ctx, item);
        };
        let attempts = task.retries.unwrap_or(3).max(1) + 1;
        let what = format!("task {:?} until", task.display_name());
        let mut n = 0;
        loop {
            n += 1;
            let ctx = if n == 1 {
                ctx.clone()
            } else {
                match self.context(task, item) {
                    Ok(c) => c,
                    Err(e) => return Step::new(TaskStatus::Failed, e),
                }
            };
            let mut step = self.run_once_(task, &ctx, item);
            step.set("attempts", Value::from(n));
            if step.status == TaskStatus::Skipped {
                return step;
            }
            let mut more = BTreeMap::from([("result".to_string(), step.value())]);
            if let Some(reg) = &task.register {
                more.insert(reg.clone(), step.value());
            }
            let rctx = crate::vars::with(&ctx, more);
            match self.cond(&Some(until.clone()), &rctx, &what) {
                Err(e) => return Step::new(TaskStatus::Failed, e),
                Ok(Some(true)) => return step,
                _ if n >= attempts => {
                    let mut s = Step::new(
                        TaskStatus::Failed,
                        format!("until: still false after {n} attempts ({})", step.msg),
                    );
                    s.registered = step.registered;
                    s.set("failed", Value::from(true));
                    s.set("attempts", Value::from(n));
                    return s;
                }
                _ => {
                    self.run.reporter.task_start(
                        self.host,
                        &format!("{} (retry {n}/{})", task.display_name(), attempts - 1),
                    );
                    std::thread::sleep(std::time::Duration::from_secs(task.delay.unwrap_or(5)));
                }
            }
        }
    }

    fn run_once_(&self, task: &Task, ctx: &Value, _item: Option<&Value>) -> Step {
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
        if step.status != TaskStatus::Failed
            && task.module().is_some_and(crate::modules::sets_facts)
        {
            // set_fact and include_vars: the host's variables from now on, in every play.
            if let Some(facts) = step.registered.get("ansible_facts").cloned() {
                let slot = self.slot(self.host);
                let mut conn = slot.lock().expect("host slot");
                if let Ok(keys) = facts.try_iter() {
                    for k in keys {
                        if let (Some(name), Ok(v)) = (k.as_str(), facts.get_item(&k)) {
                            conn.registered.insert(name.to_string(), v);
                        }
                    }
                }
            }
        }
        step
    }

    /// Plan `module` on its target host, then realise the plan (apply it, or in --check
    /// simulate it on the target's view).
    fn run_module(&self, task: &Task, ctx: &Value, module: &dyn Module) -> Step {
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
        let slot = self.slot(&target);
        let mut conn = slot.lock().expect("host slot");
        let reads = module.reads();
        // A wait is about now: never answered by a read made before (say, before the restart
        // of the server it waits for, which a batch applied without refreshing the view).
        let waits = matches!(task.module(), Some(crate::modules::ModuleArgs::KubeWait(_)));
        if delegated || waits {
            // Other hosts' tasks may have changed the delegate meanwhile: read it afresh,
            // under what is planned on it.
            conn.view.forget_reads(&reads);
        }
        if let Err(s) = super::reads::read(
            self.run,
            &target,
            &mut conn,
            &reads,
            become_.as_ref(),
            self.run.opts.command_timeout,
        ) {
            return s;
        }
        let planned = match module.plan(&conn.view) {
            Ok(p) => p,
            Err(e) => return Step::new(TaskStatus::Failed, e.to_string()),
        };
        let outputs = module.output(&conn.view);
        for (k, v) in &outputs {
            if let Some(text) = v.as_str().filter(|_| crate::secret::is_secret_name(k)) {
                self.run.redactor.register(text);
            }
        }
        *self.outputs.borrow_mut() = outputs;
        let (mut ops, diffs) = match planned {
            Planned::NoChange { reason } => return Step::new(TaskStatus::Ok, reason),
            Planned::Change { ops, diffs } => (ops, diffs),
        };
        match self.environment(task, ctx) {
            Ok(env) if !env.is_empty() => {
                for op in &mut ops {
                    if let crate::plan::Op::Exec { command, .. } = op {
                        *command = format!("{env}{command}");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => return Step::new(TaskStatus::Failed, e),
        }
        let mode = if task.check_mode.unwrap_or(self.run.opts.check) {
            Mode::Check
        } else {
            Mode::Apply
        };
        let target = Target {
            name: &target,
            delegated,
            become_: become_.as_ref(),
        };
        let mut step = self.realise(task, module, &target, &mut conn, ops, diffs, mode);
        drop(conn);
        if let Some(out) = step.ran.take() {
            step = self.command_result(task, ctx, step, *out);
        }
        step
    }

    /// The play's and the task's `environment`, rendered, as `export` words for a command.
    fn environment(&self, task: &Task, ctx: &Value) -> Result<String, String> {
        let mut env = self.play().environment.clone();
        env.extend(task.environment.clone());
        let mut out = String::new();
        for (k, v) in &env {
            let name = k.as_str().unwrap_or_default();
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("environment: {k:?} is not a variable name"));
            }
            let value = render_yaml(&self.run.templates, v, ctx, "environment")
                .map_err(|e| e.to_string())?;
            let text = match value.as_str() {
                Some(s) => s.to_string(),
                None => value.to_string(),
            };
            out.push_str(&format!("export {name}={}; ", crate::shell::quote(&text)));
        }
        Ok(out)
    }

    /// A command's result as Ansible registers it, then `failed_when` and `changed_when`.
    fn command_result(&self, task: &Task, ctx: &Value, step: Step, out: ExecOutput) -> Step {
        let what = format!("task {:?}", task.display_name());
        let diffs = step.diffs;
        let mut status = step.status;
        let mut msg = step.msg;
        let mut step = Step::new(status, msg.clone());
        {
            let stdout = out.stdout_lossy();
            let stderr = out.stderr_lossy();
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
            for (k, v) in &step.registered {
                rctx.insert(k.clone(), v.clone());
            }
            rctx.insert("result".into(), step.value());
            if let Some(reg) = &task.register {
                rctx.insert(reg.clone(), step.value());
            }
            let rctx = crate::vars::with(ctx, rctx);
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
