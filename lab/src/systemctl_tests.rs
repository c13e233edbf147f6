//! The systemctl stand-in against a temp root: what systemd users rely on, frozen at daemon-reload.

use std::fs;

use super::run;
use crate::testutil::TempDir;
use crate::units::Root;

const KUBELET: &str = "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet \\\n  --config=/var/lib/kubelet/config.yaml\n[Install]\nWantedBy=multi-user.target\n";

struct Host {
    _tmp: TempDir,
    root: Root,
}

/// A dummy component stand-in: logs its arguments, then sleeps (or exits 1 with `--crash`).
const DUMMY: &str =
    "#!/bin/sh\necho \"dummy $*\"\ncase \"$*\" in *--crash*) exit 1;; esac\nexec sleep 300\n";

impl Drop for Host {
    fn drop(&mut self) {
        // Services still running after a test are stopped, like `lab down` would.
        let st = crate::units::Store::open(&self.root).unwrap();
        for a in st.state.active.values() {
            if let Some(pid) = a.pid {
                crate::procs::terminate(&[pid], std::time::Duration::from_secs(1));
            }
        }
    }
}

impl Host {
    fn new() -> Host {
        let tmp = TempDir::new("systemctl");
        let root = Root(tmp.0.clone());
        let h = Host { _tmp: tmp, root };
        for bin in ["/usr/bin/kubelet", "/usr/local/bin/kube-controller-manager"] {
            h.write(bin, DUMMY);
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(h.root.path(bin), fs::Permissions::from_mode(0o755)).unwrap();
        }
        h
    }
    fn pid(&self, unit: &str) -> Option<u32> {
        self.sc(&format!("show -p MainPID --value {unit}"))
            .1
            .trim()
            .parse()
            .ok()
            .filter(|p| *p != 0)
    }
    fn write(&self, path: &str, text: &str) {
        let p = self.root.path(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    /// Runs `systemctl ARGS`; returns (exit code, stdout, stderr).
    fn sc(&self, args: &str) -> (i32, String, String) {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&self.root, &args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }
}

#[test]
fn start_needs_a_daemon_reload_first() {
    let h = Host::new();
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    let (code, _, err) = h.sc("start kubelet");
    assert_eq!(code, 5);
    assert_eq!(
        err.trim(),
        "Failed to start kubelet.service: Unit kubelet.service not found."
    );
    assert_eq!(
        h.sc("show -p LoadState,NeedDaemonReload kubelet").1,
        "LoadState=not-found\nNeedDaemonReload=yes\n"
    );
    assert_eq!(h.sc("daemon-reload").0, 0);
    assert_eq!(h.sc("start kubelet.service").0, 0);
    assert_eq!(
        h.sc("is-active kubelet"),
        (0, "active\n".into(), String::new())
    );
    let log = fs::read_to_string(h.root.path("/var/log/lab/kubelet.service.log")).unwrap();
    assert!(log.contains("Started kubelet.service: ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml"), "{log}");
}

#[test]
fn restart_uses_the_definition_as_loaded() {
    let h = Host::new();
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    h.sc("daemon-reload");
    h.write(
        "/etc/systemd/system/kubelet.service",
        &KUBELET.replace("config.yaml", "config.yaml --node-ip=10.0.0.7"),
    );
    assert_eq!(h.sc("show -p NeedDaemonReload --value kubelet").1, "yes\n");
    let (code, _, err) = h.sc("restart kubelet");
    assert_eq!(code, 0);
    assert!(
        err.contains("changed on disk. Run 'systemctl daemon-reload' to reload units."),
        "{err}"
    );
    let (_, out, _) = h.sc("show -p ExecStart --value kubelet");
    assert_eq!(
        out, "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml\n",
        "the flag added on disk is not loaded yet"
    );
    let (code, out, _) = h.sc("status kubelet");
    assert_eq!(code, 0);
    assert!(
        out.contains("(lab stand-in: runs the component stand-in)"),
        "{out}"
    );
    assert!(out.contains("Warning: The unit file, source configuration file or drop-ins of kubelet.service changed on disk."), "{out}");

    h.sc("daemon-reload");
    assert_eq!(
        h.sc("show -p NeedDaemonReload kubelet").1,
        "NeedDaemonReload=no\n"
    );
    h.sc("restart kubelet");
    let log = fs::read_to_string(h.root.path("/var/log/lab/kubelet.service.log")).unwrap();
    assert!(
        log.lines().last().unwrap().ends_with("--node-ip=10.0.0.7"),
        "{log}"
    );
    assert!(!h.sc("status kubelet").1.contains("Warning"));
}

#[test]
fn drop_ins_override_exec_start_and_count_for_reload() {
    let h = Host::new();
    h.write("/lib/systemd/system/kubelet.service", KUBELET);
    h.sc("daemon-reload");
    h.write(
        "/etc/systemd/system/kubelet.service.d/10-flags.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --v=2\n",
    );
    assert_eq!(h.sc("show -p NeedDaemonReload --value kubelet").1, "yes\n");
    h.sc("daemon-reload");
    assert_eq!(
        h.sc("show -p ExecStart,FragmentPath --value kubelet").1,
        "/usr/bin/kubelet --v=2\n/lib/systemd/system/kubelet.service\n"
    );
    let (_, out, _) = h.sc("cat kubelet");
    assert!(
        out.contains("# /etc/systemd/system/kubelet.service.d/10-flags.conf"),
        "{out}"
    );
}

#[test]
fn enable_and_disable_manage_wants_symlinks_and_reload() {
    let h = Host::new();
    let (code, _, err) = h.sc("is-enabled kubelet");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Failed to get unit file state for kubelet.service: No such file or directory"
    );
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    assert_eq!(
        h.sc("is-enabled kubelet"),
        (1, "disabled\n".into(), String::new())
    );
    let (code, _, err) = h.sc("enable --now kubelet");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service"),
        "{err}"
    );
    let link = h
        .root
        .path("/etc/systemd/system/multi-user.target.wants/kubelet.service");
    assert_eq!(
        fs::read_link(link).unwrap().to_str(),
        Some("/etc/systemd/system/kubelet.service")
    );
    assert_eq!(h.sc("is-enabled kubelet").1, "enabled\n");
    assert_eq!(
        h.sc("is-active kubelet").1,
        "active\n",
        "--now starts, after the implicit reload"
    );
    assert_eq!(
        h.sc("show -p UnitFileState,NeedDaemonReload kubelet").1,
        "UnitFileState=enabled\nNeedDaemonReload=no\n"
    );
    assert_eq!(
        h.sc("enable kubelet").2,
        "",
        "enabling twice changes nothing"
    );

