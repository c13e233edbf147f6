//! What bootstrapctl knows of one host: a snapshot read in batches, plus an overlay of the
//! changes planned on top of it, so that later tasks plan against the state earlier tasks
//! leave behind (this is what makes a `--check` preview of a fresh host exact). The cluster
//! objects a host's kubectl reaches are part of that host's view (see `kube`).

pub mod kernel;
pub mod kube;
pub mod read;

use std::collections::BTreeMap;

pub use kernel::{KernelRead, ModuleState};
pub use kube::{Cluster, KubeRead, ListRef, ObjectRef};
pub use read::{parse_reads, reads_script, Read};

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

/// One layer of what is known of a host: what was read (the snapshot), or what is planned on
/// top of it (the overlay). A `None` swap list or a missing key means "not in this layer".
#[derive(Debug, Clone, Default)]
struct Layer {
    files: BTreeMap<String, FileState>,
    units: BTreeMap<String, UnitState>,
    swaps: Option<Vec<String>>,
    /// Cluster objects by reference; `None` is an object known to be absent.
    kube: BTreeMap<ObjectRef, KubeObject>,
    /// Sysctl values by dotted name; `None` is a sysctl this kernel does not have.
    sysctls: BTreeMap<String, Option<String>>,
    modules: BTreeMap<String, ModuleState>,
}

/// A cluster object as read: the object, `None` when absent, or why kubectl could not say.
pub type KubeObject = Result<Option<serde_json::Value>, String>;
/// A list of cluster objects as read, or why kubectl could not say.
pub type KubeList = Result<Vec<serde_json::Value>, String>;

/// The snapshot plus overlay. The snapshot is what was read from the host; the overlay holds
/// changes planned on top of it and not yet applied. Every lookup asks the overlay first.
///
/// The two are kept apart so that each has one rule: a command run (under `--check` with
/// `check_mode: false`, or in a real apply) may have changed anything it could read, so it
/// drops the snapshot (`refresh`), which the next task reads afresh; it never drops the
/// overlay, since no command applies planned changes. In a real apply the overlay is empty
/// whenever a command runs, because applied changes move into the snapshot (`settle`).
///
/// Reading an entry that was never fetched returns `None`: the engine fetches everything a
/// module declares in `reads()` before planning.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    snapshot: Layer,
    overlay: Layer,
    /// Read-only command outputs: snapshot only (a plan never knows what a command prints).
    commands: BTreeMap<String, CommandOutput>,
    /// Lists of cluster objects as read; the overlay's objects are merged in on lookup.
    kube_lists: BTreeMap<ListRef, KubeList>,
    /// Facts survive every refresh: a task does not change the hostname or the kernel.
    facts: Option<Facts>,
}

