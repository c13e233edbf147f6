//! The engine: plays in order (barriers), each play's hosts in parallel bounded by `--forks`,
//! in `serial` batches, with Ansible's failure policy; every host keeps one connection.

mod batch;
pub mod conn;
mod direct_api;
pub mod executor;
pub mod facts;
mod flow;
pub mod host;
pub mod lock;
mod reads;
mod realise;
pub mod reporter;
pub mod result;
mod stage;
mod step;
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
    /// How many hosts may receive an artifact upload at once (`--upload-forks`).
    pub upload_forks: usize,
    /// `--start-at-task`: tasks before the first of this name are skipped.
    pub start_at_task: Option<String>,
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
    pub templates: Arc<Templates>,
    pub shared: Shared,
    pub pool: Pool,
    pub opts: RunOptions,
    pub redactor: Arc<Redactor>,
    pub reporter: Arc<dyn Reporter>,
    pub base_dir: PathBuf,
    /// Hosts each play runs on, resolved and validated before anything connects.
    pub play_hosts: Vec<Vec<String>>,
    /// Results by the index of the play they belong to.
    results: Mutex<Vec<(usize, TaskResult)>>,
    /// Hosts' planned changes carried from the end of a play into the next (see batch.rs).
    carried: Mutex<HashMap<String, Vec<step::Deferred>>>,
    /// Per host, what tasks of later plays read, once resolved (see reads.rs).
    later_reads: Mutex<HashMap<String, LaterReads>>,
    /// Plays that did not start, and why (said in the recap).
    stopped: Mutex<Vec<String>>,
    pub interrupted: AtomicBool,
    /// Names this run in host locks (engine::lock).
    pub run_id: String,
    /// The bound on concurrent artifact uploads, shared by every host.
    pub uploads: crate::artifact::upload::UploadSlots,
    /// Files `include_tasks` loaded, by path and role: loaded once, shared by every host.
    includes: Mutex<HashMap<(PathBuf, String), IncludedTasks>>,
    /// Each play's variable layers, by play index, built on first use: the same for every
    /// host, whether its play runs or a later play's task is prefetched.
    play_layers: Vec<std::sync::OnceLock<PlayLayers>>,
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
        let opts_upload_forks = opts.upload_forks;
        let play_layers = playbook
            .plays
            .iter()
            .map(|_| std::sync::OnceLock::new())
            .collect();
        RunCx {
            playbook,
            inventory,
            templates: Arc::new(templates),
            shared,
            pool,
            opts,
            redactor,
            reporter,
            base_dir,
            play_hosts,
            results: Mutex::new(Vec::new()),
            carried: Mutex::new(HashMap::new()),
            later_reads: Mutex::new(HashMap::new()),
            stopped: Mutex::new(Vec::new()),
            interrupted: AtomicBool::new(false),
            includes: Mutex::new(HashMap::new()),
            play_layers,
            run_id: crate::k8s::token::BootstrapToken::generate()
                .map(|t| t.secret().to_string())
                .unwrap_or_else(|_| format!("pid{}", std::process::id())),
            uploads: crate::artifact::upload::UploadSlots::new(opts_upload_forks),
        }
    }

    /// Play `pi`'s role defaults, and its vars, vars_files and role vars, as layers.
    pub(super) fn play_layers(&self, pi: usize) -> PlayLayers {
        self.play_layers[pi]
            .get_or_init(|| {
                let play = &self.playbook.plays[pi];
                PlayLayers::new(
                    &[&play.role_defaults],
                    &[&play.vars, &play.file_vars, &play.role_vars],
                )
            })
            .clone()
    }

    /// The tasks of a file `include_tasks` names, looked up in `dirs`.
    pub fn include(
        &self,
        file: &str,
        dirs: &[PathBuf],
        role: Option<Arc<crate::playbook::RoleCx>>,
    ) -> Result<Arc<Vec<crate::playbook::Task>>, String> {
        let mut search = Vec::new();
        if let Some(r) = &role {
            search.push(r.dir.join("tasks"));
        }
        search.extend(dirs.iter().cloned());
        let path = crate::playbook::expand::locate(file, &search).ok_or_else(|| {
            format!(
                "include_tasks: {file:?} not found in {}",
                crate::playbook::expand::show_dirs(&search)
            )
        })?;
        let key = (
            path.clone(),
            role.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
        );
        if let Some(t) = self.includes.lock().expect("includes").get(&key) {
            return Ok(t.clone());
        }
        let tasks =
            crate::playbook::expand::tasks_file(&path, &search, role).map_err(|e| e.to_string())?;
        let tasks = Arc::new(tasks);
        self.includes
            .lock()
            .expect("includes")
            .entry(key)
            .or_insert(tasks.clone());
        Ok(tasks)
    }

    /// Why the plays after `failed` did not start: said in the recap.
    fn note_stop(
        &self,
        rest: &[crate::playbook::Play],
        failed: &crate::playbook::Play,
        fatal: bool,
        hosts: &[String],
    ) {
        if rest.is_empty() {
            return;
        }
        let names: Vec<String> = rest
            .iter()
            .map(|p| format!("{:?}", p.display_name()))
            .collect();
        let why = if fatal {
            "any_errors_fatal"
        } else {
            "max_fail_percentage"
        };
        self.stopped.lock().expect("notes").push(format!(
            "play {:?} failed on {} ({why}): not started: {}",
            failed.display_name(),
            hosts.join(", "),
            names.join(", ")
        ));
    }

    pub fn collect(&self, play: usize, r: TaskResult) {
        self.results.lock().expect("results").push((play, r));
    }
}

