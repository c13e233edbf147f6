//! `up`, `down` and `status`: lay out the lab dir, start every host, wait for them, stop them.

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::hosts::{self, PlannedHost, MAX_HOSTS};
use super::kernel_view;
use super::namespace::{self, HostMounts, BARE_TMPFS_DIRS, LOG_MOUNT, STATE_MOUNT, TMPFS_DIRS};
use super::state::{self, HostRecord, LabState};
use super::{
    inventory, keys, probe, procs, real, realnet, seed, sshd_config, units, HostStatus, LabError,
    LabInfo, LabSpec,
};

/// How long `up` waits for every sshd to answer.
const UP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `down` lets processes exit after SIGTERM before SIGKILL.
const DOWN_GRACE: Duration = Duration::from_secs(2);
/// How many times `down` looks again for processes that appeared while it was stopping a lab.
const DOWN_RESCANS: usize = 5;

/// Where the real machine's systemctl may live; each existing, distinct file gets the stand-in.
const SYSTEMCTL_PATHS: &[&str] = &["/usr/bin/systemctl", "/bin/systemctl"];
/// Without any systemctl on the machine, the stand-in is put first on PATH instead.
const SYSTEMCTL_FALLBACK_DIR: &str = "/usr/local/sbin";
/// The component stand-ins: bootstrapctl bind-mounted read-only at these paths in every host.
const COMPONENT_PATHS: &[&str] = &[
    "/usr/local/bin/kube-apiserver",
    "/usr/local/bin/kube-controller-manager",
    "/usr/local/bin/kubelet",
    "/usr/local/bin/containerd",
];
/// Unit files every host has as if installed by packages (containerd.service), from the lab
/// dir's `units/`, read-only; systemd looks here before /lib/systemd/system.
const PACKAGE_UNITS_DIR: &str = "/usr/local/lib/systemd/system";
/// containerd's unit as Debian's package ships it, running the binary at the lab's path.
const CONTAINERD_UNIT: &str = "[Unit]\nDescription=containerd container runtime\nDocumentation=https://containerd.io\nAfter=network.target local-fs.target\n\n[Service]\nExecStart=/usr/local/bin/containerd\nType=notify\nDelegate=yes\nKillMode=process\nRestart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n";

/// `<dir>/units` with the package units, to bind over PACKAGE_UNITS_DIR.
fn package_units(dir: &Path) -> Result<(PathBuf, PathBuf), LabError> {
    let units = dir.join("units");
    fresh_dir(&units)?;
    let p = units.join("containerd.service");
    fs::write(&p, CONTAINERD_UNIT).map_err(LabError::io(format!("writing {}", p.display())))?;
    ensure_mountpoint(PACKAGE_UNITS_DIR)?;
    Ok((units, PathBuf::from(PACKAGE_UNITS_DIR)))
}
/// Where journalctl may live; without one, the stand-in goes to the fallback path.
const JOURNALCTL_PATHS: &[&str] = &["/usr/bin/journalctl", "/bin/journalctl"];
const JOURNALCTL_FALLBACK: &str = "/usr/local/bin/journalctl";

/// Files of one host under `<dir>/hosts/<name>/`.
struct HostDir {
    root: PathBuf,
}

impl HostDir {
    fn new(dir: &Path, name: &str) -> Self {
        HostDir {
            root: dir.join("hosts").join(name),
        }
    }
    fn key(&self) -> PathBuf {
        self.root.join("ssh_host_ed25519_key")
    }
    fn config(&self) -> PathBuf {
        self.root.join("sshd_config")
    }
    fn pid_file(&self) -> PathBuf {
        self.root.join("sshd.pid")
    }
    /// Upper layer of the host's overlay over /etc: the host's own changes to /etc land here.
    fn etc_upper(&self) -> PathBuf {
        self.root.join("etc").join("upper")
    }
    fn etc_work(&self) -> PathBuf {
        self.root.join("etc").join("work")
    }
    fn fstab(&self) -> PathBuf {
        self.etc_upper().join("fstab")
    }
    fn hostname(&self) -> PathBuf {
        self.etc_upper().join("hostname")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn log(&self) -> PathBuf {
        self.root.join("log")
    }
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn sock(address: &str, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        address.parse().expect("lab addresses are IPv4"),
        port,
    ))
}

