//! A cache of one list kept by a list and then a watch, as upstream's shared informers keep
//! theirs: the controllers' passes read the cache, so a pass costs the API server nothing.
//! Without it every pass listed every CSR again, once for each controller, and a pass ran on
//! every change: a join of hundreds of kubelets made the API server serialize every CSR
//! hundreds of times a minute, so that it answered the kubelets late.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::super::kube::{klog, Api, ApiError, Client, WatchEnd};

/// How long one watch stream lasts before it is opened again from the last version seen.
const WATCH_SPAN: Duration = Duration::from_secs(300);
/// The pause after a failed list or watch, so that a restarting API server is not hammered.
const RETRY: Duration = Duration::from_secs(1);

/// Where an informer lists and watches: the API client, or a test's script.
pub(crate) trait ListWatch {
    fn list(&self, path: &str) -> Result<Value, ApiError>;
    fn watch(
        &self,
        path: &str,
        rv: &str,
        timeout: Duration,
        on_event: &mut dyn FnMut(Value) -> bool,
    ) -> WatchEnd;
}

impl ListWatch for Client {
    fn list(&self, path: &str) -> Result<Value, ApiError> {
        self.get(path)
    }
    fn watch(
        &self,
        path: &str,
        rv: &str,
        timeout: Duration,
        on_event: &mut dyn FnMut(Value) -> bool,
    ) -> WatchEnd {
        Client::watch(self, path, rv, timeout, on_event)
    }
}

#[derive(Default)]
struct State {
    items: BTreeMap<String, Value>,
    /// Bumped by every change of the cache (the list, each event), for [`Informer::wait`].
    generation: u64,
    synced: bool,
}

#[derive(Default)]
pub(crate) struct Informer {
    state: Mutex<State>,
    changed: Condvar,
}

/// Logs a failed list or watch, then waits [`RETRY`].
fn pause(level: char, at: &str, what: &str, path: &str, err: &str) {
    klog(
        level,
        at,
        &format!("\"{what}\" path=\"{path}\" err=\"{err}\""),
    );
    std::thread::sleep(RETRY);
}

fn name(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap_or("").to_string()
}

impl Informer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the cache of the list at `path` for ever: list, then watch from the list's
    /// resourceVersion, again from the last version seen when the server closes the stream,
    /// and list afresh when that version has expired or the watch fails.
    pub(crate) fn run(&self, source: &dyn ListWatch, path: &str) -> ! {
        loop {
            let list = match source.list(path) {
                Ok(l) => l,
                Err(e) => {
                    pause(
                        'E',
                        "reflector.go:158",
                        "Failed to list",
                        path,
                        &e.to_string(),
                    );
                    continue;
                }
            };
            let mut rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            {
                let mut st = self.lock();
                st.items = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| (name(o), o.clone()))
                    .collect();
                st.generation += 1;
                st.synced = true;
            }
            self.changed.notify_all();
            loop {
                let from = rv.clone();
                let end = source.watch(path, &from, WATCH_SPAN, &mut |event| {
                    let object = &event["object"];
                    if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
                        rv = v.to_string();
                    }
                    let mut st = self.lock();
                    if event["type"] == "DELETED" {
                        st.items.remove(&name(object));
                    } else {
                        st.items.insert(name(object), object.clone());
                    }
                    st.generation += 1;
                    drop(st);
                    self.changed.notify_all();
                    true
                });
                match end {
                    WatchEnd::Closed | WatchEnd::Stopped => {}
                    WatchEnd::Expired => break,
                    WatchEnd::Failed(e) => {
                        pause(
                            'W',
                            "reflector.go:462",
                            "watch ended with an error",
                            path,
                            &e,
                        );
                        break;
                    }
                }
            }
        }
    }

    /// The cache's generation now, for [`Informer::wait`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Waits until the cache changed after generation `seen`, or `wait` passed.
    pub(crate) fn wait(&self, seen: u64, wait: Duration) {
        let st = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(st, wait, |st| st.generation == seen)
            .unwrap_or_else(|e| e.into_inner());
    }

    /// The cached objects; none until the first list came.
    pub(crate) fn items(&self) -> Vec<Value> {
        let st = self.lock();
        if !st.synced {
            return Vec::new();
        }
        st.items.values().cloned().collect()
    }
}