    let (code, _, err) = h.sc("disable --now kubelet");
    assert_eq!(code, 0);
    assert!(
        err.contains("Removed \"/etc/systemd/system/multi-user.target.wants/kubelet.service\"."),
        "{err}"
    );
    assert_eq!(h.sc("is-enabled kubelet").0, 1);
    assert_eq!(
        h.sc("is-active kubelet"),
        (3, "inactive\n".into(), String::new())
    );
}

#[test]
fn units_without_install_are_static() {
    let h = Host::new();
    h.write(
        "/etc/systemd/system/oneshot.service",
        "[Service]\nExecStart=/bin/true\n",
    );
    let (code, _, err) = h.sc("enable oneshot");
    assert_eq!(code, 0);
    assert!(err.contains("no installation config"), "{err}");
    assert_eq!(
        h.sc("is-enabled oneshot"),
        (0, "static\n".into(), String::new())
    );
}

#[test]
fn stop_try_restart_and_errors() {
    let h = Host::new();
    assert_eq!(h.sc("stop nope").0, 5);
    assert_eq!(
        h.sc("is-active nope"),
        (3, "inactive\n".into(), String::new())
    );
    assert_eq!(h.sc("is-active -q nope"), (3, String::new(), String::new()));
    assert_eq!(h.sc("status nope").0, 4);
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    h.sc("daemon-reload");
    assert_eq!(h.sc("try-restart kubelet").0, 0);
    assert_eq!(
        h.sc("is-active kubelet").0,
        3,
        "try-restart leaves an inactive unit inactive"
    );
    assert_eq!(h.sc("status kubelet").0, 3);
    assert_eq!(h.sc("reload kubelet").0, 1);
    assert_eq!(h.sc("reload-or-restart kubelet").0, 0);
    assert_eq!(h.sc("stop kubelet").0, 0);
    assert_eq!(h.sc("is-active kubelet").0, 3);
    let log = fs::read_to_string(h.root.path("/var/log/lab/kubelet.service.log")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("Stopped kubelet.service"))
            .count(),
        1,
        "{log}"
    );

    let (code, _, err) = h.sc("frobnicate kubelet");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Unknown command verb 'frobnicate'"),
        "{err}"
    );
    assert_eq!(h.sc("start --bogus kubelet").0, 1);
    assert_eq!(h.sc("start").0, 1);
}