/// Processes of a recorded host that are provably still that host: alive and inside the mount
/// namespace recorded at `up` (so a recycled pid is never signalled).
fn verified(pid: u32, ns: Option<u64>, own_ns: Option<u64>) -> bool {
    match (procs::mnt_ns(pid), ns) {
        (Some(actual), Some(recorded)) => {
            actual == recorded && Some(actual) != own_ns && procs::is_alive(pid)
        }
        _ => false,
    }
}

fn lab_is_up(st: &LabState) -> bool {
    let own = procs::own_mnt_ns();
    st.hosts.iter().any(|h| verified(h.pid, h.mnt_ns, own))
}

/// Creates an empty directory on the real machine if absent, as a mountpoint; nothing is ever
/// written into it.
fn ensure_mountpoint(dir: &str) -> Result<(), LabError> {
    if !Path::new(dir).is_dir() {
        fs::create_dir_all(dir).map_err(LabError::io(format!("creating mountpoint {dir}")))?;
    }
    Ok(())
}

/// The systemctl files to cover with the stand-in, deduplicated by inode (/bin is often /usr/bin).
fn systemctl_binds(dir: &Path, standin_exe: &Path) -> Result<Vec<(PathBuf, PathBuf)>, LabError> {
    let mut seen = BTreeSet::new();
    let mut binds = Vec::new();
    for p in SYSTEMCTL_PATHS {
        if let Ok(md) = fs::metadata(p) {
            if md.is_file() && seen.insert((md.dev(), md.ino())) {
                binds.push((standin_exe.to_path_buf(), PathBuf::from(p)));
            }
        }
    }
    if binds.is_empty() {
        // No systemctl to cover: mount a dir holding a `systemctl` symlink over /usr/local/sbin
        // (first on sshd's default PATH); argv[0] is still "systemctl".
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).map_err(LabError::io(format!("creating {}", bin.display())))?;
        let link = bin.join("systemctl");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(standin_exe, &link)
            .map_err(LabError::io(format!("creating {}", link.display())))?;
        ensure_mountpoint(SYSTEMCTL_FALLBACK_DIR)?;
        binds.push((bin, PathBuf::from(SYSTEMCTL_FALLBACK_DIR)));
    }
    Ok(binds)
}

/// An empty file on the real machine as a mountpoint for a file bind mount, created only when
/// absent; nothing is ever written into it.
fn ensure_file_mountpoint(path: &str) -> Result<(), LabError> {
    if Path::new(path).symlink_metadata().is_err() {
        if let Some(d) = Path::new(path).parent() {
            fs::create_dir_all(d).map_err(LabError::io(format!("creating {}", d.display())))?;
        }
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(LabError::io(format!("creating mountpoint {path}")))?;
    }
    Ok(())
}

/// bootstrapctl over the component binaries and journalctl in every host (read-only).
fn component_binds(standin_exe: &Path) -> Result<Vec<(PathBuf, PathBuf)>, LabError> {
    let mut binds = Vec::new();
    let mut seen = BTreeSet::new();
    for p in JOURNALCTL_PATHS {
        if let Ok(md) = fs::metadata(p) {
            if md.is_file() && seen.insert((md.dev(), md.ino())) {
                binds.push((standin_exe.to_path_buf(), PathBuf::from(p)));
            }
        }
    }
    let mut targets: Vec<&str> = COMPONENT_PATHS.to_vec();
    if binds.is_empty() {
        targets.push(JOURNALCTL_FALLBACK);
    }
    for t in targets {
        ensure_file_mountpoint(t)?;
        binds.push((standin_exe.to_path_buf(), PathBuf::from(t)));
    }
    Ok(binds)
}

