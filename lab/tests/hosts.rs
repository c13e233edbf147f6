//! A real lab (root + sshd needed, skipped otherwise) through the crate's public API only, and
//! the stand-in binary lookup.

use std::path::{Path, PathBuf};
use std::process::Command;

use bootstrapctl_lab::{down, standin_binary, status, up, LabError, LabSpec, BUILD_ID};

use crate::support::{is_alive, TempDir};

/// Takes the lab down even when an assertion fails half-way.
struct LabGuard<'a>(&'a Path);

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        let _ = down(self.0);
    }
}

fn skip_reason() -> Option<&'static str> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root");
    }
    if !Path::new("/usr/sbin/sshd").is_file() {
        return Some("/usr/sbin/sshd missing");
    }
    None
}

/// `ssh root@addr command` with the lab's key and strict checking against the lab's known_hosts.
fn ssh(dir: &Path, address: &str, port: u16, command: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(dir.join("id_ed25519"))
        .args(["-p", &port.to_string()])
        .arg(format!("root@{address}"))
        .arg(command)
        .output()
        .expect("running ssh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn lab_hosts_are_real_isolated_ssh_hosts() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping lab_hosts_are_real_isolated_ssh_hosts: {why}");
        return;
    }
    let tmp = TempDir::new("lab");
    let dir = tmp.0.join("lab");
    // A port of our own: other test binaries may run labs on the same 127.10.x.y addresses.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let spec = LabSpec {
        dir: dir.clone(),
        workers: 2,
        control_planes: 1,
        standin_exe: PathBuf::from("/bin/true"),
        port,
        real_components: None,
        // Beside the integration tests' labs (BSCTL_TEST_SUBNET_BASE and up), never on them.
        subnet: std::env::var("BSCTL_TEST_SUBNET_BASE")
            .ok()
            .and_then(|v| v.parse::<u8>().ok())
            .map_or(10, |b| b.saturating_sub(1)),
        bare: false,
        shared_product_uuid: Vec::new(),
    };
    let info = up(&spec).expect("lab up");
    let _guard = LabGuard(&dir);

    let names: Vec<&str> = info.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["cp-1", "worker-01", "worker-02"]);
    let inv: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&info.inventory).unwrap()).unwrap();
    assert_eq!(
        inv["all"]["children"]["workers"]["hosts"]["worker-02"]["ansible_host"],
        serde_yaml::Value::from(format!("127.{}.0.3", spec.subnet))
    );
    assert!(matches!(up(&spec), Err(LabError::AlreadyUp(_))));

    for h in &info.hosts {
        let (ok, out) = ssh(&dir, &h.address, port, "hostname");
        assert!(ok, "ssh to {} failed: {out}", h.name);
        assert_eq!(out.trim(), h.name);
    }

    let (w1, w2) = (&info.hosts[1], &info.hosts[2]);
    let marker = format!("lab-test-{}", std::process::id());
    let (ok, out) = ssh(
        &dir,
        &w1.address,
        port,
        &format!("echo hi > /etc/kubernetes/{marker} && cat /etc/kubernetes/{marker}"),
    );
    assert!(ok && out.trim() == "hi", "{out}");
    assert!(
        !Path::new("/etc/kubernetes").join(&marker).exists(),
        "host write leaked to the real machine"
    );
    let (ok, out) = ssh(&dir, &w2.address, port, &format!("test ! -e /etc/kubernetes/{marker} && ls -A /etc/kubernetes /etc/systemd/system | wc -w"));
    assert!(ok, "write on worker-01 visible on worker-02: {out}");
    assert_eq!(
        out.trim(),
        "2",
        "tmpfs dirs of a fresh host hold nothing but their listing headers: {out}"
    );

    let (ok, out) = ssh(
        &dir,
        &info.hosts[0].address,
        port,
        "cat /etc/fstab; findmnt -n -o FSTYPE /var/lib/kubelet",
    );
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim() == "/swapfile none swap sw 0 0"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.trim() == "tmpfs"), "{out}");

    let st = status(&dir).unwrap();
    assert_eq!(st.len(), 3);
    assert!(st.iter().all(|h| h.alive), "{st:?}");

    let pids: Vec<u32> = st.iter().map(|h| h.pid).collect();
    let stopped = down(&dir).unwrap();
    assert!(stopped >= 3, "stopped {stopped}");
    for pid in pids {
        assert!(!is_alive(pid), "sshd {pid} survived lab down");
    }
    assert!(matches!(status(&dir), Err(LabError::NotUp(_))));
    assert!(matches!(down(&dir), Err(LabError::NotUp(_))));
}

#[test]
fn down_without_a_lab_is_a_clear_error() {
    let tmp = TempDir::new("nolab");
    let err = down(&tmp.0).unwrap_err();
    assert!(err.to_string().contains("no lab is up"), "{err}");
}

#[test]
fn a_standin_binary_from_another_build_is_never_used() {
    let tmp = TempDir::new("standin");
    let me = tmp.0.join("bootstrapctl");
    std::fs::write(&me, b"").unwrap();
    // None beside: the binary itself holds the stand-ins.
    assert_eq!(standin_binary(&me), me);
    // One that reports another build id (or fails) is not taken either.
    let standin = tmp.0.join("bootstrapctl-standin");
    std::fs::write(&standin, "#!/bin/sh\necho some-other-build\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(standin_binary(&me), me);
    // The same build id: taken.
    std::fs::write(&standin, format!("#!/bin/sh\necho {}\n", BUILD_ID)).unwrap();
    assert_eq!(standin_binary(&me), standin);
}