#[test]
fn list_units_shows_active_ones() {
    let h = Host::new();
    h.write(
        "/etc/systemd/system/a.service",
        "[Unit]\nDescription=A\n[Service]\nExecStart=/bin/a\n",
    );
    h.write(
        "/etc/systemd/system/b.service",
        "[Service]\nExecStart=/bin/b\n",
    );
    h.sc("daemon-reload");
    h.sc("start a");
    let (_, out, _) = h.sc("list-units");
    assert!(out.contains("a.service loaded active running A"), "{out}");
    assert!(!out.contains("b.service"), "{out}");
    assert!(h
        .sc("list-units --all")
        .1
        .contains("b.service loaded inactive dead"));
}

#[test]
fn argv0_decides_the_stand_in() {
    assert_eq!(
        crate::standin::invoked_as("/usr/bin/systemctl"),
        Some("systemctl")
    );
    assert_eq!(crate::standin::invoked_as("systemctl"), Some("systemctl"));
    assert_eq!(crate::standin::invoked_as("/usr/bin/bootstrapctl"), None);
}

#[test]
fn utc_formats_unix_time() {
    assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(super::utc(1_709_210_096), "2024-02-29 12:34:56 UTC");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn component_units_run_their_stand_in_and_stop_it() {
    let h = Host::new();
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    h.write(
        "/etc/systemd/system/other.service",
        "[Service]\nExecStart=/usr/bin/dockerd\n",
    );
    h.sc("daemon-reload");
    assert_eq!(h.sc("start kubelet other").0, 0);
    let pid = h.pid("kubelet").expect("kubelet runs");
    assert!(crate::procs::is_alive(pid));
    assert_eq!(
        h.pid("other"),
        None,
        "units of other binaries keep state only"
    );
    assert_eq!(h.sc("is-active other").1, "active\n");
    let pid_file = h.root.path("/var/lib/bootstrapctl-lab/kubelet.service.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    let log = h.root.path("/var/log/lab/kubelet.service.log");
    wait_for("the service's output in its log", || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("dummy --config=/var/lib/kubelet/config.yaml")
    });
    let (_, out, _) = h.sc("status kubelet");
    assert!(out.contains(&format!("Main PID: {pid} (kubelet)")), "{out}");
    assert!(
        out.contains("dummy --config"),
        "status shows the journal tail: {out}"
    );
    assert_eq!(h.sc("start kubelet").0, 0);
    assert_eq!(
        h.pid("kubelet"),
        Some(pid),
        "start of a running unit does nothing"
    );

    assert_eq!(h.sc("restart kubelet").0, 0);
    let pid2 = h.pid("kubelet").unwrap();
    assert_ne!(pid, pid2);
    wait_for("the old process to be gone", || {
        !crate::procs::is_alive(pid)
    });

    let mut jo = Vec::new();
    crate::journalctl::run(
        &h.root,
        &["-u".into(), "kubelet".into(), "-n".into(), "3".into()],
        &mut jo,
        &mut Vec::new(),
        None,
    );
    assert_eq!(String::from_utf8(jo).unwrap().lines().count(), 3);

    assert_eq!(h.sc("stop kubelet").0, 0);
    assert!(!crate::procs::is_alive(pid2));
    assert!(!pid_file.exists());
    assert_eq!(
        h.sc("is-active kubelet"),
        (3, "inactive\n".into(), String::new())
    );
}

#[test]
fn a_crashed_service_is_failed_until_started_again() {
    let h = Host::new();
    h.write(
        "/etc/systemd/system/kubelet.service",
        &KUBELET.replace("config.yaml", "config.yaml --crash"),
    );
    h.sc("daemon-reload");
    assert_eq!(
        h.sc("start kubelet").0,
        0,
        "Type=simple: start succeeds, the crash comes after"
    );
    wait_for("the crash", || h.sc("is-active kubelet").1 == "failed\n");
    assert_eq!(h.sc("is-active kubelet").0, 3);
    assert_eq!(
        h.sc("show -p ActiveState,SubState,Result kubelet").1,
        "ActiveState=failed\nSubState=failed\nResult=exit-code\n"
    );
    let (code, out, _) = h.sc("status kubelet");
    assert_eq!(code, 3);
    assert!(out.contains("Active: failed (Result: exit-code)"), "{out}");

    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    h.sc("daemon-reload");
    h.sc("start kubelet");
    assert_eq!(h.sc("is-active kubelet").1, "active\n");

    h.write(
        "/etc/systemd/system/kubelet.service",
        &KUBELET.replace("/usr/bin/kubelet", "/usr/bin/kubelet-missing/kubelet"),
    );
    h.sc("daemon-reload");
    h.sc("restart kubelet");
    assert_eq!(
        h.sc("is-active kubelet").1,
        "failed\n",
        "a binary that cannot run: 203/EXEC"
    );
    let log = fs::read_to_string(h.root.path("/var/log/lab/kubelet.service.log")).unwrap();
    assert!(log.contains("status=203/EXEC"), "{log}");
}

#[test]
fn reboot_stops_everything_and_starts_the_enabled_units() {
    let h = Host::new();
    h.write("/etc/systemd/system/kubelet.service", KUBELET);
    h.write(
        "/etc/systemd/system/kube-controller-manager.service",
        "[Service]\nExecStart=/usr/local/bin/kube-controller-manager --kubeconfig=/k\n[Install]\nWantedBy=multi-user.target\n",
    );
    h.sc("daemon-reload");
    h.sc("enable kubelet");
    h.sc("start kubelet kube-controller-manager");
    let (k1, c1) = (
        h.pid("kubelet").unwrap(),
        h.pid("kube-controller-manager").unwrap(),
    );
    // A change on disk without daemon-reload is picked up by the reboot, as on a real boot.
    h.write(
        "/etc/systemd/system/kubelet.service",
        &KUBELET.replace("config.yaml", "config.yaml --v=4"),
    );
    assert_eq!(h.sc("reboot").0, 0);
    assert!(!crate::procs::is_alive(k1) && !crate::procs::is_alive(c1));
    let k2 = h.pid("kubelet").expect("enabled: started again");
    assert_ne!(k1, k2);
    assert_eq!(
        h.sc("is-active kube-controller-manager").1,
        "inactive\n",
        "not enabled"
    );
    assert_eq!(
        h.sc("show -p ExecStart --value kubelet").1,
        "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --v=4\n"
    );
}
