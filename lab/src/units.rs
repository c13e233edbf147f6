//! Unit files for the systemctl stand-in: finding them on disk (with drop-ins), parsing the few
//! keys that matter, and the persisted state (definitions as loaded, active units) under a lock.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Unit search path, highest priority first, as systemd's system manager has it.
pub(crate) const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
/// Where `enable` creates its `*.wants` symlinks, as systemd does.
pub(crate) const ENABLE_DIR: &str = "/etc/systemd/system";
pub(crate) const STATE_DIR: &str = "/var/lib/bootstrapctl-lab/systemd";
pub(crate) const LOG_DIR: &str = "/var/log/lab";

const SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".timer",
    ".mount",
    ".automount",
    ".path",
    ".slice",
    ".scope",
    ".swap",
    ".device",
];

/// `kubelet` means `kubelet.service`, as with systemctl.
pub(crate) fn normalize(name: &str) -> String {
    if SUFFIXES
        .iter()
        .any(|s| name.ends_with(s) && name.len() > s.len())
    {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// The filesystem the stand-in sees: "/" inside a lab host, a temp dir in tests. Paths shown to
/// users are always the host's view (`/etc/systemd/system/x.service`).
#[derive(Debug, Clone)]
pub(crate) struct Root(pub(crate) PathBuf);

impl Root {
    pub(crate) fn path(&self, host_path: &str) -> PathBuf {
        self.0.join(host_path.trim_start_matches('/'))
    }
}

/// A unit as it is on disk now: main file plus drop-ins, each as (host path, bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskUnit {
    pub(crate) name: String,
    pub(crate) fragment: String,
    pub(crate) sources: Vec<(String, Vec<u8>)>,
}

impl DiskUnit {
    /// Identity of the definition: changes whenever the file or any drop-in changes.
    pub(crate) fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (path, bytes) in &self.sources {
            h.update((path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn parsed(&self) -> Parsed {
        let mut p = Parsed::default();
        for (i, (_, bytes)) in self.sources.iter().enumerate() {
            p.apply(&String::from_utf8_lossy(bytes), i == 0);
        }
        p
    }
}

/// Looks `name` up in the unit path; drop-ins come from `<name>.d/*.conf` in every unit dir,
/// ordered by file name, a higher-priority dir winning for the same name.
pub(crate) fn find(root: &Root, name: &str) -> Option<DiskUnit> {
    let fragment = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| root.path(p).is_file())?;
    let main = fs::read(root.path(&fragment)).ok()?;
    let mut dropins: BTreeMap<String, String> = BTreeMap::new();
    for d in UNIT_DIRS {
        collect_dropins(root, &format!("{d}/{name}.d"), &mut dropins);
    }
    Some(disk_unit(root, name.to_string(), fragment, main, dropins))
}

/// Every unit file in the unit path (what daemon-reload loads). Each unit dir is listed once
/// (fragments and `.d` drop-in dirs from the same listing): daemon-reload runs on every
/// `enable`, so its cost is paid per onboarded host.
pub(crate) fn scan(root: &Root) -> BTreeMap<String, DiskUnit> {
    // Per unit dir, highest priority first: its unit files and its drop-in dirs.
    // A dir reached twice (`/lib` is a symlink to `/usr/lib` on merged-/usr systems) is listed
    // once, under its first (higher-priority) name, as systemd reduces its lookup paths.
    let mut seen = std::collections::HashSet::new();
    let listings: Vec<(&str, Vec<String>, Vec<String>)> = UNIT_DIRS
        .iter()
        .filter(|d| match fs::canonicalize(root.path(d)) {
            Ok(real) => seen.insert(real),
            Err(_) => false,
        })
        .map(|d| {
            let (mut files, mut dropin_dirs) = (Vec::new(), Vec::new());
            for e in fs::read_dir(root.path(d)).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // The dirent type avoids a stat per entry; only symlinks are followed.
                let Ok(mut ty) = e.file_type() else { continue };
                if ty.is_symlink() {
                    match fs::metadata(e.path()) {
                        Ok(m) => ty = m.file_type(),
                        Err(_) => continue,
                    }
                }
                if ty.is_dir() && name.ends_with(".d") {
                    dropin_dirs.push(name);
                } else if ty.is_file() && SUFFIXES.iter().any(|s| name.ends_with(s)) {
                    files.push(name);
                }
            }
            (*d, files, dropin_dirs)
        })
        .collect();
    let mut fragments: BTreeMap<String, String> = BTreeMap::new();
    for (dir, files, _) in &listings {
        for f in files {
            fragments
                .entry(f.clone())
                .or_insert_with(|| format!("{dir}/{f}"));
        }
    }
    fragments
        .into_iter()
        .filter_map(|(name, fragment)| {
            let main = fs::read(root.path(&fragment)).ok()?;
            let wanted = format!("{name}.d");
            let mut dropins: BTreeMap<String, String> = BTreeMap::new();
            for (dir, _, dirs) in &listings {
                if dirs.contains(&wanted) {
                    collect_dropins(root, &format!("{dir}/{wanted}"), &mut dropins);
                }
            }
            Some((name.clone(), disk_unit(root, name, fragment, main, dropins)))
        })
        .collect()
}

/// Adds the `*.conf` files of one drop-in dir; a name already seen (higher priority) wins.
fn collect_dropins(root: &Root, dir: &str, dropins: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(root.path(dir)) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if file.ends_with(".conf") && e.path().is_file() {
            dropins
                .entry(file.clone())
                .or_insert(format!("{dir}/{file}"));
        }
    }
}

fn disk_unit(
    root: &Root,
    name: String,
    fragment: String,
    main: Vec<u8>,
    dropins: BTreeMap<String, String>,
) -> DiskUnit {
    let mut sources = vec![(fragment.clone(), main)];
    for path in dropins.into_values() {
        if let Ok(bytes) = fs::read(root.path(&path)) {
            sources.push((path, bytes));
        }
    }
    DiskUnit {
        name,
        fragment,
        sources,
    }
}

/// The keys the stand-in understands, after applying drop-ins in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Parsed {
    pub(crate) description: Option<String>,
    /// ExecStart lines with continuations joined; an empty `ExecStart=` in a drop-in resets.
    pub(crate) exec_start: Vec<String>,
    /// ExecStartPre lines, run in order before ExecStart; an empty one resets.
    #[serde(default)]
    pub(crate) exec_start_pre: Vec<String>,
    /// [Install] targets from the main file (systemd ignores [Install] in drop-ins).
    pub(crate) wanted_by: Vec<String>,
    pub(crate) required_by: Vec<String>,
    /// Alias= or Also= present: enable-able even without targets.
    pub(crate) other_install: bool,
}