fn validate(spec: &LabSpec) -> Result<(), LabError> {
    let total = spec.workers + spec.control_planes;
    if total == 0 {
        return Err(LabError::Spec("a lab needs at least one host".into()));
    }
    if total > MAX_HOSTS {
        return Err(LabError::Spec(format!(
            "{total} hosts requested, at most {MAX_HOSTS} fit in 127.{}.0.0/16",
            spec.subnet
        )));
    }
    if spec.subnet == 0 || spec.subnet == 255 {
        return Err(LabError::Spec(format!(
            "subnet {}: choose 1..=254 (127.0.x.y holds 127.0.0.1)",
            spec.subnet
        )));
    }
    if spec.port == 0 {
        return Err(LabError::Spec(
            "port 0 is not a port sshd can listen on".into(),
        ));
    }
    if !is_root() {
        return Err(LabError::NotRoot);
    }
    if !Path::new(namespace::SSHD).is_file() {
        return Err(LabError::Spec(format!(
            "{} not found (install openssh-server)",
            namespace::SSHD
        )));
    }
    if let Some(cache) = &spec.real_components {
        real::validate(cache, spec.control_planes)?;
    }
    if !spec.standin_exe.is_file() {
        return Err(LabError::Spec(format!(
            "{} (the systemctl stand-in) is not a file",
            spec.standin_exe.display()
        )));
    }
    Ok(())
}

/// Recreates `dir` empty (state and logs of an earlier lab must not leak into a fresh one).
fn fresh_dir(dir: &Path) -> Result<(), LabError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(LabError::Io {
                what: format!("clearing {}", dir.display()),
                source: e,
            });
        }
        _ => {}
    }
    fs::create_dir_all(dir).map_err(LabError::io(format!("creating {}", dir.display())))
}

/// `passwd` with `user`'s home directory replaced.
fn with_home(passwd: &str, user: &str, home: &str) -> String {
    passwd
        .lines()
        .map(|line| {
            let mut f: Vec<&str> = line.split(':').collect();
            if f.len() == 7 && f[0] == user {
                f[5] = home;
            }
            f.join(":") + "\n"
        })
        .collect()
}

/// Writes a host's files: config, fstab, hostname, and empty state and log dirs.
fn prepare_host(
    dir: &Path,
    h: &PlannedHost,
    port: u16,
    authorized_keys: &Path,
    passwd: &str,
) -> Result<(), LabError> {
    let hd = HostDir::new(dir, &h.name);
    fresh_dir(&hd.state())?;
    fresh_dir(&hd.log())?;
    fresh_dir(&hd.etc_upper())?;
    let store = hd.state().join("systemd");
    units::init_store(&store).map_err(LabError::io(format!("creating {}", store.display())))?;
    fresh_dir(&hd.etc_work())?;
    let write = |p: PathBuf, text: &str| {
        fs::write(&p, text).map_err(LabError::io(format!("writing {}", p.display())))
    };
    write(hd.fstab(), sshd_config::FSTAB)?;
    // The kubelet stand-in's node IP when no --node-ip is given (see kubelet/config.rs).
    write(
        hd.state().join(super::kubelet::LAB_ADDRESS_FILE),
        &format!("{}\n", h.address),
    )?;
    // root's home inside the host is a fresh private dir, as on a new node: the real machine's
    // /root/.bashrc (pyenv and the like) would otherwise run on every SSH command.
    let home = hd.state().join("root");
    fs::create_dir_all(&home).map_err(LabError::io(format!("creating {}", home.display())))?;
    write(
        hd.etc_upper().join("passwd"),
        &with_home(passwd, "root", &format!("{STATE_MOUNT}/root")),
    )?;
    write(hd.hostname(), &format!("{}\n", h.name))?;
    let paths = sshd_config::SshdPaths {
        host_key: &hd.key(),
        pid_file: &hd.pid_file(),
        authorized_keys,
    };
    write(
        hd.config(),
        &sshd_config::render(&h.address.to_string(), port, &paths),
    )
}

