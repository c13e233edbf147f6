//! One connection per host per run, opened on first use and reused by every task, handler and
//! play; with it the host's view (snapshot + overlay), which also lives for the whole run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::hoststate::HostView;
use crate::transport::jump::JumpPool;
use crate::transport::local::LocalTransport;
use crate::transport::ssh::{SshTarget, SshTransport};
use crate::transport::{BecomePassword, Transport, TransportError};

#[derive(Debug, Clone)]
pub enum ConnectSpec {
    Local {
        become_password: Option<BecomePassword>,
    },
    Ssh(Box<SshTarget>),
}

pub struct HostConn {
    pub spec: ConnectSpec,
    pub transport: Option<Box<dyn Transport>>,
    /// Set once a connection attempt failed: the host stays unreachable for the run.
    pub unreachable: Option<String>,
    pub view: HostView,
    pub facts_gathered: bool,
    /// This run holds the host's lock (taken with the first script; see engine::lock).
    pub locked: bool,
    /// `register:` results, kept across plays as Ansible does.
    pub registered: std::collections::BTreeMap<String, minijinja::Value>,
    /// The run's jump-host connections, shared by every host behind the same bastion.
    pub jumps: JumpPool,
    /// Artifact bytes the host took in this run (uploaded to it or fetched by it).
    pub bytes_transferred: u64,
    /// The host's variable layers that last the whole run, built on first use.
    pub layers: HostLayers,
}

/// A host's inventory vars, `group_names` and facts, as every task's context takes them.
#[derive(Default)]
pub struct HostLayers {
    pub inventory: Option<Arc<crate::vars::Layer>>,
    pub group_names: Option<minijinja::Value>,
    /// The facts the layer was made from: facts gathered again give a new layer.
    pub facts: Option<(crate::hoststate::Facts, Arc<crate::vars::Layer>)>,
}

impl HostConn {
    /// The live transport, connecting on first use.
    pub fn transport(&mut self) -> Result<&mut dyn Transport, String> {
        if let Some(why) = &self.unreachable {
            return Err(why.clone());
        }
        if self.transport.is_none() {
            let t: Result<Box<dyn Transport>, TransportError> = match &self.spec {
                ConnectSpec::Local { become_password } => Ok(Box::new(
                    LocalTransport::with_become_password(become_password.clone()),
                )),
                ConnectSpec::Ssh(target) => SshTransport::connect_via(target, &self.jumps)
                    .map(|t| Box::new(t) as Box<dyn Transport>),
            };
            match t {
                Ok(t) => self.transport = Some(t),
                Err(e) => {
                    let why = e.to_string();
                    self.unreachable = Some(why.clone());
                    return Err(why);
                }
            }
        }
        Ok(self.transport.as_deref_mut().expect("just connected"))
    }

    pub fn round_trips(&self) -> u64 {
        self.transport
            .as_ref()
            .map(|t| t.round_trips())
            .unwrap_or(0)
    }
}

/// Every host's connection slot, shared by the host's own thread and by tasks delegated to it.
#[derive(Clone, Default)]
pub struct Pool {
    slots: Arc<HashMap<String, Arc<Mutex<HostConn>>>>,
}

impl Pool {
    pub fn new(specs: Vec<(String, ConnectSpec)>) -> Self {
        let jumps = JumpPool::new();
        let slots = specs
            .into_iter()
            .map(|(name, spec)| {
                (
                    name,
                    Arc::new(Mutex::new(HostConn {
                        spec,
                        transport: None,
                        unreachable: None,
                        view: HostView::new(),
                        facts_gathered: false,
                        locked: false,
                        registered: Default::default(),
                        jumps: jumps.clone(),
                        bytes_transferred: 0,
                        layers: HostLayers::default(),
                    })),
                )
            })
            .collect();
        Pool {
            slots: Arc::new(slots),
        }
    }

    pub fn get(&self, host: &str) -> Option<Arc<Mutex<HostConn>>> {
        self.slots.get(host).cloned()
    }

    pub fn round_trips(&self, host: &str) -> u64 {
        self.get(host)
            .map(|s| s.lock().map(|c| c.round_trips()).unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn bytes_transferred(&self, host: &str) -> u64 {
        self.get(host)
            .map(|s| s.lock().map(|c| c.bytes_transferred).unwrap_or(0))
            .unwrap_or(0)
    }
}

/// glibc's malloc tuned for one thread per host: by default it gives threads up to 8 arenas
/// per core, and memory freed in one arena never serves another, so at a few hundred hosts
/// a third of the heap was arenas' unused high-water marks; blocks of 32 KiB and more (a
/// libssh2 session is 83 KiB, each command's I/O buffers 32 KiB) are mapped on their own
/// and given back whole when freed. With at most as many threads running as there are
/// cores, one arena per core costs no waiting. Set before the host threads start.
pub(super) fn tune_allocator(cores: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cores.clamp(1, 64) as libc::c_int);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cores;
}
