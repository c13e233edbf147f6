//! The engine: plays in order (barriers), each play's hosts in parallel bounded by `--forks`,
//! in `serial` batches, with Ansible's failure policy; every host keeps one connection.

mod batch;
pub mod conn;
pub mod executor;
pub mod host;
pub mod lock;
mod reads;
mod realise;
pub mod reporter;
pub mod result;
mod task;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::Value;

use crate::inventory::Inventory;
use crate::playbook::Playbook;
use crate::secret::Redactor;
use crate::template::Templates;
use crate::vars::Shared;
use conn::Pool;
use reporter::Reporter;
use result::{RunOutcome, TaskResult, TaskStatus};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub command_timeout: Duration,
    /// -vvv: print every script sent to a host (through the redactor) and its exit status.
    pub verbose: u8,
}

impl RunOptions {
    /// Ansible's tag rules: `always` runs unless skipped by name; `never` only when asked.
    pub fn tags_allow(&self, task_tags: &[String], play_tags: &[String]) -> bool {
        let tags: HashSet<&str> = task_tags
            .iter()
            .chain(play_tags)
            .map(String::as_str)
            .collect();
        if self.skip_tags.iter().any(|t| tags.contains(t.as_str())) {
            return false;
        }
        if self.tags.is_empty() || self.tags.iter().any(|t| t == "all") {
            return !tags.contains("never");
        }
        tags.contains("always") || self.tags.iter().any(|t| tags.contains(t.as_str()))
    }
}

/// Everything a run shares between host threads.
pub struct RunCx {
    pub playbook: Playbook,
    pub inventory: Inventory,
    pub templates: Templates,
    pub shared: Shared,
    pub pool: Pool,
    pub opts: RunOptions,
    pub redactor: Arc<Redactor>,
    pub reporter: Arc<dyn Reporter>,
    pub base_dir: PathBuf,
    /// Hosts each play runs on, resolved and validated before anything connects.
    pub play_hosts: Vec<Vec<String>>,
    results: Mutex<Vec<TaskResult>>,
    pub interrupted: AtomicBool,
    /// Names this run in host locks (engine::lock).
    pub run_id: String,
}

impl RunCx {
    /// At -vvv, what is sent to a host and what came back, redacted.
    pub fn trace(&self, host: &str, what: &str, script: &str) {
        if self.opts.verbose >= 3 {
            let text = format!("<{host}> {what}:\n{}", script.trim_end());
            eprintln!("{}", self.redactor.redact(&text));
        }
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        playbook: Playbook,
        inventory: Inventory,
        templates: Templates,
        shared: Shared,
        pool: Pool,
        opts: RunOptions,
        redactor: Arc<Redactor>,
        reporter: Arc<dyn Reporter>,
        base_dir: PathBuf,
        play_hosts: Vec<Vec<String>>,
    ) -> Self {
        RunCx {
            playbook,
            inventory,
            templates,
            shared,
            pool,
            opts,
            redactor,
            reporter,
            base_dir,
            play_hosts,
            results: Mutex::new(Vec::new()),
            interrupted: AtomicBool::new(false),
            run_id: crate::k8s::token::BootstrapToken::generate()
                .map(|t| t.secret().to_string())
                .unwrap_or_else(|_| format!("pid{}", std::process::id())),
        }
    }

    pub fn collect(&self, r: TaskResult) {
        self.results.lock().expect("results").push(r);
    }
}

/// Per play: the abort flag (any_errors_fatal, Ctrl-C) and the run_once cells.
pub struct PlayState {
    pub play_index: usize,
    abort: AtomicBool,
    run_once: Mutex<HashMap<usize, RunOnceCell>>,
}

type RunOnceCell = Arc<Mutex<Option<(String, TaskStatus, Value)>>>;

impl PlayState {
    fn new(play_index: usize) -> Self {
        PlayState {
            play_index,
            abort: AtomicBool::new(false),
            run_once: Mutex::new(HashMap::new()),
        }
    }
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
    /// The first host to reach a run_once task runs it; the others take its result.
    pub fn run_once_cell(&self, task: usize) -> RunOnceCell {
        self.run_once
            .lock()
            .expect("run_once map")
            .entry(task)
            .or_default()
            .clone()
    }
}

