//! The `systemctl` stand-in bind-mounted into lab hosts: keeps unit state the way systemd
//! would (definitions frozen at daemon-reload, enablement as *.wants symlinks). Units whose
//! ExecStart runs kube-apiserver, kube-controller-manager or kubelet really run: `start` spawns
//! that stand-in as a daemon (see `service`), `stop` ends it, `is-active` follows the process.
//! Other units only keep state. `Restart=` is not honoured: a crashed service stays `failed`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::service;
use super::units::{self, Active, Root, Store, ENABLE_DIR, LOG_DIR};

const STAND_IN_NOTE: &str = "(lab stand-in: unit state only)";
const RUNS_NOTE: &str = "(lab stand-in: runs the component stand-in)";

/// What a unit's main process is doing, as systemd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Running,
    Failed,
    Inactive,
}

/// Entry point when the binary runs as `systemctl`; `args` are the arguments after argv[0].
/// Refuses to run outside a lab host, so that the real machine's state is never written.
pub(crate) fn systemctl_main(args: &[String]) -> i32 {
    let out = &mut std::io::stdout();
    let err = &mut std::io::stderr();
    if !in_lab_host() {
        let _ = writeln!(err, "systemctl (bootstrapctl lab stand-in): not inside a lab host ({} is not mounted); refusing", super::namespace::STATE_MOUNT);
        return 1;
    }
    run(&Root(PathBuf::from("/")), args, out, err)
}

/// A lab host has its state dir mounted at /var/lib/bootstrapctl-lab; the real machine does not.
fn in_lab_host() -> bool {
    let target = super::namespace::STATE_MOUNT;
    fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(target)))
}

