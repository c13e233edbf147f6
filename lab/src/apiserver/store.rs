//! The object store that stands in for etcd: objects as JSON keyed by (resource, namespace,
//! name), one global resourceVersion counter, a bounded event log for watches, and on disk a
//! snapshot (`state.json`, written atomically: temp file + fsync + rename) plus a journal
//! (`state.log`, one JSON line per change), so a restart keeps everything.
//!
//! Like etcd's write-ahead log, a change costs one appended record, not a rewrite of every
//! object: with a hundred kubelets heartbeating, rewriting the whole state (nodes and CSRs with
//! their certificates, about a megabyte) under the store's lock on every write made each
//! request wait behind the disk. The journal is folded into a new snapshot when it grows past
//! the objects it describes, and at every start. Appends are not fsynced: the lab's stand-ins
//! restart as processes on a live machine (the page cache keeps what was written), and a
//! machine crash ends the lab's hosts anyway.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

/// Key: (resource plural, namespace or "", name).
pub(crate) type Key = (String, String, String);

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) kind: &'static str,
    pub(crate) resource: String,
    pub(crate) namespace: String,
    /// Shared by every watch it goes to (hundreds of kubelets each watch their own CSR).
    pub(crate) object: std::sync::Arc<Value>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StoreError {
    AlreadyExists,
    NotFound,
    /// resourceVersion precondition failed.
    Conflict,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    events: VecDeque<Event>,
    /// The open journal and how many records it holds since the last snapshot.
    journal: Option<(std::fs::File, usize)>,
}

pub(crate) struct Store {
    inner: Mutex<Inner>,
    changed: Condvar,
    file: Option<PathBuf>,
}

/// The journal is folded into the snapshot once it holds more records than this many plus
/// the number of objects (so compaction costs O(1) per write, amortized).
const JOURNAL_SLACK: usize = 1024;

const EVENT_LOG: usize = 4096;