/// Per play: the abort flag (any_errors_fatal, Ctrl-C), the run_once cells, and the shared
/// variables as this play's hosts see them (hostvars with every host's results so far, the
/// play's hosts and the current batch).
pub struct PlayState {
    pub play_index: usize,
    abort: AtomicBool,
    /// any_errors_fatal, as the play's hosts rendered it.
    fatal: AtomicBool,
    /// `meta: end_play` ran on a host: the play ends for every host.
    ended: AtomicBool,
    run_once: Mutex<HashMap<usize, RunOnceCell>>,
    shared: std::sync::RwLock<Shared>,
    /// The layers of each role the play's tasks came from (kept with the role, so that its
    /// address names it while the play runs).
    role_layers: Mutex<Vec<(Arc<crate::playbook::RoleCx>, PlayLayers)>>,
}

/// Role defaults and vars (play vars, vars_files, role vars for a play) as variable layers.
#[derive(Clone)]
pub(super) struct PlayLayers {
    pub defaults: Arc<crate::vars::Layer>,
    pub vars: Arc<crate::vars::Layer>,
}

impl PlayLayers {
    /// Defaults and vars from these mappings (later ones winning).
    fn new(defaults: &[&serde_yaml::Mapping], vars: &[&serde_yaml::Mapping]) -> Self {
        use crate::vars::Layer;
        PlayLayers {
            defaults: Layer::yaml(defaults, "role defaults"),
            vars: Layer::yaml(vars, "play vars"),
        }
    }
}

type IncludedTasks = Arc<Vec<crate::playbook::Task>>;

/// By (play index, task address): the host's reads of that task.
type LaterReads = HashMap<(usize, usize), Vec<crate::hoststate::Read>>;

pub(super) type RunOnceCell = Arc<Mutex<Option<(String, TaskStatus, Value)>>>;

impl PlayState {
    fn new(play_index: usize, shared: Shared) -> Self {
        PlayState {
            play_index,
            abort: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            run_once: Mutex::new(HashMap::new()),
            shared: std::sync::RwLock::new(shared),
            role_layers: Mutex::new(Vec::new()),
        }
    }
    /// A role's defaults and vars as layers, built once per play.
    pub(super) fn role_layers(&self, role: &Arc<crate::playbook::RoleCx>) -> PlayLayers {
        let mut roles = self.role_layers.lock().expect("role layers");
        if let Some((_, l)) = roles.iter().find(|(r, _)| Arc::ptr_eq(r, role)) {
            return l.clone();
        }
        let l = PlayLayers::new(&[&role.defaults], &[&role.vars]);
        roles.push((role.clone(), l.clone()));
        l
    }
    /// The shared variables for this play's current batch (cheap: values are Arc).
    pub fn shared(&self) -> Shared {
        self.shared.read().expect("play vars").clone()
    }
    fn set_batch(&self, batch: &[String]) {
        let mut shared = self.shared.write().expect("play vars");
        shared
            .magic
            .insert("ansible_play_batch".into(), Value::from_serialize(batch));
        // The old name of the batch, which playbooks still use.
        shared
            .magic
            .insert("play_hosts".into(), Value::from_serialize(batch));
    }
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
    pub fn set_fatal(&self) {
        self.fatal.store(true, Ordering::SeqCst);
    }
    pub fn fatal(&self) -> bool {
        self.fatal.load(Ordering::SeqCst)
    }
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
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
        magic: BTreeMap::new(),
        extra: crate::vars::Layer::values(extra),
    }
}

