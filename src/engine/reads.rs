//! Reading a host: the batched prefetch before its first task, the reads a task still needs,
//! and the host's lock, which a changing run takes with its first script on the host; once
//! it holds the lock, the same script removes the temp files interrupted runs left in the
//! directories the play writes into.

use std::time::Duration;

use super::conn::{ConnectSpec, HostConn};
use super::executor;
use super::host::HostRunner;
use super::result::{TaskResult, TaskStatus};
use super::step::{dummy_task, Step};
use super::RunCx;
use crate::hoststate::{parse_reads, reads_script, Read};
use crate::modules::ResolveCx;
use crate::playbook::Task;
use crate::transport::Become;

impl HostRunner<'_> {
    /// Read in one round trip what this host's tasks will need, before the first task runs,
    /// taking the host's lock in the same script (connecting first, on first use).
    pub(super) fn connect_lock_and_prefetch(&self, tasks: &[&Task], gather_facts: bool) {
        let play = self.play();
        // A play with nothing to do on this host (every task loops over an empty list, as the
        // shipped Binaries play without `binaries`) costs it no round trip: the next play
        // connects, locks and reads.
        let idle = !gather_facts
            && !tasks.is_empty()
            && tasks.iter().all(|t| {
                t.loop_
                    .as_ref()
                    .and_then(|l| self.loop_items_now(t, l))
                    .is_some_and(|items| items.is_empty())
            });
        if idle {
            return;
        }
        let mut reads = Vec::new();
        if gather_facts {
            reads.push(Read::Facts);
        }
        for task in tasks {
            if task.module().is_none() || task.delegate_to.is_some() {
                continue;
            }
            // A loop over variables known now (a `binaries:` list) reads for every item here.
            let items: Vec<Option<minijinja::Value>> = match &task.loop_ {
                None => vec![None],
                Some(l) => match self.loop_items_now(task, l) {
                    Some(items) => items.into_iter().map(Some).collect(),
                    None => continue,
                },
            };
            for item in &items {
                // A task whose arguments need results of earlier tasks reads when it runs.
                if let Some(r) = self.task_reads(self.state.play_index, task, item.as_ref()) {
                    reads.extend(r);
                }
            }
        }
        // The host's files of its later plays are read now too, and their directories are
        // the host's as much: a stale temp file there goes with this first script.
        reads.extend(self.later_plays_reads());
        // The directories of the files the tasks manage (each reads the file it writes).
        let mut dirs: Vec<String> = Vec::new();
        for r in &reads {
            if let Read::File(p) = r {
                let d = executor::parent(p);
                if d.starts_with('/') && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        let first = tasks
            .iter()
            .find(|t| t.module().is_some())
            .copied()
            .unwrap_or(dummy_task());
        let become_ = self.become_for(first);
        let slot = self.slot(self.host);
        let mut conn = slot.lock().expect("host slot");
        let started = std::time::Instant::now();
        // A failure here shows again, with its task, when that task reads.
        let removed = read_and_clean(
            self.run,
            self.host,
            &mut conn,
            &reads,
            &dirs,
            become_.as_ref(),
            self.run.opts.command_timeout,
        )
        .unwrap_or_default();
        if gather_facts {
            conn.facts_gathered = true;
        }
        drop(conn);
        if !removed.is_empty() {
            // Housekeeping, not a change of anything a task manages: reported as ok (-v, JSON).
            self.report(TaskResult {
                play: play.display_name().to_string(),
                host: self.host.to_string(),
                task: STALE_TASK.to_string(),
                status: TaskStatus::Ok,
                changed: false,
                msg: executor::stale_message(&removed),
                diffs: Vec::new(),
                duration: started.elapsed(),
                no_log: false,
                handler: false,
                ignored: false,
                rescued: false,
            });
        }
    }
}

/// The name under which removed stale temp files are reported.
pub const STALE_TASK: &str = "remove temp files of interrupted runs";
impl HostRunner<'_> {
    /// The host's own files, units and facts that its later plays will read, as far as they
    /// resolve now: read with this play's, so that a run of several plays on a host (the
    /// workers plays: who must join, the token, the join) costs one read there, not one per
    /// play. Cluster reads and commands are left to their play: they may change meanwhile.
    ///
    /// What a later task reads is kept once it resolves (each play's prefetch would resolve
    /// every later task again: a run of P plays, the last play's tasks P times per host); a
    /// task that resolves otherwise by the time it runs reads then what is still missing.
    fn later_plays_reads(&self) -> Vec<Read> {
        let mut reads = Vec::new();
        let here = self.state.play_index;
        let mut known = self
            .run
            .later_reads
            .lock()
            .expect("later reads")
            .remove(self.host)
            .unwrap_or_default();
        for (pi, play) in self.run.playbook.plays.iter().enumerate().skip(here + 1) {
            if !self.run.play_hosts[pi].iter().any(|h| h == self.host) {
                continue;
            }
            if play.gather_facts {
                reads.push(Read::Facts);
            }
            for task in play.all_tasks() {
                if task.delegate_to.is_some() || task.loop_.is_some() {
                    continue;
                }
                // Tasks live as long as the run, so their address names them.
                let key = (pi, task as *const Task as usize);
                if let Some(r) = known.get(&key) {
                    reads.extend(r.iter().cloned());
                    continue;
                }
                if let Some(r) = self.task_reads(pi, task, None) {
                    let r: Vec<Read> = r
                        .into_iter()
                        .filter(|r| {
                            matches!(
                                r,
                                Read::File(_) | Read::Unit(_) | Read::Swaps | Read::Kernel(_)
                            )
                        })
                        .collect();
                    reads.extend(r.iter().cloned());
                    known.insert(key, r);
                }
            }
        }
        self.run
            .later_reads
            .lock()
            .expect("later reads")
            .insert(self.host.to_string(), known);
        reads
    }

    /// What `task` of play `pi` reads on this host (for loop item `item`); `None` when its
    /// arguments cannot be resolved yet (they need results of earlier tasks).
    fn task_reads(
        &self,
        pi: usize,
        task: &Task,
        item: Option<&minijinja::Value>,
    ) -> Option<Vec<Read>> {
        let module = task.module()?;
        let ctx = self.context_in(pi, task, item).ok()?;
        let what = format!("task {:?}", task.display_name());
        let cx = ResolveCx {
            templates: &self.run.templates,
            vars: &ctx,
            base_dir: &self.run.base_dir,
            what: &what,
        };
        module.reads(&cx).ok()
    }
}