impl Parsed {
    fn apply(&mut self, text: &str, is_fragment: bool) {
        let mut section = String::new();
        for line in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                section = line[1..line.len() - 1].to_string();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match (section.as_str(), key) {
                ("Unit", "Description") => self.description = Some(value.to_string()),
                ("Service", "ExecStart") if value.is_empty() => self.exec_start.clear(),
                ("Service", "ExecStart") => self.exec_start.push(value.to_string()),
                ("Service", "ExecStartPre") if value.is_empty() => self.exec_start_pre.clear(),
                ("Service", "ExecStartPre") => self.exec_start_pre.push(value.to_string()),
                ("Install", "WantedBy") if is_fragment => self
                    .wanted_by
                    .extend(value.split_whitespace().map(str::to_string)),
                ("Install", "RequiredBy") if is_fragment => self
                    .required_by
                    .extend(value.split_whitespace().map(str::to_string)),
                ("Install", "Alias" | "Also") if is_fragment => self.other_install = true,
                _ => {}
            }
        }
    }

    pub(crate) fn installable(&self) -> bool {
        !self.wanted_by.is_empty() || !self.required_by.is_empty() || self.other_install
    }
}

/// Joins lines ending in a backslash with the next one, replacing the backslash by a space,
/// as systemd does (comment lines inside a continuation are skipped).
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for raw in text.lines() {
        if cur.is_some() {
            let t = raw.trim_start();
            if t.starts_with('#') || t.starts_with(';') {
                continue;
            }
        }
        let (body, continues) = match raw.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        let acc = cur.get_or_insert_with(String::new);
        if !acc.is_empty() {
            acc.push(' ');
        }
        acc.push_str(body.trim());
        if !continues {
            out.push(cur.take().unwrap_or_default());
        }
    }
    out.extend(cur);
    out
}

/// A unit definition as it was at the last daemon-reload: what `show`, `start` and the
/// NeedDaemonReload check need, not the text (that stays on disk; the state file is read and
/// written by every systemctl call, so it is kept small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Loaded {
    pub(crate) fragment: String,
    pub(crate) digest: String,
    pub(crate) parsed: Parsed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Active {
    pub(crate) since: u64,
    /// The ExecStart the unit was started with (as loaded then).
    pub(crate) exec_start: Vec<String>,
    /// Main process of a unit that runs a component stand-in (none for state-only units).
    #[serde(default)]
    pub(crate) pid: Option<u32>,
    /// Its start time in clock ticks, so that a recycled pid is never taken for it.
    #[serde(default)]
    pub(crate) started: Option<u64>,
    /// Set when the main process could not be executed (the unit is then `failed`).
    #[serde(default)]
    pub(crate) exec_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) loaded: BTreeMap<String, Loaded>,
    pub(crate) active: BTreeMap<String, Active>,
    pub(crate) reloads: u64,
}