pub(crate) fn up(spec: &LabSpec) -> Result<LabInfo, LabError> {
    validate(spec)?;
    fs::create_dir_all(&spec.dir)
        .map_err(LabError::io(format!("creating {}", spec.dir.display())))?;
    let dir = spec
        .dir
        .canonicalize()
        .map_err(LabError::io(format!("resolving {}", spec.dir.display())))?;
    let standin_exe = spec
        .standin_exe
        .canonicalize()
        .map_err(LabError::io(format!(
            "resolving {}",
            spec.standin_exe.display()
        )))?;
    if let Some(old) = state::load(&dir)? {
        if lab_is_up(&old) {
            return Err(LabError::AlreadyUp(dir));
        }
    }
    let planned = hosts::plan(spec.subnet, spec.control_planes, spec.workers);
    for h in &planned {
        let addr = sock(&h.address.to_string(), spec.port);
        if probe::in_use(addr) {
            return Err(LabError::AddressInUse {
                host: h.name.clone(),
                addr: addr.to_string(),
            });
        }
    }

    // Mountpoints on the real machine: empty dirs, created only when absent.
    for d in TMPFS_DIRS
        .iter()
        .chain(&[STATE_MOUNT, LOG_MOUNT, "/run/sshd"])
        .chain(if spec.bare { BARE_TMPFS_DIRS } else { &[] })
    {
        ensure_mountpoint(d)?;
    }
    let mut binds = systemctl_binds(&dir, &standin_exe)?;
    binds.extend(component_binds(&standin_exe)?);
    binds.extend(kernel_view::standin_binds(&standin_exe)?);
    binds.push(package_units(&dir)?);

    // Keys: reused when present, so a restarted lab keeps its known_hosts.
    let client_key = dir.join("id_ed25519");
    let mut wanted = Vec::new();
    if !keys::pair_exists(&client_key) {
        wanted.push((client_key.clone(), "bootstrapctl-lab".to_string()));
    }
    for h in &planned {
        let hd = HostDir::new(&dir, &h.name);
        fs::create_dir_all(&hd.root)
            .map_err(LabError::io(format!("creating {}", hd.root.display())))?;
        if !keys::pair_exists(&hd.key()) {
            wanted.push((hd.key(), format!("root@{}", h.name)));
        }
    }
    keys::generate(&wanted)?;
    let authorized_keys = dir.join("authorized_keys");
    keys::write_private(
        &authorized_keys,
        &format!("{} bootstrapctl-lab\n", keys::public_key(&client_key)?),
    )?;
    let mut known = String::new();
    for h in &planned {
        let key = keys::public_key(&HostDir::new(&dir, &h.name).key())?;
        known.push_str(&format!(
            "{} {key}\n",
            keys::known_hosts_pattern(&h.address.to_string(), spec.port)
        ));
    }
    let known_hosts = dir.join("known_hosts");
    keys::write_private(&known_hosts, &known)?;
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(LabError::io("reading /etc/passwd".to_string()))?;
    // File work only, spread over threads so that a 500-host lab's few thousand small writes
    // overlap; the first error (in host order) is the one reported.
    probe::parallel_map(&planned, |h| {
        prepare_host(&dir, h, spec.port, &authorized_keys, &passwd)
    })
    .into_iter()
    .collect::<Result<Vec<()>, LabError>>()?;

    // Start every host without waiting for any, recording each as soon as it runs so that a
    // failure half-way can still be cleaned up by `down`.
    let mut st = LabState {
        version: 1,
        dir: dir.clone(),
        port: spec.port,
        hosts: Vec::with_capacity(planned.len()),
    };
    let real_hosts = real_hosts(&planned, spec.real_components.as_deref());
    if spec.real_components.is_some() {
        for d in real::WORKER_TMPFS.iter().chain(real::CONTROL_PLANE_TMPFS) {
            ensure_mountpoint(d)?;
        }
        // Only a real kubelet writes them: a lab without real workers saves (and so later
        // writes back) nothing, so it never undoes another lab's restore.
        if real_hosts
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.node_ip.is_some()))
        {
            real::save_sysctls(&dir)?;
        }
    }
    for (h, real_host) in planned.iter().zip(&real_hosts) {
        let hd = HostDir::new(&dir, &h.name);
        let bare = spec.bare && h.group == hosts::GROUP_WORKERS;
        // Hosts listed together share the first one's product_uuid (a cloned VM image).
        let uuid_seed = match spec.shared_product_uuid.first() {
            Some(first) if spec.shared_product_uuid.contains(&h.name) => first.as_str(),
            _ => h.name.as_str(),
        };
        let kernel_binds = kernel_view::prepare(&dir, &hd.state(), &h.name, uuid_seed)?;
        let (host_binds, extra_tmpfs) = match real_host {
            Some(r) => (with_real_binaries(&binds, &r.binaries), r.tmpfs.to_vec()),
            None => (binds.clone(), Vec::new()),
        };
        if real_host.as_ref().is_some_and(|r| r.node_ip.is_some()) {
            real::write_cni_config(&hd.etc_upper())?;
        }
        let mounts = HostMounts {
            name: h.name.clone(),
            etc_upper: hd.etc_upper(),
            etc_work: hd.etc_work(),
            state_dir: hd.state(),
            log_dir: hd.log(),
            // A bare worker has no kube component until one is installed.
            systemctl_binds: host_binds
                .into_iter()
                .filter(|(_, target)| {
                    !(bare && COMPONENT_PATHS.iter().any(|c| target == Path::new(c)))
                })
                .collect(),
            bare,
            kernel_binds,
            extra_tmpfs,
        };
        let log_path = hd.log().join("sshd.log");
        let started = fs::File::create(&log_path)
            .map_err(LabError::io(format!("creating {}", log_path.display())))
            .and_then(|log| {
                namespace::spawn_sshd(&mounts, &hd.config(), log).map_err(LabError::io(format!(
                    "starting {} (sshd in new mount+UTS namespaces, tmpfs on {}, overlay on /etc, binds over {STATE_MOUNT}, {LOG_MOUNT}, systemctl)",
                    h.name,
                    TMPFS_DIRS.join(", ")
                )))
            });
        let child = match started {
            Ok(c) => c,
            Err(e) => {
                abort(&st);
                return Err(e);
            }
        };
        // The Child handle is dropped, not waited: the lab outlives this process.
        let pid = child.id();
        st.hosts.push(HostRecord {
            name: h.name.clone(),
            group: h.group.to_string(),
            address: h.address.to_string(),
            port: spec.port,
            pid,
            mnt_ns: procs::mnt_ns(pid),
        });
    }
    state::save(&st)?;

    let pending: Vec<probe::Pending> = st
        .hosts
        .iter()
        .map(|h| probe::Pending {
            name: &h.name,
            addr: sock(&h.address, h.port),
            pid: h.pid,
        })
        .collect();
    let failures: Vec<String> = probe::wait_listening(&pending, Instant::now() + UP_TIMEOUT)
        .into_iter()
        .zip(&st.hosts)
        .filter_map(|(f, h)| {
            f.map(|reason| {
                with_log_tail(reason, &HostDir::new(&dir, &h.name).log().join("sshd.log"))
            })
        })
        .collect();
    if !failures.is_empty() {
        abort(&st);
        return Err(LabError::HostsDown {
            secs: UP_TIMEOUT.as_secs(),
            failures,
        });
    }

    // The real workers' own network namespaces, before anything starts their services.
    let cp_addr = planned
        .iter()
        .find(|h| h.group == hosts::GROUP_CONTROL_PLANE)
        .map(|h| h.address.to_string());
    for ((h, rec), real_host) in planned.iter().zip(&st.hosts).zip(&real_hosts) {
        let (Some(ip), Some(cp)) = (
            real_host.as_ref().and_then(|r| r.node_ip.as_ref()),
            &cp_addr,
        ) else {
            continue;
        };
        if let Err(e) = start_netns(&dir, &standin_exe, &h.name, rec.pid, cp, ip) {
            abort(&st);
            return Err(e);
        }
    }

    // The seeded control plane on cp-1 (see seed.rs); a failure stops the whole lab.
    if let Some(cp) = st
        .hosts
        .iter()
        .find(|h| h.group == hosts::GROUP_CONTROL_PLANE)
    {
        let real = spec.real_components.is_some();
        if let Err(e) = seed::control_plane(&dir, &cp.name, &cp.address, cp.pid, real) {
            abort(&st);
            return Err(e);
        }
    }

    let inventory = dir.join("inventory.yaml");
    let mut inventory_text = inventory::render(&planned, spec.port, &client_key, &known_hosts);
    if spec.real_components.is_some() {
        inventory_text = real::add_inventory_vars(&inventory_text, &planned)?;
    }
    fs::write(&inventory, inventory_text)
        .map_err(LabError::io(format!("writing {}", inventory.display())))?;
    let hosts = st
        .hosts
        .iter()
        .map(|h| HostStatus {
            name: h.name.clone(),
            group: h.group.clone(),
            address: h.address.clone(),
            port: h.port,
            pid: h.pid,
            alive: true,
        })
        .collect();
    Ok(LabInfo {
        inventory,
        known_hosts,
        key: client_key,
        hosts,
    })
}

