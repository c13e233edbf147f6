//! Running the component stand-ins for the systemctl stand-in: which units run one, spawning it
//! as a daemon (own session, output appended to the unit's log, pid file in the state dir),
//! liveness (pid + start time, so a recycled pid never counts) and stopping (TERM, 5 s, KILL).

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::units::{Root, LOG_DIR};

/// Binaries whose units the stand-in really runs; every other unit only keeps state.
pub(crate) const COMPONENTS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kubelet",
    "containerd",
    "etcd",
];
/// Pid files live directly in the host's state dir, where `lab down` looks for `*.pid`.
pub(crate) const PID_DIR: &str = "/var/lib/bootstrapctl-lab";
/// How long `stop` waits after SIGTERM before SIGKILL (systemd's TimeoutStopSec is longer; the
/// stand-ins exit at once on TERM).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// The command line of the ExecStart that runs (the last one after drop-in resets), split as
/// systemd splits it, with the `-@:+!` prefixes removed; None when empty or unparseable.
pub(crate) fn argv(exec_start: &[String]) -> Option<Vec<String>> {
    let line = exec_start.last()?;
    let mut words = shell_words::split(line).ok()?;
    let first = words.first_mut()?;
    let stripped = first
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .to_string();
    *first = stripped;
    (!words[0].is_empty()).then_some(words)
}

/// The component a unit runs, by the basename of its ExecStart binary.
pub(crate) fn component(exec_start: &[String]) -> Option<&'static str> {
    let argv = argv(exec_start)?;
    let base = Path::new(&argv[0]).file_name()?.to_str()?;
    COMPONENTS.iter().copied().find(|c| *c == base)
}

pub(crate) fn pid_file(root: &Root, unit: &str) -> std::path::PathBuf {
    root.path(&format!("{PID_DIR}/{unit}.pid"))
}

pub(crate) fn log_file(root: &Root, unit: &str) -> std::path::PathBuf {
    root.path(&format!("{LOG_DIR}/{unit}.log"))
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The recorded process is still the one we started, and not a zombie.
pub(crate) fn alive(pid: u32, started: Option<u64>) -> bool {
    super::procs::is_alive(pid) && (started.is_none() || start_time(pid) == started)
}

/// Spawns `argv` (the binary looked up under `root`, argv[0] kept as written so the multi-call
/// binary dispatches on it) in its own session, stdout and stderr appended to the unit's log.
/// Returns (pid, start time).
pub(crate) fn spawn(root: &Root, unit: &str, argv: &[String]) -> io::Result<(u32, Option<u64>)> {
    let log_path = log_file(root, unit);
    if let Some(d) = log_path.parent() {
        fs::create_dir_all(d)?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut cmd = Command::new(root.path(&argv[0]));
    cmd.arg0(&argv[0])
        .args(&argv[1..])
        .env_clear()
        // What systemd gives a system service: a fixed PATH, no session variables.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .env("INVOCATION_UNIT", unit)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    if let Ok(v) = std::env::var("BOOTSTRAPCTL_LAB_ROOT") {
        cmd.env("BOOTSTRAPCTL_LAB_ROOT", v);
    }
    // A host with real components has its own network namespace: its services run there.
    let netns = super::realnet::holder_netns(
        &root.path(&format!("{PID_DIR}/{}", super::realnet::NETNS_PID_FILE)),
    )?;
    let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(netns);
    let pid = child.id();
    // Not waited: the service outlives this systemctl call (its parent becomes init).
    drop(child);
    let started = start_time(pid);
    let pf = pid_file(root, unit);
    if let Some(d) = pf.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(&pf, format!("{pid}\n"))?;
    Ok((pid, started))
}

/// Runs a unit's ExecStartPre lines in order, output appended to the unit's log; the first
/// failing line without a `-` prefix is the error.
pub(crate) fn run_pre(root: &Root, unit: &str, lines: &[String]) -> Result<(), String> {
    for line in lines {
        let ignore = line.trim_start().starts_with('-');
        let Some(argv) = argv(std::slice::from_ref(line)) else {
            continue;
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file(root, unit))
            .map_err(|e| format!("opening the log of {unit}: {e}"))?;
        let status = Command::new(root.path(&argv[0]))
            .args(&argv[1..])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .status();
        match status {
            Ok(s) if s.success() || ignore => {}
            Ok(s) => return Err(format!("ExecStartPre {} failed ({s})", argv[0])),
            Err(e) if ignore => drop(e),
            Err(e) => return Err(format!("ExecStartPre {}: {e}", argv[0])),
        }
    }
    Ok(())
}

/// TERM, up to STOP_GRACE, then KILL; removes the pid file. True when the process was running.
pub(crate) fn stop(root: &Root, unit: &str, pid: u32, started: Option<u64>) -> bool {
    let was = alive(pid, started);
    if was {
        super::procs::terminate(&[pid], STOP_GRACE);
    }
    let _ = fs::remove_file(pid_file(root, unit));
    was
}

/// The last `n` lines of a unit's log (all when `n` is None).
pub(crate) fn log_tail(root: &Root, unit: &str, n: Option<usize>) -> Option<String> {
    let text = fs::read_to_string(log_file(root, unit)).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let from = n.map_or(0, |n| lines.len().saturating_sub(n));
    Some(lines[from..].iter().map(|l| format!("{l}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_by_exec_start_basename() {
        let s = |v: &str| vec![v.to_string()];
        assert_eq!(
            component(&s(
                "/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml"
            )),
            Some("kubelet")
        );
        assert_eq!(
            component(&s("-/usr/local/bin/kube-apiserver --v=2")),
            Some("kube-apiserver")
        );
        assert_eq!(
            component(&[
                "/bin/true".into(),
                "/usr/bin/kube-controller-manager".into()
            ]),
            Some("kube-controller-manager"),
            "the last ExecStart runs"
        );
        assert_eq!(component(&s("/usr/bin/containerd")), Some("containerd"));
        assert_eq!(component(&s("/usr/bin/dockerd")), None);
        assert_eq!(component(&s("/usr/bin/kubelet-wrapper")), None);
        assert_eq!(component(&[]), None);
        assert_eq!(
            argv(&s("/usr/local/bin/kubelet --node-labels=\"a=b c\" --v=2")).unwrap()[1],
            "--node-labels=a=b c"
        );
    }
}