impl HostView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn file(&self, path: &str) -> Option<&FileState> {
        self.overlay
            .files
            .get(path)
            .or_else(|| self.snapshot.files.get(path))
    }
    pub fn unit(&self, name: &str) -> Option<&UnitState> {
        let n = unit_name(name);
        self.overlay
            .units
            .get(&n)
            .or_else(|| self.snapshot.units.get(&n))
    }
    pub fn active_swaps(&self) -> Option<&[String]> {
        self.overlay
            .swaps
            .as_deref()
            .or(self.snapshot.swaps.as_deref())
    }
    /// A sysctl's value (whitespace collapsed); `Some(None)`: the kernel has no such key.
    pub fn sysctl(&self, name: &str) -> Option<&Option<String>> {
        let n = kernel::sysctl_name(name);
        self.overlay
            .sysctls
            .get(&n)
            .or_else(|| self.snapshot.sysctls.get(&n))
    }
    pub fn kernel_module(&self, name: &str) -> Option<ModuleState> {
        let n = kernel::module_name(name);
        self.overlay
            .modules
            .get(&n)
            .or_else(|| self.snapshot.modules.get(&n))
            .copied()
    }
    pub fn facts(&self) -> Option<&Facts> {
        self.facts.as_ref()
    }
    pub fn command(&self, cmd: &str) -> Option<&CommandOutput> {
        self.commands.get(cmd)
    }
    pub fn kube_object(&self, r: &ObjectRef) -> Option<&KubeObject> {
        self.overlay
            .kube
            .get(r)
            .or_else(|| self.snapshot.kube.get(r))
    }
    /// The list as read, with the planned objects of the same resource and namespace put in
    /// (or taken out) as the server would list them after the planned changes.
    pub fn kube_list(&self, l: &ListRef) -> Option<KubeList> {
        let read = self.kube_lists.get(l)?;
        let Ok(items) = read else {
            return Some(read.clone());
        };
        let mut items = items.clone();
        for (r, planned) in &self.overlay.kube {
            if !l.holds(r) {
                continue;
            }
            items.retain(|i| i["metadata"]["name"].as_str() != Some(r.name.as_str()));
            if let Ok(Some(obj)) = planned {
                if l.selects(obj) {
                    items.push(obj.clone());
                }
            }
        }
        Some(Ok(items))
    }

    pub fn has(&self, read: &Read) -> bool {
        match read {
            Read::File(p) => self.file(p).is_some(),
            Read::Unit(u) => self.unit(u).is_some(),
            Read::Swaps => self.active_swaps().is_some(),
            Read::Facts => self.facts.is_some(),
            Read::Command(c) => self.commands.contains_key(c),
            Read::Kube(KubeRead::Object(r)) => self.kube_object(r).is_some(),
            Read::Kube(KubeRead::List(l)) => self.kube_lists.contains_key(l),
            Read::Kernel(KernelRead::Sysctl(n)) => self.sysctl(n).is_some(),
            Read::Kernel(KernelRead::Module(m)) => self.kernel_module(m).is_some(),
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

    // What was read: the snapshot.

    pub fn set_file(&mut self, path: &str, state: FileState) {
        self.snapshot.files.insert(path.to_string(), state);
    }
    pub fn set_unit(&mut self, name: &str, state: UnitState) {
        self.snapshot.units.insert(unit_name(name), state);
    }
    pub fn set_swaps(&mut self, swaps: Vec<String>) {
        self.snapshot.swaps = Some(swaps);
    }
    pub fn set_command(&mut self, cmd: &str, out: CommandOutput) {
        self.commands.insert(cmd.to_string(), out);
    }
    pub fn set_kube_object(&mut self, r: &ObjectRef, obj: KubeObject) {
        self.snapshot.kube.insert(r.clone(), obj);
    }
    pub fn set_kube_list(&mut self, l: &ListRef, list: KubeList) {
        self.kube_lists.insert(l.clone(), list);
    }
    pub fn set_sysctl(&mut self, name: &str, value: Option<String>) {
        self.snapshot
            .sysctls
            .insert(kernel::sysctl_name(name), value);
    }
    pub fn set_kernel_module(&mut self, name: &str, state: ModuleState) {
        self.snapshot
            .modules
            .insert(kernel::module_name(name), state);
    }
    pub fn set_facts(&mut self, facts: Facts) {
        self.facts = Some(facts);
    }

    // What is planned: the overlay.

    pub fn plan_file(&mut self, path: &str, state: FileState) {
        self.overlay.files.insert(path.to_string(), state);
    }
    /// The planned state of a unit, starting from what is known of it.
    pub fn plan_unit(&mut self, name: &str) -> &mut UnitState {
        let n = unit_name(name);
        let known = self.snapshot.units.get(&n).cloned().unwrap_or_default();
        self.overlay.units.entry(n).or_insert(known)
    }
    /// Every unit known, read or planned.
    pub fn unit_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot.units.keys().cloned().collect();
        for n in self.overlay.units.keys() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }
    pub fn plan_sysctl(&mut self, name: &str, value: &str) {
        self.overlay.sysctls.insert(
            kernel::sysctl_name(name),
            Some(kernel::normalize_value(value)),
        );
    }
    pub fn plan_kernel_module(&mut self, name: &str, state: ModuleState) {
        self.overlay
            .modules
            .insert(kernel::module_name(name), state);
    }
    pub fn plan_swaps(&mut self, swaps: Vec<String>) {
        self.overlay.swaps = Some(swaps);
    }
    pub fn plan_kube_object(&mut self, r: &ObjectRef, obj: Option<serde_json::Value>) {
        self.overlay.kube.insert(r.clone(), Ok(obj));
    }

    /// After a command ran: drop what was read (it may have changed anything), keep what is
    /// planned. The next task reads afresh what it needs.
    pub fn refresh(&mut self) {
        self.snapshot = Layer::default();
        self.commands.clear();
        self.kube_lists.clear();
    }

    /// Drop `reads` from the snapshot only, so they are read afresh (a delegated task reads
    /// its delegate anew, since other hosts' tasks may have changed it meanwhile).
    pub fn forget_reads(&mut self, reads: &[Read]) {
        for r in reads {
            match r {
                Read::File(p) => {
                    self.snapshot.files.remove(p);
                }
                Read::Unit(u) => {
                    self.snapshot.units.remove(&unit_name(u));
                }
                Read::Swaps => self.snapshot.swaps = None,
                Read::Facts => {}
                Read::Command(c) => {
                    self.commands.remove(c);
                }
                Read::Kube(KubeRead::Object(o)) => {
                    self.snapshot.kube.remove(o);
                }
                Read::Kube(KubeRead::List(l)) => {
                    self.kube_lists.remove(l);
                }
                Read::Kernel(KernelRead::Sysctl(n)) => {
                    self.snapshot.sysctls.remove(&kernel::sysctl_name(n));
                }
                Read::Kernel(KernelRead::Module(m)) => {
                    self.snapshot.modules.remove(&kernel::module_name(m));
                }
            }
        }
    }

    /// After the planned changes were applied for real: they are now what the host has.
    /// Cluster objects are re-read instead (the server fills in fields of its own), so
    /// planned objects and what was read of those clusters are dropped.
    pub fn settle(&mut self) {
        let overlay = std::mem::take(&mut self.overlay);
        self.snapshot.files.extend(overlay.files);
        self.snapshot.units.extend(overlay.units);
        self.snapshot.sysctls.extend(overlay.sysctls);
        self.snapshot.modules.extend(overlay.modules);
        if overlay.swaps.is_some() {
            self.snapshot.swaps = overlay.swaps;
        }
        for r in overlay.kube.keys() {
            self.snapshot.kube.retain(|k, _| k.cluster != r.cluster);
            self.kube_lists.retain(|k, _| k.cluster != r.cluster);
        }
    }

    /// Record what `apply` did to the host for real, on top of what was read, while the
    /// changes planned and not applied stay planned on top of that. `apply` simulates the ops
    /// that ran; while it runs, the view is what the host now has, without the plans.
    pub fn record_applied(&mut self, apply: impl FnOnce(&mut HostView)) {
        let planned = std::mem::take(&mut self.overlay);
        apply(self);
        self.settle();
        self.overlay = planned;
    }

    /// After a failed apply the host is partly changed: forget everything but the facts.
    pub fn forget_all(&mut self) {
        self.snapshot = Layer::default();
        self.overlay = Layer::default();
        self.commands.clear();
        self.kube_lists.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> FileState {
        FileState {
            kind: FileKind::File,
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            content: Some(content.as_bytes().to_vec()),
        }
    }

    #[test]
    fn a_refresh_drops_what_was_read_and_keeps_what_is_planned() {
        let mut v = HostView::new();
        v.set_file("/etc/a", file("read"));
        v.set_file("/etc/b", file("read"));
        v.set_unit("kubelet", UnitState::default());
        v.plan_file("/etc/a", file("planned"));
        v.plan_unit("kubelet").need_daemon_reload = true;
        v.refresh();
        assert_eq!(v.file("/etc/a"), Some(&file("planned")));
        assert_eq!(v.file("/etc/b"), None, "read again after a command");
        assert!(v.unit("kubelet.service").unwrap().need_daemon_reload);
        assert_eq!(
            v.missing(&[Read::File("/etc/a".into()), Read::File("/etc/b".into())]),
            vec![Read::File("/etc/b".into())]
        );
    }

    #[test]
    fn applied_changes_become_the_snapshot_and_plans_stay_on_top() {
        let mut v = HostView::new();
        v.plan_file("/etc/planned", file("p"));
        v.record_applied(|v| v.plan_file("/etc/applied", file("x")));
        v.refresh();
        // The applied one is gone with the snapshot (a command may have changed it); the
        // planned one stays.
        assert_eq!(v.file("/etc/applied"), None);
        assert_eq!(v.file("/etc/planned"), Some(&file("p")));
        v.settle();
        v.refresh();
        assert_eq!(v.file("/etc/planned"), None);
    }

    #[test]
    fn a_list_shows_the_objects_planned_in_its_namespace() {
        let cluster = Cluster {
            kubectl: "kubectl".into(),
            kubeconfig: "/k".into(),
        };
        let list = ListRef {
            cluster: cluster.clone(),
            resource: "secret".into(),
            namespace: Some("kube-system".into()),
            field_selector: Some("type=bootstrap.kubernetes.io/token".into()),
        };
        let at = |name: &str| ObjectRef {
            cluster: cluster.clone(),
            resource: "secret".into(),
            namespace: Some("kube-system".into()),
            name: name.into(),
        };
        let token = |name: &str| serde_json::json!({"metadata": {"name": name}, "type": "bootstrap.kubernetes.io/token"});
        let mut v = HostView::new();
        v.set_kube_list(&list, Ok(vec![token("old")]));
        v.plan_kube_object(&at("new"), Some(token("new")));
        v.plan_kube_object(&at("old"), None);
        v.plan_kube_object(
            &at("opaque"),
            Some(serde_json::json!({"metadata": {"name": "opaque"}, "type": "Opaque"})),
        );
        assert_eq!(v.kube_list(&list), Some(Ok(vec![token("new")])));
    }
}