/// What a host running real components gets instead of the stand-ins' defaults.
struct RealHost {
    binaries: Vec<(PathBuf, PathBuf)>,
    tmpfs: &'static [&'static str],
    /// A real worker's node address (its own network namespace); None on the control plane.
    node_ip: Option<String>,
}

fn real_hosts(planned: &[PlannedHost], cache: Option<&Path>) -> Vec<Option<RealHost>> {
    let mut worker = 0;
    planned
        .iter()
        .map(|h| {
            let cache = cache?;
            if h.group == hosts::GROUP_CONTROL_PLANE {
                return Some(RealHost {
                    binaries: real::control_plane_binaries(cache),
                    tmpfs: real::CONTROL_PLANE_TMPFS,
                    node_ip: None,
                });
            }
            let i = worker;
            worker += 1;
            real::is_real_worker(i).then(|| RealHost {
                binaries: real::worker_binaries(cache),
                tmpfs: real::WORKER_TMPFS,
                node_ip: Some(real::node_ip(i)),
            })
        })
        .collect()
}

/// `binds` with the real binaries in place of the stand-ins at the same paths.
fn with_real_binaries(
    binds: &[(PathBuf, PathBuf)],
    real: &[(PathBuf, PathBuf)],
) -> Vec<(PathBuf, PathBuf)> {
    binds
        .iter()
        .map(|(src, target)| {
            real.iter()
                .find(|(_, t)| t == target)
                .cloned()
                .unwrap_or_else(|| (src.clone(), target.clone()))
        })
        .collect()
}