/// Whether the next script to `conn` must take the host's lock: a run that changes hosts
/// takes each one's lock with its first script there. (Not for `ansible_connection: local`:
/// those "hosts" are this machine, often several of them in one inventory, and the operator
/// sees any other run on it.)
fn needs_lock(run: &RunCx, conn: &HostConn) -> bool {
    !run.opts.check && !conn.locked && matches!(conn.spec, ConnectSpec::Ssh(_))
}

/// Read into the host's view what it cannot answer yet (and the lock, when still needed).
pub(super) fn read(
    run: &RunCx,
    host: &str,
    conn: &mut HostConn,
    reads: &[Read],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<(), Step> {
    read_and_clean(run, host, conn, reads, &[], become_, timeout).map(|_| ())
}

impl HostRunner<'_> {
    /// The items of a task's loop, when they render before any task ran (else `None`: its
    /// items read when the task runs).
    fn loop_items_now(
        &self,
        task: &Task,
        loop_: &serde_yaml::Value,
    ) -> Option<Vec<minijinja::Value>> {
        let ctx = self.context(task, None).ok()?;
        let items = crate::template::render_yaml(&self.run.templates, loop_, &ctx, "loop").ok()?;
        Some(items.try_iter().ok()?.collect())
    }
}

/// [`read`], and when this script takes the lock, also remove the stale temp files in
/// `dirs` (after the lock is ours, so never while another run may be writing them). Returns
/// the paths removed.
fn read_and_clean(
    run: &RunCx,
    host: &str,
    conn: &mut HostConn,
    reads: &[Read],
    dirs: &[String],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<Vec<String>, Step> {
    let missing = conn.view.missing(reads);
    let lock = needs_lock(run, conn);
    if missing.is_empty() && !lock {
        return Ok(Vec::new());
    }
    let t = conn
        .transport()
        .map_err(|e| Step::new(TaskStatus::Unreachable, e))?;
    let mut script = reads_script(&missing);
    if lock {
        // The lock script stops the whole script when another run holds the host.
        script = format!(
            "{}{}{script}",
            super::lock::acquire(&run.run_id),
            executor::stale_temps_script(dirs)
        );
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
    let mut removed = Vec::new();
    if lock {
        if let Some(msg) = super::lock::held(&out.stdout) {
            return Err(Step::new(TaskStatus::Failed, msg));
        }
        conn.locked = true;
        removed = executor::stale_removed(&out.stdout);
    }
    parse_reads(&missing, &out.stdout, &out.stderr, &mut conn.view)
        .map_err(|e| Step::new(TaskStatus::Failed, e.to_string()))?;
    Ok(removed)
}