impl Store {
    /// Open (or create) the store whose state file is `dir/state.json`; `None` keeps it in memory.
    pub(crate) fn open(dir: Option<&Path>) -> Result<Store, String> {
        let mut inner = Inner::default();
        let file = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
                let f = d.join("state.json");
                if let Ok(text) = std::fs::read_to_string(&f) {
                    let v: Value =
                        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
                    inner.rv = v["resourceVersion"].as_u64().unwrap_or(0);
                    for o in v["objects"].as_array().into_iter().flatten() {
                        let key = (
                            o["resource"].as_str().unwrap_or("").to_string(),
                            o["object"]["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                            o["object"]["metadata"]["name"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                        );
                        inner.objects.insert(key, o["object"].clone());
                    }
                }
                replay(&journal_of(&f), &mut inner);
                Some(f)
            }
            None => None,
        };
        if let Some(f) = &file {
            compact(f, &mut inner).map_err(|e| format!("{}: {e}", f.display()))?;
        }
        Ok(Store {
            inner: Mutex::new(inner),
            changed: Condvar::new(),
            file,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource, in one namespace or (None) all; sorted by namespace then name.
    pub(crate) fn list(&self, resource: &str, ns: Option<&str>) -> (Vec<Value>, u64) {
        let g = self.lock();
        let items = g
            .objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && ns.is_none_or(|want| want == n))
            .map(|(_, v)| v.clone())
            .collect();
        (items, g.rv)
    }

    pub(crate) fn create(&self, resource: &str, mut obj: Value) -> Result<Value, StoreError> {
        let mut g = self.lock();
        let key = key_of(resource, &obj);
        if g.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        g.rv += 1;
        let rv = g.rv;
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if has_spec(resource) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        g.objects.insert(key, obj.clone());
        self.record(&mut g, "ADDED", resource, &obj);
        Ok(obj)
    }

    /// Replace an object. `precondition`: the resourceVersion the client read (None = any).
    /// uid, creationTimestamp are kept; generation bumps when anything but metadata/status changed.
    pub(crate) fn update(
        &self,
        resource: &str,
        mut obj: Value,
        precondition: Option<&str>,
    ) -> Result<Value, StoreError> {
        let mut g = self.lock();
        let key = key_of(resource, &obj);
        let Some(old) = g.objects.get(&key).cloned() else {
            return Err(StoreError::NotFound);
        };
        if let Some(want) = precondition.filter(|s| !s.is_empty()) {
            if old["metadata"]["resourceVersion"].as_str() != Some(want) {
                return Err(StoreError::Conflict);
            }
        }
        if without_meta(&old) == without_meta(&obj)
            && old["metadata"] == merged_meta(&old, &obj)["metadata"]
        {
            // No-op update: nothing is written, resourceVersion stays (as etcd3 storage does).
            return Ok(old);
        }
        g.rv += 1;
        let rv = g.rv;
        let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
        if has_spec(resource) && strip(&old) != strip(&obj) {
            generation += 1;
        }
        let meta = meta_mut(&mut obj);
        for k in ["uid", "creationTimestamp"] {
            meta.insert(k.into(), old["metadata"][k].clone());
        }
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if has_spec(resource) {
            meta.insert("generation".into(), json!(generation));
        }
        g.objects.insert(key, obj.clone());
        self.record(&mut g, "MODIFIED", resource, &obj);
        Ok(obj)
    }

    pub(crate) fn delete(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let mut g = self.lock();
        let mut obj =
            g.objects
                .remove(&(resource.to_string(), ns.to_string(), name.to_string()))?;
        g.rv += 1;
        let rv = g.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(&mut g, "DELETED", resource, &obj);
        Some(obj)
    }

    /// Delete every namespaced object in `ns` (namespace deletion, done at once).
    pub(crate) fn delete_namespace_contents(&self, ns: &str) {
        let keys: Vec<Key> = self
            .lock()
            .objects
            .keys()
            .filter(|(_, n, _)| n == ns)
            .cloned()
            .collect();
        for (r, n, name) in keys {
            self.delete(&r, &n, &name);
        }
    }

    fn record(&self, g: &mut Inner, kind: &'static str, resource: &str, obj: &Value) {
        g.events.push_back(Event {
            rv: g.rv,
            kind,
            resource: resource.to_string(),
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            object: std::sync::Arc::new(obj.clone()),
        });
        while g.events.len() > EVENT_LOG {
            g.events.pop_front();
        }
        if let Some(f) = &self.file {
            if let Err(e) = journal(f, g, kind, resource, obj) {
                eprintln!("kube-apiserver (stand-in): writing {}: {e}", f.display());
            }
        }
        self.changed.notify_all();
    }

    /// Events after `since` for a resource (and namespace, and object name), waiting up to
    /// `wait` for one, with the resourceVersion they were looked for up to (so that a watch
    /// of one object need not look through the others' events again). Err(()) when `since`
    /// is older than the event log ("too old resource version").
    pub(crate) fn events_after(
        &self,
        since: u64,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
        wait: Duration,
    ) -> Result<(Vec<Event>, u64), ()> {
        let mut g = self.lock();
        if let Some(first) = g.events.front() {
            if since + 1 < first.rv && since < g.rv {
                return Err(());
            }
        }
        let pick = |g: &Inner| -> (Vec<Event>, u64) {
            // The log is in resourceVersion order: only what is newer than `since` is read.
            let from = g.events.partition_point(|e| e.rv <= since);
            let got = g
                .events
                .range(from..)
                .filter(|e| {
                    e.resource == resource
                        && ns.is_none_or(|n| n == e.namespace)
                        && name.is_none_or(|n| e.object["metadata"]["name"] == n)
                })
                .cloned()
                .collect();
            (got, g.rv)
        };
        let got = pick(&g);
        if !got.0.is_empty() {
            return Ok(got);
        }
        g = self
            .changed
            .wait_timeout(g, wait)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        Ok(pick(&g))
    }
}

fn journal_of(file: &Path) -> PathBuf {
    file.with_extension("log")
}

/// Apply the journal's records on top of the snapshot. A last line cut short (the process
/// was killed while appending) is ignored: its change was never acknowledged.
fn replay(journal: &Path, g: &mut Inner) {
    let Ok(text) = std::fs::read_to_string(journal) else {
        return;
    };
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<Value>(line) else {
            break;
        };
        let resource = r["resource"].as_str().unwrap_or("").to_string();
        let key = key_of(&resource, &r["object"]);
        if r["kind"] == "DELETED" {
            g.objects.remove(&key);
        } else {
            g.objects.insert(key, r["object"].clone());
        }
        g.rv = g.rv.max(r["rv"].as_u64().unwrap_or(0));
    }
}

/// One change appended to the journal; folded into a new snapshot when the journal is long.
fn journal(
    file: &Path,
    g: &mut Inner,
    kind: &str,
    resource: &str,
    obj: &Value,
) -> std::io::Result<()> {
    use std::io::Write;
    if g.journal.is_none() {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(journal_of(file))?;
        g.journal = Some((f, 0));
    }
    let mut line = serde_json::to_vec(
        &json!({"rv": g.rv, "kind": kind, "resource": resource, "object": obj}),
    )?;
    line.push(b'\n');
    let (f, records) = g.journal.as_mut().expect("journal open");
    f.write_all(&line)?;
    *records += 1;
    if *records > g.objects.len() + JOURNAL_SLACK {
        compact(file, g)?;
    }
    Ok(())
}

/// A new snapshot of every object, then an empty journal.
fn compact(file: &Path, g: &mut Inner) -> std::io::Result<()> {
    save(file, g)?;
    g.journal = None;
    match std::fs::remove_file(journal_of(file)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn save(file: &Path, g: &Inner) -> std::io::Result<()> {
    use std::io::Write;
    let objects: Vec<Value> = g
        .objects
        .iter()
        .map(|((r, _, _), o)| json!({"resource": r, "object": o}))
        .collect();
    let doc = json!({"resourceVersion": g.rv, "objects": objects});
    let tmp = file.with_extension(format!("json.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(&serde_json::to_vec(&doc)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}

fn key_of(resource: &str, obj: &Value) -> Key {
    (
        resource.to_string(),
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Resources whose objects carry metadata.generation (those with a spec/rules/subjects body).
fn has_spec(resource: &str) -> bool {
    !matches!(resource, "secrets" | "configmaps")
}

/// The object but its metadata: a write that changes nothing of it (and no metadata) is a no-op.
fn without_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
    }
    v
}

/// The object but its metadata and status: what a change of bumps `generation`.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// `new`'s metadata with the server-owned fields of `old` (to compare for no-op updates).
fn merged_meta(old: &Value, new: &Value) -> Value {
    let mut n = new.clone();
    let m = meta_mut(&mut n);
    for k in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
        if old["metadata"].get(k).is_some() {
            m.insert(k.into(), old["metadata"][k].clone());
        } else {
            m.remove(k);
        }
    }
    n
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let o = obj.as_object_mut().expect("object");
    if !o.get("metadata").is_some_and(Value::is_object) {
        o.insert("metadata".into(), json!({}));
    }
    o.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata object")
}

pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random (v4-shaped) UID.
pub(crate) fn new_uid() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let b = h.finalize();
    let x: String = b[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}