/// How long `up` waits for a real worker's network namespace holder.
const NETNS_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the network namespace holder of a real worker inside its mount namespace (so `down`
/// stops it with the host) and waits until it has written its pid file.
fn start_netns(
    dir: &Path,
    standin_exe: &Path,
    name: &str,
    sshd_pid: u32,
    cp_addr: &str,
    node_ip: &str,
) -> Result<(), LabError> {
    let link = dir.join("bin").join(realnet::NETNS_ARGV0);
    fs::create_dir_all(dir.join("bin")).map_err(LabError::io("creating the lab's bin dir"))?;
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(standin_exe, &link)
        .map_err(LabError::io(format!("creating {}", link.display())))?;
    let hd = HostDir::new(dir, name);
    let pid_file = hd.state().join(realnet::NETNS_PID_FILE);
    let inside_pid_file = format!("{STATE_MOUNT}/{}", realnet::NETNS_PID_FILE);
    let log = fs::File::create(hd.log().join("lab-netns.log"))
        .map_err(LabError::io(format!("creating the netns log of {name}")))?;
    let child = std::process::Command::new("nsenter")
        .arg("-t")
        .arg(sshd_pid.to_string())
        .args(["-m", "-u", "--"])
        .arg(&link)
        .arg(format!("{cp_addr}:6443"))
        .arg(format!("{node_ip}/32"))
        .arg(&inside_pid_file)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(LabError::io(format!(
            "starting the network namespace of {name}"
        )))?;
    let holder = child.id();
    drop(child);
    let deadline = Instant::now() + NETNS_TIMEOUT;
    while !pid_file.exists() {
        if Instant::now() > deadline || !procs::is_alive(holder) {
            let why = fs::read_to_string(hd.log().join("lab-netns.log")).unwrap_or_default();
            return Err(LabError::Command {
                what: format!("the network namespace of {name}"),
                detail: format!("not ready after {}s: {why}", NETNS_TIMEOUT.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Appends the last line sshd logged, which usually says why it did not start.
fn with_log_tail(reason: String, log: &Path) -> String {
    let tail = fs::read_to_string(log).ok().and_then(|t| {
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
    });
    match tail {
        Some(line) => format!("{reason}: {}", line.trim()),
        None => reason,
    }
}

/// Stops what a failed `up` started; the error of `up` is what matters, so this one is dropped.
fn abort(st: &LabState) {
    let _ = stop(st);
    let _ = real::restore_sysctls(&st.dir);
    let _ = state::remove(&st.dir);
}

/// Pids the systemctl stand-in (and later the component stand-ins) recorded in a host's state dir.
fn recorded_service_pids(state_dir: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "pid" {
                return None;
            }
            let pid = fs::read_to_string(&p).ok()?.trim().parse().ok()?;
            Some((p, pid))
        })
        .collect()
}

/// Opens `pid`'s mount namespace and keeps it while the returned file lives, if it still is
/// `ns`. A namespace's number is given to a new namespace once the old one is gone, and
/// other labs make namespaces all the time: while a stop sweeps namespaces by number, it
/// holds each one, so that the number cannot come to name another lab's host.
fn pin_namespace(pid: u32, ns: u64) -> Option<fs::File> {
    let f = fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    (f.metadata().ok()?.ino() == ns).then_some(f)
}

/// Stops every process inside the lab's host namespaces. A namespace is only swept when a
/// recorded pid (sshd or a service pid file) is verified to still live in it.
fn stop(st: &LabState) -> usize {
    let own = procs::own_mnt_ns();
    let mut confirmed = BTreeSet::new();
    let mut targets = BTreeSet::new();
    let mut pid_files = Vec::new();
    let mut pins = Vec::new();
    for h in &st.hosts {
        let mut candidates = vec![h.pid];
        for (file, pid) in recorded_service_pids(&HostDir::new(&st.dir, &h.name).state()) {
            candidates.push(pid);
            pid_files.push(file);
        }
        for pid in candidates {
            if !verified(pid, h.mnt_ns, own) {
                continue;
            }
            let Some(ns) = h.mnt_ns else { continue };
            if !confirmed.contains(&ns) {
                match pin_namespace(pid, ns) {
                    Some(pin) => pins.push(pin),
                    // Gone between the check and the open: nothing of it is left to stop.
                    // (Still there: out of descriptors; swept unpinned, as before.)
                    None if !verified(pid, h.mnt_ns, own) => continue,
                    None => {}
                }
            }
            targets.insert(pid);
            confirmed.insert(ns);
        }
    }
    targets.extend(procs::pids_in_namespaces(&confirmed));
    let targets: Vec<u32> = targets.into_iter().collect();
    let mut n = procs::terminate(&targets, DOWN_GRACE);
    // A process forked after the scan (a session sshd accepted just before its TERM, a
    // service a stand-in was starting) is not in `targets`: scan again until none is left.
    for _ in 0..DOWN_RESCANS {
        let late = procs::pids_in_namespaces(&confirmed);
        if late.is_empty() {
            break;
        }
        n += procs::terminate(&late, DOWN_GRACE);
    }
    for f in pid_files {
        let _ = fs::remove_file(f);
    }
    drop(pins);
    n
}

pub(crate) fn down(dir: &Path) -> Result<usize, LabError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| LabError::NotUp(dir.to_path_buf()))?;
    let st = state::load(&dir)?.ok_or_else(|| LabError::NotUp(dir.clone()))?;
    let n = stop(&st);
    // After every process of the lab is gone: the host sysctls a real kubelet changed.
    real::restore_sysctls(&dir)?;
    state::remove(&dir)?;
    Ok(n)
}

pub(crate) fn status(dir: &Path) -> Result<Vec<HostStatus>, LabError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| LabError::NotUp(dir.to_path_buf()))?;
    let st = state::load(&dir)?.ok_or_else(|| LabError::NotUp(dir.clone()))?;
    let own = procs::own_mnt_ns();
    Ok(probe::parallel_map(&st.hosts, |h| {
        let alive = verified(h.pid, h.mnt_ns, own)
            && probe::banner(sock(&h.address, h.port), Duration::from_secs(2)).is_ok();
        HostStatus {
            name: h.name.clone(),
            group: h.group.clone(),
            address: h.address.clone(),
            port: h.port,
            pid: h.pid,
            alive,
        }
    }))
}

/// `lab reboot HOST`: the host's `systemctl reboot` (stand-in), run inside its namespaces.
pub(crate) fn reboot(dir: &Path, host: &str) -> Result<(), LabError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| LabError::NotUp(dir.to_path_buf()))?;
    let st = state::load(&dir)?.ok_or_else(|| LabError::NotUp(dir.clone()))?;
    let h =
        st.hosts.iter().find(|h| h.name == host).ok_or_else(|| {
            LabError::Spec(format!("no host {host} in the lab in {}", dir.display()))
        })?;
    if !verified(h.pid, h.mnt_ns, procs::own_mnt_ns()) {
        return Err(LabError::Spec(format!(
            "host {host} is not running (its sshd {} is gone)",
            h.pid
        )));
    }
    seed::in_host(h.pid, &["/bin/sh", "-c", "systemctl reboot"], b"").map(|_| ())
}