impl State {
    /// daemon-reload: the definitions on disk now become the loaded ones.
    pub(crate) fn reload(&mut self, root: &Root) {
        let mut before = std::mem::take(&mut self.loaded);
        self.loaded = scan(root)
            .into_values()
            .map(|u| {
                let digest = u.digest();
                // Unchanged since the last reload: keep what was parsed then.
                let loaded = match before.remove(&u.name) {
                    Some(l) if l.digest == digest && l.fragment == u.fragment => l,
                    _ => Loaded {
                        fragment: u.fragment.clone(),
                        digest,
                        parsed: u.parsed(),
                    },
                };
                (u.name, loaded)
            })
            .collect();
        self.reloads += 1;
    }

    /// True when what is on disk differs from what was loaded (changed, new, or removed).
    pub(crate) fn need_reload(&self, root: &Root, name: &str) -> bool {
        match (find(root, name), self.loaded.get(name)) {
            (Some(disk), Some(loaded)) => disk.digest() != loaded.digest,
            (Some(_), None) => true,
            (None, Some(_)) => true,
            (None, None) => false,
        }
    }
}

/// The state file, locked (flock) for the life of this value: concurrent systemctl calls in a
/// host serialize their read-modify-write.
pub(crate) struct Store {
    file: PathBuf,
    _lock: fs::File,
    pub(crate) state: State,
}

/// Creates an empty store in `dir` (the host's view of STATE_DIR) at `lab up`, so that
/// read-only verbs (`show`, `is-active`) on a fresh host never create files, as on real systemd.
pub(crate) fn init_store(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("lock"), b"")?;
    fs::write(
        dir.join("state.json"),
        serde_json::to_string_pretty(&State::default()).expect("state serializes"),
    )
}

impl Store {
    pub(crate) fn open(root: &Root) -> io::Result<Store> {
        let dir = root.path(STATE_DIR);
        fs::create_dir_all(&dir)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let file = dir.join("state.json");
        let state = match fs::read_to_string(&file) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Store {
            file,
            _lock: lock,
            state,
        })
    }

    pub(crate) fn save(&self) -> io::Result<()> {
        let tmp = self.file.with_extension("json.tmp");
        fs::write(
            &tmp,
            serde_json::to_string(&self.state).expect("state serializes"),
        )?;
        fs::rename(&tmp, &self.file)
    }
}

/// `*.wants`/`*.requires` symlinks named `unit` under ENABLE_DIR (host paths).
pub(crate) fn enablement_links(root: &Root, unit: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.path(ENABLE_DIR)) else {
        return Vec::new();
    };
    let mut links: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.file_name().to_string_lossy().into_owned();
            if !(dir.ends_with(".wants") || dir.ends_with(".requires")) {
                return None;
            }
            let link = format!("{ENABLE_DIR}/{dir}/{unit}");
            root.path(&link).symlink_metadata().is_ok().then_some(link)
        })
        .collect();
    links.sort();
    links
}

/// Units enabled through `*.wants`/`*.requires` symlinks under ENABLE_DIR, deduplicated.
pub(crate) fn enabled_units(root: &Root) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(entries) = fs::read_dir(root.path(ENABLE_DIR)) else {
        return Vec::new();
    };
    for e in entries.flatten() {
        let dir = e.file_name().to_string_lossy().into_owned();
        if !(dir.ends_with(".wants") || dir.ends_with(".requires")) {
            continue;
        }
        for l in fs::read_dir(e.path()).into_iter().flatten().flatten() {
            out.insert(l.file_name().to_string_lossy().into_owned());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_adds_service() {
        assert_eq!(normalize("kubelet"), "kubelet.service");
        assert_eq!(normalize("kubelet.service"), "kubelet.service");
        assert_eq!(normalize("multi-user.target"), "multi-user.target");
        assert_eq!(normalize("foo.bar"), "foo.bar.service");
    }

    #[test]
    fn parse_joins_continuations_and_resets_exec_start() {
        let mut p = Parsed::default();
        p.apply("[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet \\\n  --a=1 \\\n  --b=2\n[Install]\nWantedBy=multi-user.target\n", true);
        assert_eq!(p.exec_start, ["/usr/bin/kubelet --a=1 --b=2"]);
        p.apply("[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --c\n[Install]\nWantedBy=other.target\n", false);
        assert_eq!(p.exec_start, ["/usr/bin/kubelet --c"]);
        assert_eq!(p.wanted_by, ["multi-user.target"]);
        assert_eq!(p.description.as_deref(), Some("kubelet"));
    }
}
