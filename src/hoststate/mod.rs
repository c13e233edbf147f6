//! What bootstrapctl knows of one host: a snapshot read in batches, plus an overlay of the
//! changes planned or applied since, so that later tasks plan against the state earlier tasks
//! leave behind (this is what makes a `--check` preview of a fresh host exact).

pub mod read;

use std::collections::BTreeMap;

pub use read::{parse_reads, reads_script, Read, ReadError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Absent,
    File,
    Directory,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub kind: FileKind,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// Content of regular files.
    pub content: Option<Vec<u8>>,
}

impl FileState {
    pub fn absent() -> Self {
        FileState {
            kind: FileKind::Absent,
            mode: 0,
            owner: String::new(),
            group: String::new(),
            content: None,
        }
    }
    pub fn exists(&self) -> bool {
        self.kind != FileKind::Absent
    }
}

/// A systemd unit as `systemctl show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// loaded | not-found | …; empty when systemctl gave nothing.
    pub load_state: String,
    /// active | inactive | failed | activating …
    pub active_state: String,
    /// enabled | disabled | static | …; empty when the unit file is unknown.
    pub unit_file_state: String,
    pub need_daemon_reload: bool,
}

/// What a read-only command printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Facts {
    pub hostname: String,
    pub os_id: String,
    pub os_version_id: String,
    pub os_pretty_name: String,
    pub kernel: String,
    pub arch: String,
    pub swap_devices: Vec<String>,
    pub systemd_running: bool,
}

/// The snapshot plus overlay. Reading an entry that was never fetched returns `None`: the
/// engine fetches everything a module declares in `reads()` before planning.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    files: BTreeMap<String, FileState>,
    units: BTreeMap<String, UnitState>,
    swaps: Option<Vec<String>>,
    facts: Option<Facts>,
    commands: BTreeMap<String, CommandOutput>,
}

impl HostView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn file(&self, path: &str) -> Option<&FileState> {
        self.files.get(path)
    }
    pub fn unit(&self, name: &str) -> Option<&UnitState> {
        self.units.get(&unit_name(name))
    }
    pub fn active_swaps(&self) -> Option<&[String]> {
        self.swaps.as_deref()
    }
    pub fn facts(&self) -> Option<&Facts> {
        self.facts.as_ref()
    }

    pub fn has(&self, read: &Read) -> bool {
        match read {
            Read::File(p) => self.files.contains_key(p),
            Read::Unit(u) => self.units.contains_key(&unit_name(u)),
            Read::Swaps => self.swaps.is_some(),
            Read::Facts => self.facts.is_some(),
            Read::Command(c) => self.commands.contains_key(c),
        }
    }

    /// The reads from `wanted` this view cannot answer yet, de-duplicated.
    pub fn missing(&self, wanted: &[Read]) -> Vec<Read> {
        let mut out: Vec<Read> = Vec::new();
        for r in wanted {
            if !self.has(r) && !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    pub fn set_file(&mut self, path: &str, state: FileState) {
        self.files.insert(path.to_string(), state);
    }
    pub fn set_unit(&mut self, name: &str, state: UnitState) {
        self.units.insert(unit_name(name), state);
    }
    pub fn unit_mut(&mut self, name: &str) -> &mut UnitState {
        self.units.entry(unit_name(name)).or_default()
    }
    pub fn units_mut(&mut self) -> impl Iterator<Item = (&String, &mut UnitState)> {
        self.units.iter_mut()
    }
    pub fn set_swaps(&mut self, swaps: Vec<String>) {
        self.swaps = Some(swaps);
    }
    pub fn command(&self, cmd: &str) -> Option<&CommandOutput> {
        self.commands.get(cmd)
    }
    pub fn set_command(&mut self, cmd: &str, out: CommandOutput) {
        self.commands.insert(cmd.to_string(), out);
    }
    /// A change to what a command reports (e.g. an object applied through kubectl) makes its
    /// cached output stale.
    pub fn forget_commands(&mut self) {
        self.commands.clear();
    }
    pub fn set_facts(&mut self, facts: Facts) {
        self.facts = Some(facts);
    }

    /// After a command ran for real we no longer know what it touched: forget everything but
    /// the facts, so the next task reads afresh.
    pub fn forget_all(&mut self) {
        self.files.clear();
        self.units.clear();
        self.swaps = None;
        self.commands.clear();
    }
}

/// `kubelet` → `kubelet.service`, as systemctl does.
pub fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// The unit a file under a systemd unit directory defines, if any.
pub fn unit_of_path(path: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once('/')?;
    let unit_dirs = [
        "/etc/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ];
    if unit_dirs.contains(&dir) && (file.ends_with(".service") || file.ends_with(".socket")) {
        Some(file.to_string())
    } else {
        None
    }
}
