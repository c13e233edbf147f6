//! The seeded "hard way" control plane of `lab up --control-planes N` (on cp-1): a CA and the
//! certificates made here, the admin and controller-manager kubeconfigs, kube-apiserver and
//! kube-controller-manager units WITHOUT the bootstrap-token flags, `--controllers` and
//! `--cluster-signing-*` (that is bootstrapctl's work), both enabled and started through the
//! host's systemctl stand-in. Files are written through the host's mount namespace (nsenter),
//! never on the real machine. Also `lab reboot`: the host's `systemctl reboot`.
//!
//! With real components (`real`), the same units run the real binaries, with what a real
//! control plane sharing the machine's network namespace needs on top: a real etcd from its
//! own unit on the host's address (not 127.0.0.1:2379, which another lab or the machine may
//! use), no insecure ports, the controller-manager's secure port on the host's address and no
//! leader election (one instance; a restarted one would wait out the old lease).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use std::time::Duration;

use super::kube;
use super::pki::{self, Ca, CertSpec};
use super::LabError;

pub(crate) const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
pub(crate) const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
pub(crate) const ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.kubeconfig";
const YEAR: Duration = Duration::from_secs(365 * 86400);

/// Runs `argv` inside the host whose namespaces `pid` (its sshd) owns, with `stdin` fed in.
pub(crate) fn in_host(pid: u32, argv: &[&str], stdin: &[u8]) -> Result<String, LabError> {
    let what = format!("running `{}` inside the host of pid {pid}", argv.join(" "));
    let mut child = Command::new("nsenter")
        .arg("-t")
        .arg(pid.to_string())
        .args(["-m", "-u", "--"])
        .args(argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LabError::io(what.clone()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin).map_err(LabError::io(what.clone()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(LabError::io(what.clone()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(LabError::Command {
            what,
            detail: format!("{}{}", text, String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(text)
}

/// Writes `text` at `path` inside the host (parent dirs created, mode applied).
fn write_in_host(pid: u32, path: &str, mode: &str, text: &str) -> Result<(), LabError> {
    let dir = Path::new(path)
        .parent()
        .map_or("/".into(), |d| d.display().to_string());
    let script = format!(
        "mkdir -p '{dir}' && umask 077 && cat > '{path}.tmp' && chmod {mode} '{path}.tmp' && mv '{path}.tmp' '{path}'"
    );
    in_host(pid, &["/bin/sh", "-c", &script], text.as_bytes()).map(|_| ())
}

fn err(e: pki::PkiError) -> LabError {
    LabError::Spec(format!("making the lab PKI: {e}"))
}

fn client_kubeconfig(server: &str, ca: &Ca, cn: &str, orgs: &[&str]) -> Result<String, LabError> {
    use base64::Engine;
    let issued = ca
        .issue(&CertSpec {
            common_name: cn.into(),
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            dns_names: vec![],
            ip_addresses: vec![],
            server: false,
            client: true,
            validity: YEAR,
        })
        .map_err(err)?;
    let e = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut user = serde_json::Map::new();
    user.insert("client-certificate-data".into(), e(&issued.cert_pem).into());
    user.insert("client-key-data".into(), e(&issued.key_pem).into());
    Ok(kube::render_kubeconfig(server, &ca.cert_pem, cn, user))
}

fn unit(description: &str, exec: &str, flags: &[String]) -> String {
    let mut body = format!("[Unit]\nDescription={description}\nDocumentation=https://github.com/kubernetes/kubernetes\n\n[Service]\nExecStart={exec}");
    for f in flags {
        body.push_str(&format!(" \\\n  {f}"));
    }
    body.push_str("\nRestart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n");
    body
}

pub(crate) fn apiserver_unit(addr: &str, real: bool) -> String {
    let etcd = if real {
        format!("--etcd-servers=http://{addr}:2379")
    } else {
        "--etcd-servers=https://127.0.0.1:2379".into()
    };
    let mut flags: Vec<String> = [
        format!("--advertise-address={addr}"),
        format!("--bind-address={addr}"),
        "--secure-port=6443".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--client-ca-file={CA_CERT}"),
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".into(),
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".into(),
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub".into(),
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        etcd,
        "--service-cluster-ip-range=10.32.0.0/24".into(),
        "--allow-privileged=true".into(),
        "--v=2".into(),
    ]
    .into();
    if real {
        flags.push("--insecure-port=0".into());
        flags.push("--profiling=false".into());
    }
    unit(
        "Kubernetes API Server",
        "/usr/local/bin/kube-apiserver",
        &flags,
    )
}

pub(crate) fn controller_manager_unit(real_on: Option<&str>) -> String {
    let mut flags: Vec<String> = [
        "--kubeconfig=/etc/kubernetes/controller-manager.kubeconfig",
        "--cluster-name=kubernetes",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--use-service-account-credentials=true",
        "--v=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(addr) = real_on {
        flags.extend([
            format!("--bind-address={addr}"),
            "--port=0".into(),
            "--leader-elect=false".into(),
            "--profiling=false".into(),
        ]);
    }
    unit(
        "Kubernetes Controller Manager",
        "/usr/local/bin/kube-controller-manager",
        &flags,
    )
}

/// etcd of a real control plane: one member on the host's address, data in its state dir.
fn etcd_unit(name: &str, addr: &str) -> String {
    let flags: Vec<String> = vec![
        format!("--name={name}"),
        "--data-dir=/var/lib/bootstrapctl-lab/etcd".into(),
        format!("--listen-client-urls=http://{addr}:2379"),
        format!("--advertise-client-urls=http://{addr}:2379"),
        format!("--listen-peer-urls=http://{addr}:2380"),
        format!("--initial-advertise-peer-urls=http://{addr}:2380"),
        format!("--initial-cluster={name}=http://{addr}:2380"),
    ];
    unit("etcd", "/usr/bin/etcd", &flags)
}

/// How long `up` waits for a real kube-apiserver to answer /readyz.
const REAL_READY_SECS: u32 = 180;

/// Seeds `name` (pid: its sshd) at `addr`; writes ca.crt and admin.kubeconfig into `lab_dir`.
pub(crate) fn control_plane(
    lab_dir: &Path,
    name: &str,
    addr: &str,
    pid: u32,
    real: bool,
) -> Result<(), LabError> {
    let server = format!("https://{addr}:6443");
    let ca = Ca::generate("kubernetes").map_err(err)?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| LabError::Spec(format!("bad address {addr}")))?;
    let apiserver = ca
        .issue(&CertSpec {
            common_name: "kube-apiserver".into(),
            organizations: vec![],
            dns_names: [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                name,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ip_addresses: vec![
                ip,
                "127.0.0.1".parse().expect("ip"),
                "10.32.0.1".parse().expect("ip"),
            ],
            server: true,
            client: false,
            validity: YEAR,
        })
        .map_err(err)?;
    let sa = rcgen::KeyPair::generate()
        .map_err(|e| LabError::Spec(format!("service-account key: {e}")))?;
    let admin = client_kubeconfig(&server, &ca, "kubernetes-admin", &["system:masters"])?;
    let kcm = client_kubeconfig(&server, &ca, "system:kube-controller-manager", &[])?;
    let mut files: Vec<(&str, &str, String)> = vec![
        (CA_CERT, "0644", ca.cert_pem.clone()),
        (CA_KEY, "0600", ca.key_pem.clone()),
        (
            "/etc/kubernetes/pki/apiserver.crt",
            "0644",
            apiserver.cert_pem,
        ),
        (
            "/etc/kubernetes/pki/apiserver.key",
            "0600",
            apiserver.key_pem,
        ),
        ("/etc/kubernetes/pki/sa.key", "0600", sa.serialize_pem()),
        ("/etc/kubernetes/pki/sa.pub", "0644", sa.public_key_pem()),
        (ADMIN_KUBECONFIG, "0600", admin.clone()),
        ("/etc/kubernetes/controller-manager.kubeconfig", "0600", kcm),
        (
            "/etc/systemd/system/kube-apiserver.service",
            "0644",
            apiserver_unit(addr, real),
        ),
        (
            "/etc/systemd/system/kube-controller-manager.service",
            "0644",
            controller_manager_unit(real.then_some(addr)),
        ),
    ];
    if real {
        files.push((
            "/etc/systemd/system/etcd.service",
            "0644",
            etcd_unit(name, addr),
        ));
    }
    for (path, mode, text) in &files {
        write_in_host(pid, path, mode, text)?;
    }
    if real {
        // etcd first and healthy, then the API server ready: the seeded control plane is up
        // when `up` returns, as with the stand-ins.
        let script = format!(
            "systemctl daemon-reload && systemctl enable etcd kube-apiserver kube-controller-manager && systemctl start etcd && \
             i=0; until curl -sf --max-time 2 http://{addr}:2379/health >/dev/null; do i=$((i+1)); [ $i -lt {REAL_READY_SECS} ] || {{ echo 'etcd not healthy after {REAL_READY_SECS}s' >&2; exit 1; }}; sleep 0.5; done; \
             systemctl start kube-apiserver kube-controller-manager && \
             i=0; until kubectl --kubeconfig {ADMIN_KUBECONFIG} get --raw /readyz >/dev/null 2>&1; do i=$((i+1)); [ $i -lt {REAL_READY_SECS} ] || {{ echo 'kube-apiserver not ready after {REAL_READY_SECS}s' >&2; tail -20 /var/log/lab/kube-apiserver.log >&2; exit 1; }}; sleep 1; done"
        );
        in_host(pid, &["/bin/sh", "-c", &script], b"")?;
    } else {
        in_host(
            pid,
            &["/bin/sh", "-c", "systemctl daemon-reload && systemctl enable kube-apiserver kube-controller-manager && systemctl start kube-apiserver kube-controller-manager"],
            b"",
        )?;
    }
    let write = |p: std::path::PathBuf, t: &str| {
        std::fs::write(&p, t).map_err(LabError::io(format!("writing {}", p.display())))
    };
    write(lab_dir.join("ca.crt"), &ca.cert_pem)?;
    write(lab_dir.join("admin.kubeconfig"), &admin)?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        lab_dir.join("admin.kubeconfig"),
        std::fs::Permissions::from_mode(0o600),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Parsed, Root};

    #[test]
    fn seeded_units_have_the_hard_way_flags_and_nothing_for_bootstrap() {
        let tmp = crate::testutil::TempDir::new("seed-units");
        let root = Root(tmp.0.clone());
        std::fs::create_dir_all(root.path("/etc/systemd/system")).unwrap();
        std::fs::write(
            root.path("/etc/systemd/system/kube-apiserver.service"),
            apiserver_unit("127.10.0.1", false),
        )
        .unwrap();
        std::fs::write(
            root.path("/etc/systemd/system/kube-controller-manager.service"),
            controller_manager_unit(None),
        )
        .unwrap();
        let p: Parsed = crate::units::find(&root, "kube-apiserver.service")
            .unwrap()
            .parsed();
        let line = &p.exec_start[0];
        assert!(line.starts_with("/usr/local/bin/kube-apiserver --advertise-address=127.10.0.1 --bind-address=127.10.0.1 --secure-port=6443 --authorization-mode=Node,RBAC"), "{line}");
        assert!(!line.contains("bootstrap-token"));
        assert_eq!(p.wanted_by, ["multi-user.target"]);
        let k = crate::units::find(&root, "kube-controller-manager.service")
            .unwrap()
            .parsed();
        assert!(
            !k.exec_start[0].contains("--controllers")
                && !k.exec_start[0].contains("--cluster-signing")
        );
        assert_eq!(
            crate::service::component(&k.exec_start),
            Some("kube-controller-manager")
        );
    }
}