/// The groups → hosts map and hostvars, as templates see them.
pub fn shared_vars(inv: &Inventory, extra: BTreeMap<String, Value>) -> Shared {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in inv.group_names() {
        groups.insert(g.clone(), inv.group_hosts(&g));
    }
    let mut hostvars: BTreeMap<String, Value> = BTreeMap::new();
    for h in inv.hosts() {
        let mut vars: BTreeMap<String, Value> = h
            .vars
            .iter()
            .filter_map(|(k, v)| {
                k.as_str()
                    .map(|k| (k.to_string(), Value::from_serialize(v)))
            })
            .collect();
        vars.insert("inventory_hostname".into(), Value::from(h.name.clone()));
        hostvars.insert(h.name.clone(), Value::from(vars));
    }
    Shared {
        groups: Value::from_serialize(&groups),
        hostvars: Value::from(hostvars),
        extra,
    }
}

pub fn run(cx: Arc<RunCx>) -> RunOutcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cx.opts.forks.max(1) + 4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run_plays(cx.clone()));
    let results = std::mem::take(&mut *cx.results.lock().expect("results"));
    let mut outcome = RunOutcome {
        check: cx.opts.check,
        interrupted: cx.interrupted.load(Ordering::SeqCst),
        ..Default::default()
    };
    for hosts in &cx.play_hosts {
        for h in hosts {
            outcome.recap.entry(h.clone()).or_default();
        }
    }
    for r in &results {
        outcome
            .recap
            .entry(r.host.clone())
            .or_default()
            .add(r.status);
    }
    for (host, recap) in outcome.recap.iter_mut() {
        recap.round_trips = cx.pool.round_trips(host);
        if let Some(slot) = cx.pool.get(host) {
            let registered = slot
                .lock()
                .map(|c| c.registered.clone())
                .unwrap_or_default();
            outcome.registered.insert(host.clone(), registered);
        }
    }
    outcome.results = results;
    outcome
}

async fn run_plays(cx: Arc<RunCx>) {
    let mut dead: HashSet<String> = HashSet::new();
    {
        let cx = cx.clone();
        tokio::spawn(async move {
            // First Ctrl-C: no new task starts, writes in flight finish, the recap is printed.
            if tokio::signal::ctrl_c().await.is_ok() {
                cx.interrupted.store(true, Ordering::SeqCst);
                eprintln!(
                    "interrupted: finishing the tasks in flight (Ctrl-C again to abort at once)"
                );
            }
            // Second: abort now. Atomic writes leave either the old or the new file.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(crate::error::exit::INTERRUPTED);
            }
        });
    }
    for (pi, play) in cx.playbook.plays.iter().enumerate() {
        if cx.interrupted.load(Ordering::SeqCst) {
            break;
        }
        let hosts: Vec<String> = cx.play_hosts[pi]
            .iter()
            .filter(|h| !dead.contains(*h))
            .cloned()
            .collect();
        cx.reporter.play_start(&play.display_name(), hosts.len());
        if hosts.is_empty() {
            continue;
        }
        let sizes = match &play.serial {
            Some(s) => s.batches(hosts.len()).unwrap_or_else(|_| vec![hosts.len()]),
            None => vec![hosts.len()],
        };
        let state = Arc::new(PlayState::new(pi));
        let sem = Arc::new(tokio::sync::Semaphore::new(cx.opts.forks.max(1)));
        let mut start = 0;
        let mut stop_play = false;
        for size in sizes {
            let batch = &hosts[start..start + size];
            start += size;
            let mut handles = Vec::new();
            for host in batch {
                let (cx, state, sem, host) = (cx.clone(), state.clone(), sem.clone(), host.clone());
                handles.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore");
                    if cx.interrupted.load(Ordering::SeqCst) {
                        state.abort();
                    }
                    let h = host.clone();
                    let out = tokio::task::spawn_blocking(move || {
                        let out = host::HostRunner {
                            run: &cx,
                            state: &state,
                            host: &h,
                            pending: Default::default(),
                            outputs: Default::default(),
                        }
                        .run();
                        cx.reporter.host_done(&h);
                        out
                    })
                    .await
                    .expect("host thread panicked");
                    (host, out)
                }));
            }
            let mut failed_in_batch = 0;
            for h in handles {
                let (host, out) = h.await.expect("host task");
                if out.failed || out.unreachable {
                    failed_in_batch += 1;
                    dead.insert(host);
                }
            }
            if cx.interrupted.load(Ordering::SeqCst) {
                state.abort();
            }
            let too_many = play
                .max_fail_percentage
                .is_some_and(|pct| (failed_in_batch as f64) * 100.0 / (size as f64) > pct);
            if state.aborted() || too_many || (failed_in_batch > 0 && failed_in_batch == size) {
                stop_play = true;
                break;
            }
        }
        cx.reporter.play_done(&play.display_name());
        if stop_play
            && (state.aborted() || play.max_fail_percentage.is_some() || play.any_errors_fatal)
        {
            break;
        }
    }
}