#[derive(Default)]
struct Opts {
    now: bool,
    quiet: bool,
    value: bool,
    no_reload: bool,
    all: bool,
    props: Vec<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2024-05-01 12:00:00 UTC` from Unix seconds, as systemctl shows timestamps.
fn utc(secs: u64) -> String {
    let layout =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(layout).ok())
        .unwrap_or_default()
}

/// Parses options the way systemctl accepts them (anywhere on the line); returns verb + operands.
fn parse(args: &[String]) -> Result<(Opts, Vec<String>), String> {
    let mut o = Opts::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            // End of options, as getopt has it: everything after is a verb or a unit.
            "--" => {
                rest.extend(it.by_ref().cloned());
                break;
            }
            "--now" => o.now = true,
            "-q" | "--quiet" => o.quiet = true,
            "--value" => o.value = true,
            "--no-reload" => o.no_reload = true,
            "-a" | "--all" => o.all = true,
            "--system" | "--no-pager" | "--no-block" | "--no-ask-password" | "-l" | "--full"
            | "--plain" | "--no-legend" | "--force" => {}
            "-p" | "--property" | "-t" | "--type" | "--state" => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("option '{a}' requires an argument"))?;
                if a == "-p" || a == "--property" {
                    o.props.extend(v.split(',').map(str::to_string));
                }
            }
            "--user" | "--global" => {
                return Err(format!("'{a}' is not supported by the lab stand-in"))
            }
            s if s.starts_with("--property=") => o
                .props
                .extend(s["--property=".len()..].split(',').map(str::to_string)),
            s if s.starts_with("-p") && s.len() > 2 => {
                o.props.extend(s[2..].split(',').map(str::to_string))
            }
            s if s.starts_with("--type=") || s.starts_with("--state=") => {}
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unrecognized option '{s}'"))
            }
            _ => rest.push(a.clone()),
        }
    }
    o.props.retain(|p| !p.is_empty());
    Ok((o, rest))
}

/// Runs one systemctl command against `root`, writing what systemctl would print. Returns the
/// exit code systemctl would (0 ok, 1 failure, 3 inactive, 4 no such unit, 5 not loaded).
pub(crate) fn run(root: &Root, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let (opts, words) = match parse(args) {
        Ok(p) => p,
        Err(msg) => {
            let _ = writeln!(err, "systemctl: {msg}");
            return 1;
        }
    };
    let (verb, names) = match words.split_first() {
        Some((v, rest)) => (
            v.as_str(),
            rest.iter().map(|n| units::normalize(n)).collect::<Vec<_>>(),
        ),
        None => ("list-units", Vec::new()),
    };
    const VERBS: &[&str] = &[
        "daemon-reload",
        "daemon-reexec",
        "enable",
        "disable",
        "start",
        "stop",
        "restart",
        "reload-or-restart",
        "try-restart",
        "try-reload-or-restart",
        "reload",
        "is-active",
        "is-enabled",
        "show",
        "status",
        "cat",
        "list-units",
        "reboot",
    ];
    if !VERBS.contains(&verb) {
        let _ = writeln!(
            err,
            "Unknown command verb '{verb}' (the lab stand-in supports: {}).",
            VERBS.join(", ")
        );
        return 1;
    }
    let needs_units = !matches!(
        verb,
        "daemon-reload" | "daemon-reexec" | "list-units" | "reboot"
    );
    if needs_units && names.is_empty() {
        let _ = writeln!(err, "Too few arguments.");
        return 1;
    }
    let mut store = match Store::open(root) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "systemctl (lab stand-in): cannot open unit state: {e}");
            return 1;
        }
    };
    let mut cx = Cx {
        root,
        opts: &opts,
        store: &mut store,
        out,
        err,
    };
    let code = match verb {
        "daemon-reload" | "daemon-reexec" => {
            cx.store.state.reload(root);
            0
        }
        "enable" => cx.enable(&names),
        "disable" => cx.disable(&names),
        "start"
        | "stop"
        | "restart"
        | "reload-or-restart"
        | "try-restart"
        | "reload"
        | "try-reload-or-restart" => {
            names
                .iter()
                .map(|n| cx.job(verb, n))
                .fold(0, |acc, c| if acc == 0 { c } else { acc })
        }
        "is-active" => cx.is_active(&names),
        "is-enabled" => cx.is_enabled(&names),
        "show" => cx.show(&names),
        "status" => cx.status(&names),
        "cat" => cx.cat(&names),
        "list-units" => cx.list_units(),
        "reboot" => cx.reboot(),
        _ => unreachable!("verb checked above"),
    };
    // Queries leave the state file alone, as systemd's do: a read must not look like a change.
    let query = matches!(
        verb,
        "is-active" | "is-enabled" | "is-failed" | "show" | "status" | "cat" | "list-units"
    );
    if query {
        return code;
    }
    if let Err(e) = store.save() {
        let _ = writeln!(err, "systemctl (lab stand-in): cannot save unit state: {e}");
        return 1;
    }
    code
}

struct Cx<'a> {
    root: &'a Root,
    opts: &'a Opts,
    store: &'a mut Store,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Cx<'_> {
    fn warn_if_stale(&mut self, unit: &str) {
        if self.store.state.need_reload(self.root, unit)
            && self.store.state.loaded.contains_key(unit)
        {
            let _ = writeln!(self.err, "Warning: The unit file, source configuration file or drop-ins of {unit} changed on disk. Run 'systemctl daemon-reload' to reload units.");
        }
    }

    fn run_state(&self, unit: &str) -> Run {
        match self.store.state.active.get(unit) {
            None => Run::Inactive,
            Some(a) if a.exec_error.is_some() => Run::Failed,
            Some(Active {
                pid: Some(pid),
                started,
                ..
            }) if !service::alive(*pid, *started) => Run::Failed,
            Some(_) => Run::Running,
        }
    }

    /// The journal-like log of a unit, /var/log/lab/<unit>.log.
    fn log(&mut self, unit: &str, event: &str, exec_start: &[String]) {
        self.log_line(
            unit,
            &format!("{event} {unit}: ExecStart={}", exec_start.join(" ; ")),
        );
    }

    fn log_line(&mut self, unit: &str, msg: &str) {
        let dir = self.root.path(LOG_DIR);
        let _ = fs::create_dir_all(&dir);
        let line = format!("{} systemd[lab]: {msg}\n", utc(now_secs()));
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{unit}.log")));
        if let Ok(mut f) = file {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn start(&mut self, unit: &str) {
        let exec = self.store.state.loaded[unit].parsed.exec_start.clone();
        self.log(unit, "Started", &exec);
        let mut active = Active {
            since: now_secs(),
            exec_start: exec.clone(),
            pid: None,
            started: None,
            exec_error: None,
        };
        if let (Some(_), Some(argv)) = (service::component(&exec), service::argv(&exec)) {
            // ExecStartPre runs to completion first, as systemd runs it; a failure (unless the
            // line starts with `-`) fails the start.
            let pre = self.store.state.loaded[unit].parsed.exec_start_pre.clone();
            if let Err(e) = service::run_pre(self.root, unit, &pre) {
                self.log_line(unit, &format!("{unit}: Control process exited: {e}"));
                self.log_line(unit, &format!("{unit}: Failed with result 'exit-code'."));
                active.exec_error = Some(e);
                self.store.state.active.insert(unit.to_string(), active);
                return;
            }
            match service::spawn(self.root, unit, &argv) {
                Ok((pid, started)) => {
                    active.pid = Some(pid);
                    active.started = started;
                }
                Err(e) => {
                    self.log_line(unit, &format!("{unit}: Failed to execute {}: {e}", argv[0]));
                    self.log_line(
                        unit,
                        &format!("{unit}: Main process exited, code=exited, status=203/EXEC"),
                    );
                    self.log_line(unit, &format!("{unit}: Failed with result 'exit-code'."));
                    active.exec_error = Some(format!("{}: {e}", argv[0]));
                }
            }
        }
        self.store.state.active.insert(unit.to_string(), active);
    }

    fn stop(&mut self, unit: &str) {
        if let Some(a) = self.store.state.active.remove(unit) {
            if let Some(pid) = a.pid {
                service::stop(self.root, unit, pid, a.started);
            }
            self.log(unit, "Stopped", &a.exec_start);
        }
    }

    /// start/stop/restart and friends, always with the definition as loaded.
    fn job(&mut self, verb: &str, unit: &str) -> i32 {
        let loaded = self.store.state.loaded.contains_key(unit);
        let active = self.run_state(unit) == Run::Running;
        if verb == "stop" {
            if !loaded && !self.store.state.active.contains_key(unit) {
                let _ = writeln!(self.err, "Failed to stop {unit}: Unit {unit} not loaded.");
                return 5;
            }
            self.warn_if_stale(unit);
            self.stop(unit);
            return 0;
        }
        if !loaded {
            let _ = writeln!(self.err, "Failed to {verb} {unit}: Unit {unit} not found.");
            return 5;
        }
        self.warn_if_stale(unit);
        match verb {
            "start" if !active => {
                // A failed unit is started afresh: drop what is left of the old run.
                self.stop(unit);
                self.start(unit);
            }
            "start" => {}
            "reload" if !active => {
                let _ = writeln!(
                    self.err,
                    "Job for {unit} failed: the unit is not active, cannot reload."
                );
                return 1;
            }
            "reload" => {
                let exec = self.store.state.active[unit].exec_start.clone();
                self.log(unit, "Reloaded", &exec);
            }
            "try-restart" | "try-reload-or-restart" if !active => {}
            _ => {
                self.stop(unit);
                self.start(unit);
            }
        }
        0
    }

    fn enable(&mut self, names: &[String]) -> i32 {
        for unit in names {
            let Some(disk) = units::find(self.root, unit) else {
                let _ = writeln!(
                    self.err,
                    "Failed to enable unit: Unit file {unit} does not exist."
                );
                return 1;
            };
            let parsed = disk.parsed();
            if !parsed.installable() {
                let _ = writeln!(self.err, "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\nor Alias= settings in the [Install] section). This means they are not meant\nto be enabled or disabled using systemctl.");
                continue;
            }
            let links = parsed
                .wanted_by
                .iter()
                .map(|t| (t, "wants"))
                .chain(parsed.required_by.iter().map(|t| (t, "requires")));
            for (target, kind) in links.collect::<Vec<_>>() {
                let link = format!("{ENABLE_DIR}/{target}.{kind}/{unit}");
                let path = self.root.path(&link);
                if path.symlink_metadata().is_ok() {
                    continue;
                }
                let made = path
                    .parent()
                    .map_or(Ok(()), fs::create_dir_all)
                    .and_then(|_| std::os::unix::fs::symlink(&disk.fragment, &path));
                match made {
                    Ok(()) => {
                        let _ = writeln!(
                            self.err,
                            "Created symlink {link} \u{2192} {}.",
                            disk.fragment
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(self.err, "Failed to enable unit: {link}: {e}");
                        return 1;
                    }
                }
            }
        }
        // systemctl enable reloads the manager unless --no-reload.
        if !self.opts.no_reload {
            self.store.state.reload(self.root);
        }
        if self.opts.now {
            return names
                .iter()
                .map(|n| self.job("start", n))
                .max()
                .unwrap_or(0);
        }
        0
    }

    fn disable(&mut self, names: &[String]) -> i32 {
        for unit in names {
            if units::find(self.root, unit).is_none() && !self.store.state.loaded.contains_key(unit)
            {
                let _ = writeln!(
                    self.err,
                    "Failed to disable unit: Unit file {unit} does not exist."
                );
                return 1;
            }
            for link in units::enablement_links(self.root, unit) {
                if fs::remove_file(self.root.path(&link)).is_ok() {
                    let _ = writeln!(self.err, "Removed \"{link}\".");
                }
            }
        }
        if !self.opts.no_reload {
            self.store.state.reload(self.root);
        }
        if self.opts.now {
            names
                .iter()
                .filter(|n| self.store.state.active.contains_key(*n))
                .cloned()
                .collect::<Vec<_>>()
                .iter()
                .for_each(|n| self.stop(n));
        }
        0
    }

    fn is_active(&mut self, names: &[String]) -> i32 {
        let mut any = false;
        for unit in names {
            let state = self.run_state(unit);
            any |= state == Run::Running;
            if !self.opts.quiet {
                let word = match state {
                    Run::Running => "active",
                    Run::Failed => "failed",
                    Run::Inactive => "inactive",
                };
                let _ = writeln!(self.out, "{word}");
            }
        }
        if any {
            0
        } else {
            3
        }
    }

    /// enabled / disabled / static from the files on disk, as systemctl is-enabled reads them.
    fn unit_file_state(&self, unit: &str) -> Option<&'static str> {
        let disk = units::find(self.root, unit)?;
        Some(if !units::enablement_links(self.root, unit).is_empty() {
            "enabled"
        } else if disk.parsed().installable() {
            "disabled"
        } else {
            "static"
        })
    }

    fn is_enabled(&mut self, names: &[String]) -> i32 {
        let mut code = 1;
        for unit in names {
            match self.unit_file_state(unit) {
                None => {
                    let _ = writeln!(
                        self.err,
                        "Failed to get unit file state for {unit}: No such file or directory"
                    );
                    return 1;
                }
                Some(s) => {
                    if s != "disabled" {
                        code = 0;
                    }
                    if !self.opts.quiet {
                        let _ = writeln!(self.out, "{s}");
                    }
                }
            }
        }
        code
    }

    fn property(&self, unit: &str, prop: &str) -> Option<String> {
        let st = &self.store.state;
        let loaded = st.loaded.get(unit);
        let active = st.active.get(unit);
        Some(match prop {
            "Id" | "Names" => unit.to_string(),
            "LoadState" => if loaded.is_some() {
                "loaded"
            } else {
                "not-found"
            }
            .to_string(),
            "ActiveState" => match self.run_state(unit) {
                Run::Running => "active",
                Run::Failed => "failed",
                Run::Inactive => "inactive",
            }
            .to_string(),
            "SubState" => match self.run_state(unit) {
                Run::Running => "running",
                Run::Failed => "failed",
                Run::Inactive => "dead",
            }
            .to_string(),
            "MainPID" => match (self.run_state(unit), active.and_then(|a| a.pid)) {
                (Run::Running, Some(pid)) => pid.to_string(),
                _ => "0".to_string(),
            },
            "Result" => if self.run_state(unit) == Run::Failed {
                "exit-code"
            } else {
                "success"
            }
            .to_string(),
            "UnitFileState" => self.unit_file_state(unit).unwrap_or("").to_string(),
            "NeedDaemonReload" => if st.need_reload(self.root, unit) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            "FragmentPath" => loaded.map(|l| l.fragment.clone()).unwrap_or_default(),
            "Description" => loaded
                .and_then(|l| l.parsed.description.clone())
                .unwrap_or_else(|| unit.to_string()),
            // The raw line(s) as loaded; systemd prints a structured form, playbooks want flags.
            "ExecStart" => loaded
                .map(|l| l.parsed.exec_start.join(" ; "))
                .unwrap_or_default(),
            "ActiveEnterTimestamp" => active.map(|a| utc(a.since)).unwrap_or_default(),
            _ => return None,
        })
    }

    fn show(&mut self, names: &[String]) -> i32 {
        const DEFAULT: &[&str] = &[
            "Id",
            "Description",
            "LoadState",
            "ActiveState",
            "SubState",
            "UnitFileState",
            "FragmentPath",
            "NeedDaemonReload",
            "ExecStart",
            "ActiveEnterTimestamp",
        ];
        let props: Vec<String> = if self.opts.props.is_empty() {
            DEFAULT.iter().map(|s| s.to_string()).collect()
        } else {
            self.opts.props.clone()
        };
        for (i, unit) in names.iter().enumerate() {
            if i > 0 && !self.opts.value {
                let _ = writeln!(self.out);
            }
            for p in &props {
                // Unknown properties print nothing, as systemctl does for properties it lacks.
                let Some(v) = self.property(unit, p) else {
                    continue;
                };
                let _ = if self.opts.value {
                    writeln!(self.out, "{v}")
                } else {
                    writeln!(self.out, "{p}={v}")
                };
            }
        }
        0
    }

    fn status(&mut self, names: &[String]) -> i32 {
        let mut code = 0;
        for unit in names {
            let loaded = self.store.state.loaded.get(unit).cloned();
            let active = self.store.state.active.get(unit).cloned();
            let Some(l) = loaded else {
                let _ = writeln!(self.err, "Unit {unit} could not be found.");
                code = code.max(4);
                continue;
            };
            let state = self.run_state(unit);
            let dot = match state {
                Run::Running => "\u{25cf}",
                Run::Failed => "\u{00d7}",
                Run::Inactive => "\u{25cb}",
            };
            let note = if service::component(&l.parsed.exec_start).is_some() {
                RUNS_NOTE
            } else {
                STAND_IN_NOTE
            };
            let desc = l.parsed.description.clone().unwrap_or_else(|| unit.clone());
            let file_state = self.unit_file_state(unit).unwrap_or("bad");
            let _ = writeln!(self.out, "{dot} {unit} - {desc}");
            let _ = writeln!(
                self.out,
                "     Loaded: loaded ({}; {file_state}) {note}",
                l.fragment
            );
            match &active {
                Some(a) if state == Run::Failed => {
                    let _ = writeln!(
                        self.out,
                        "     Active: failed (Result: exit-code) since {}",
                        utc(a.since)
                    );
                    if let Some(e) = &a.exec_error {
                        let _ = writeln!(
                            self.out,
                            "    Process: ExecStart={e} (code=exited, status=203/EXEC)"
                        );
                    }
                    code = code.max(3);
                }
                Some(a) => {
                    let _ = writeln!(
                        self.out,
                        "     Active: active (running) since {}",
                        utc(a.since)
                    );
                    if let Some(pid) = a.pid {
                        let comm = service::component(&a.exec_start).unwrap_or("?");
                        let _ = writeln!(self.out, "   Main PID: {pid} ({comm})");
                    }
                    for e in &a.exec_start {
                        let _ = writeln!(self.out, "  ExecStart: {e}");
                    }
                }
                None => {
                    let _ = writeln!(self.out, "     Active: inactive (dead)");
                    code = code.max(3);
                }
            }
            if self.store.state.need_reload(self.root, unit) {
                let _ = writeln!(self.out, "Warning: The unit file, source configuration file or drop-ins of {unit} changed on disk. Run 'systemctl daemon-reload' to reload units.");
            }
            if let Some(tail) = service::log_tail(self.root, unit, Some(10)) {
                let _ = writeln!(self.out);
                let _ = write!(self.out, "{tail}");
            }
        }
        code
    }

    fn cat(&mut self, names: &[String]) -> i32 {
        for unit in names {
            let Some(disk) = units::find(self.root, unit) else {
                let _ = writeln!(self.err, "No files found for {unit}.");
                return 1;
            };
            for (path, bytes) in &disk.sources {
                let _ = writeln!(self.out, "# {path}");
                let _ = self.out.write_all(bytes);
            }
        }
        0
    }

    /// What a reboot does to services: every running unit stops, no active state survives, the
    /// unit files are loaded afresh and the enabled units (WantedBy=/RequiredBy= symlinks)
    /// start. The host itself (its sshd, its files) stays up.
    fn reboot(&mut self) -> i32 {
        let running: Vec<String> = self.store.state.active.keys().cloned().collect();
        for u in &running {
            self.stop(u);
        }
        self.store.state.active.clear();
        self.store.state.reload(self.root);
        for u in units::enabled_units(self.root) {
            if self.store.state.loaded.contains_key(&u) {
                self.start(&u);
            }
        }
        0
    }

    fn list_units(&mut self) -> i32 {
        let st = &self.store.state;
        let _ = writeln!(self.out, "  UNIT LOAD ACTIVE SUB DESCRIPTION");
        for (name, l) in &st.loaded {
            let (a, s) = match self.run_state(name) {
                Run::Running => ("active", "running"),
                Run::Failed => ("failed", "failed"),
                Run::Inactive => ("inactive", "dead"),
            };
            if a != "inactive" || self.opts.all {
                let desc = l.parsed.description.as_deref().unwrap_or(name);
                let _ = writeln!(self.out, "  {name} loaded {a} {s} {desc}");
            }
        }
        let _ = writeln!(self.out, "{STAND_IN_NOTE}");
        0
    }
}

#[cfg(test)]
#[path = "systemctl_tests.rs"]
mod tests;
