//! The systemctl stand-in against a temp root: what systemd users rely on, frozen at daemon-reload.

use std::fs;

use super::run;
use crate::lab::tests::TempDir;
use crate::lab::units::Root;

const KUBELET: &str = "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet \\\n  --config=/var/lib/kubelet/config.yaml\n[Install]\nWantedBy=multi-user.target\n";

struct Host {
    _tmp: TempDir,
    root: Root,
}

impl Host {
    fn new() -> Host {
        let tmp = TempDir::new("systemctl");
        let root = Root(tmp.0.clone());
        Host { _tmp: tmp, root }
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
    assert!(out.contains("(lab stand-in: unit state only)"), "{out}");
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
    assert!(super::invoked_as_systemctl("/usr/bin/systemctl"));
    assert!(super::invoked_as_systemctl("systemctl"));
    assert!(!super::invoked_as_systemctl("/usr/bin/bootstrapctl"));
}

#[test]
fn utc_formats_unix_time() {
    assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(super::utc(1_709_210_096), "2024-02-29 12:34:56 UTC");
}