/// An [`Api`] whose `list` of `path` reads `informer`'s cache and every
/// other call goes to `inner`: the controllers' passes run unchanged on the cache.
pub(crate) struct Cached<'a> {
    pub(crate) inner: &'a (dyn Api + Sync),
    pub(crate) informer: &'a Informer,
    pub(crate) path: &'a str,
}

impl Api for Cached<'_> {
    fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.inner.get(path)
    }
    fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.inner.post(path, body)
    }
    fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.inner.put(path, body)
    }
    fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.inner.delete(path)
    }
    fn list(&self, path: &str) -> Result<Vec<Value>, ApiError> {
        if path == self.path {
            return Ok(self.informer.items());
        }
        self.inner.list(path)
    }
    fn shared(&self) -> Option<&(dyn Api + Sync)> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn csr(name: &str, rv: &str, approved: bool) -> Value {
        json!({"metadata": {"name": name, "resourceVersion": rv}, "approved": approved})
    }

    /// Two lists and the watches between them, in order: the first watch brings an update, an
    /// addition and a deletion and ends at the server's timeout; the second finds its version
    /// expired, so the informer lists again; later watches bring nothing.
    #[derive(Default)]
    struct Script {
        lists: AtomicUsize,
        watches: Mutex<Vec<String>>,
        /// Set by the test once it has looked at the cache the first watch left.
        go: std::sync::atomic::AtomicBool,
    }

    impl ListWatch for Script {
        fn list(&self, _: &str) -> Result<Value, ApiError> {
            let items = match self.lists.fetch_add(1, Ordering::SeqCst) {
                0 => vec![csr("a", "1", false), csr("b", "2", false)],
                _ => vec![csr("a", "7", true), csr("d", "8", false)],
            };
            let rv = if items[0]["metadata"]["resourceVersion"] == "1" {
                "2"
            } else {
                "8"
            };
            Ok(json!({"metadata": {"resourceVersion": rv}, "items": items}))
        }
        fn watch(
            &self,
            _: &str,
            rv: &str,
            _: Duration,
            on: &mut dyn FnMut(Value) -> bool,
        ) -> WatchEnd {
            let n = {
                let mut w = self.watches.lock().unwrap();
                w.push(rv.to_string());
                w.len()
            };
            match n {
                1 => {
                    on(json!({"type": "MODIFIED", "object": csr("a", "3", true)}));
                    on(json!({"type": "ADDED", "object": csr("c", "4", false)}));
                    on(json!({"type": "DELETED", "object": csr("b", "5", false)}));
                    WatchEnd::Closed
                }
                2 => {
                    while !self.go.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    WatchEnd::Expired
                }
                _ => {
                    std::thread::sleep(Duration::from_millis(50));
                    WatchEnd::Closed
                }
            }
        }
    }

    fn names(i: &Informer, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        i.items().iter().filter(|o| keep(o)).map(name).collect()
    }

    #[test]
    fn the_cache_follows_the_list_and_the_watch_and_lists_again_when_expired() {
        let informer: &'static Informer = Box::leak(Box::default());
        let script: &'static Script = Box::leak(Box::default());
        // Nothing before the first list, however long a pass waits.
        assert!(names(informer, |_| true).is_empty());
        let seen = informer.generation();
        std::thread::spawn(move || informer.run(script, "/csrs"));
        informer.wait(seen, Duration::from_secs(5));
        assert!(informer.generation() > seen, "a change wakes the wait");
        let until = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while script.watches.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // The first watch's events: a updated, c added, b deleted.
        until(2);
        assert_eq!(names(informer, |_| true), ["a", "c"]);
        assert_eq!(names(informer, |o| o["approved"] == true), ["a"]);
        script.go.store(true, Ordering::SeqCst);
        until(3);
        // The first watch went on from the list's version, the second from the last event's,
        // the third from the second list's.
        assert_eq!(script.watches.lock().unwrap()[..3], ["2", "5", "8"]);
        assert_eq!(script.lists.load(Ordering::SeqCst), 2);
        // The second list replaced the cache: c, deleted meanwhile, is gone with it.
        assert_eq!(names(informer, |_| true), ["a", "d"]);
        let g = informer.generation();
        let t = std::time::Instant::now();
        informer.wait(g, Duration::from_millis(100));
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "no change: the wait lasts"
        );
    }
}