/// The shared variables at the start of a play: as Ansible's `hostvars`, each host's
/// registered results so far on top of its inventory variables (plays are barriers, so a
/// play sees what every host registered in the plays before it), and the play's hosts.
fn play_shared(cx: &RunCx, hosts: &[String]) -> Shared {
    let mut shared = cx.shared.clone();
    let mut hostvars: BTreeMap<String, Value> = BTreeMap::new();
    if let Ok(names) = cx.shared.hostvars.try_iter() {
        for name in names {
            let Some(host) = name.as_str() else { continue };
            let mut vars: BTreeMap<String, Value> = BTreeMap::new();
            let base = cx.shared.hostvars.get_item(&name).unwrap_or_default();
            if let Ok(keys) = base.try_iter() {
                for k in keys {
                    if let (Some(key), Ok(v)) = (k.as_str(), base.get_item(&k)) {
                        vars.insert(key.to_string(), v);
                    }
                }
            }
            if let Some(slot) = cx.pool.get(host) {
                if let Ok(conn) = slot.lock() {
                    vars.extend(conn.registered.clone());
                }
            }
            hostvars.insert(host.to_string(), Value::from(vars));
        }
    }
    shared.hostvars = Value::from(hostvars);
    shared
        .magic
        .insert("ansible_play_hosts".into(), Value::from_serialize(hosts));
    shared.magic.insert(
        "ansible_play_hosts_all".into(),
        Value::from_serialize(hosts),
    );
    shared
        .magic
        .insert("ansible_check_mode".into(), Value::from(cx.opts.check));
    shared
        .magic
        .insert("ansible_diff_mode".into(), Value::from(cx.opts.diff));
    // The ansible-core whose playbook semantics bootstrapctl follows (and is tested against).
    shared.magic.insert(
        "ansible_version".into(),
        Value::from_serialize(serde_json::json!({
            "full": "2.18.0", "major": 2, "minor": 18, "revision": 0, "string": "2.18.0"
        })),
    );
    shared
}

pub fn run(cx: Arc<RunCx>) -> RunOutcome {
    conn::tune_allocator(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cx.opts.forks.max(1) + 4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run_plays(cx.clone()));
    // Interrupted before the play a batch was carried into: its changes still go out.
    batch::flush_carried(&cx);
    let mut results = std::mem::take(&mut *cx.results.lock().expect("results"));
    // A play's results together, in play order, though a carried batch reports its play's
    // results during the next play.
    results.sort_by_key(|(play, _)| *play);
    let results: Vec<TaskResult> = results.into_iter().map(|(_, r)| r).collect();
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
            .add_result(r);
    }
    for (host, recap) in outcome.recap.iter_mut() {
        recap.round_trips = cx.pool.round_trips(host);
        recap.bytes_transferred = cx.pool.bytes_transferred(host);
        if let Some(slot) = cx.pool.get(host) {
            let registered = slot
                .lock()
                .map(|c| c.registered.clone())
                .unwrap_or_default();
            outcome.registered.insert(host.clone(), registered);
        }
    }
    outcome.results = results;
    outcome.stopped = std::mem::take(&mut *cx.stopped.lock().expect("notes"));
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
        let state = Arc::new(PlayState::new(pi, play_shared(&cx, &hosts)));
        let sem = Arc::new(tokio::sync::Semaphore::new(cx.opts.forks.max(1)));
        let mut start = 0;
        let mut stop_play = false;
        let mut failed_here: Vec<String> = Vec::new();
        for size in sizes {
            let batch = &hosts[start..start + size];
            start += size;
            state.set_batch(batch);
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
                            flow: Default::default(),
                        }
                        .run();
                        cx.reporter.host_done(&h);
                        // The thread now idles in the pool until the run ends.
                        crate::thread_stack::release_unused();
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
                    failed_here.push(host.clone());
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
        if stop_play && (state.aborted() || play.max_fail_percentage.is_some() || state.fatal()) {
            if !cx.is_interrupted() && !failed_here.is_empty() {
                cx.note_stop(
                    &cx.playbook.plays[pi + 1..],
                    play,
                    state.fatal(),
                    &failed_here,
                );
            }
            break;
        }
    }
}
