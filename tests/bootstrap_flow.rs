//! Live TLS bootstrap on a lab (root only): `lab up --control-planes 1 --workers 2`, then by hand
//! over SSH what bootstrapctl's playbooks will do: apiserver and kcm flags, daemon-reload,
//! restart, RBAC bindings, token Secret and cluster-info with kubectl, then the kubelet on the
//! workers. Without the auto-approve binding the CSR stays Pending and no Node appears; with it
//! the workers are Ready within 30 s. Needs the kube-apiserver stand-in in the binary: skipped
//! (with the reason) while it is not there.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{bin, next_subnet, run, tempdir};

/// Whether this bootstrapctl binary has the kube-apiserver stand-in (argv0 dispatch).
fn has_apiserver_stand_in() -> bool {
    let d = tempdir("apiserver-probe");
    let link = d.join("kube-apiserver");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    Command::new(&link).arg("--help").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("stand-in")
    })
}

struct Down(std::path::PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["lab", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

fn ssh(dir: &Path, addr: &str, port: u16, cmd: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-i",
        ])
        .arg(dir.join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(["-p", &port.to_string(), &format!("root@{addr}"), cmd])
        .output()
        .expect("ssh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

const K: &str = "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig";

#[test]
fn worker_joins_only_with_the_auto_approve_binding() {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("skipping worker_joins_only_with_the_auto_approve_binding: needs root and sshd");
        return;
    }
    if !has_apiserver_stand_in() {
        eprintln!("skipping worker_joins_only_with_the_auto_approve_binding: this binary has no kube-apiserver stand-in yet (`kube-apiserver --help` fails)");
        return;
    }
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("skipping worker_joins_only_with_the_auto_approve_binding: no kubectl");
        return;
    }
    let dir = tempdir("bootstrap-flow").join("lab");
    let (subnet, port) = (next_subnet(), 2222u16);
    let r = run([
        "lab",
        "up",
        "--control-planes",
        "1",
        "--workers",
        "2",
        "--dir",
        dir.to_str().unwrap(),
        "--subnet",
        &subnet.to_string(),
        "--port",
        &port.to_string(),
    ]);
    assert_eq!(r.code, 0, "lab up: {}", r.all());
    let _down = Down(dir.clone());
    let cp = format!("127.{subnet}.0.1");
    let w = |i: u8| format!("127.{subnet}.0.{}", i + 1);
    let on = |addr: &str, cmd: &str| {
        let (ok, out) = ssh(&dir, addr, port, cmd);
        assert!(ok, "{addr}: {cmd}\n{out}");
        out
    };

    // Control plane: the flags bootstrapctl adds, daemon-reload, restart.
    on(
        &cp,
        r"sed -i 's|^  --v=2$|  --v=2 \\\n  --enable-bootstrap-token-auth=true|' /etc/systemd/system/kube-apiserver.service
        sed -i 's|^  --v=2$|  --v=2 \\\n  --controllers=*,bootstrapsigner,tokencleaner \\\n  --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt \\\n  --cluster-signing-key-file=/etc/kubernetes/pki/ca.key|' /etc/systemd/system/kube-controller-manager.service
        systemctl daemon-reload && systemctl restart kube-apiserver kube-controller-manager",
    );
    assert!(
        wait_until(30, || ssh(&dir, &cp, port, &format!("{K} get namespaces"))
            .0),
        "API server never answered: {}",
        ssh(&dir, &cp, port, "journalctl -u kube-apiserver -n 30").1
    );
    let ca_b64 = on(&cp, "base64 -w0 /etc/kubernetes/pki/ca.crt");
    let kubeconfig = |user: &str| {
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://{cp}:6443\n    certificate-authority-data: {ca_b64}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: c\n  context: {{cluster: kubernetes, user: u}}\ncurrent-context: c\n")
    };
    on(&cp, &format!("cat > /tmp/cluster-info.kubeconfig <<'EOF'\n{}EOF\n{K} -n kube-public create configmap cluster-info --from-file=kubeconfig=/tmp/cluster-info.kubeconfig", kubeconfig("{}").replace("users:\n- name: u\n  user: {}\n", "")));
    on(&cp, &format!("{K} -n kube-system create secret generic bootstrap-token-abcdef --type=bootstrap.kubernetes.io/token --from-literal=token-id=abcdef --from-literal=token-secret=0123456789abcdef --from-literal=usage-bootstrap-authentication=true --from-literal=usage-bootstrap-signing=true --from-literal=auth-extra-groups=system:bootstrappers:worker"));
    on(&cp, &format!("{K} create clusterrolebinding create-csrs-for-bootstrapping --clusterrole=system:node-bootstrapper --group=system:bootstrappers && {K} create clusterrolebinding auto-approve-renewals-for-nodes --clusterrole=system:certificates.k8s.io:certificatesigningrequests:selfnodeclient --group=system:nodes"));
    assert!(
        wait_until(15, || {
            ssh(&dir, &cp, port, &format!("{K} -n kube-public get configmap cluster-info -o jsonpath='{{.data.jws-kubeconfig-abcdef}}'")).1.contains("..")
        }),
        "bootstrapsigner never signed cluster-info: {}",
        ssh(
            &dir,
            &cp,
            port,
            "journalctl -u kube-controller-manager -n 30"
        )
        .1
    );

    // Workers: bootstrap kubeconfig, kubelet config and unit, daemon-reload, start.
    let swap_on = std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false);
    for i in [1u8, 2] {
        on(&w(i), &format!(
            "cat > /etc/kubernetes/bootstrap-kubeconfig <<'EOF'\n{}EOF\ncat > /var/lib/kubelet/config.yaml <<'EOF'\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nrotateCertificates: true\nfailSwapOn: {}\nEOF\ncat > /etc/systemd/system/kubelet.service <<'EOF'\n[Service]\nExecStart=/usr/local/bin/kubelet \\\n  --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubeconfig \\\n  --kubeconfig=/etc/kubernetes/kubelet.kubeconfig \\\n  --config=/var/lib/kubelet/config.yaml \\\n  --node-ip={}\n[Install]\nWantedBy=multi-user.target\nEOF\n",
            kubeconfig("{token: abcdef.0123456789abcdef}"), !swap_on, w(i)));
    }
    // Without auto-approve-csrs-for-group: the CSR stays Pending, no Node.
    on(
        &w(2),
        "systemctl daemon-reload && systemctl enable --now kubelet",
    );
    assert!(
        wait_until(20, || ssh(&dir, &cp, port, &format!("{K} get csr"))
            .1
            .contains("Pending")),
        "no pending CSR: {}",
        ssh(&dir, &w(2), port, "journalctl -u kubelet -n 30").1
    );
    std::thread::sleep(Duration::from_secs(5));
    let csrs = on(&cp, &format!("{K} get csr"));
    assert!(
        csrs.contains("Pending") && !csrs.contains("Approved"),
        "{csrs}"
    );
    assert!(
        !ssh(&dir, &cp, port, &format!("{K} get node worker-02")).0,
        "a node without approval"
    );

    // With it, both workers join and are Ready within 30 s.
    on(&cp, &format!("{K} create clusterrolebinding auto-approve-csrs-for-group --clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient --group=system:bootstrappers"));
    on(
        &w(1),
        "systemctl daemon-reload && systemctl enable --now kubelet",
    );
    for node in ["worker-01", "worker-02"] {
        let ready = wait_until(30, || {
            ssh(&dir, &cp, port, &format!("{K} get node {node} -o jsonpath='{{.status.conditions[?(@.type==\"Ready\")].status}}'")).1.trim() == "True"
        });
        let idx = if node == "worker-01" { 1 } else { 2 };
        assert!(
            ready,
            "{node} not Ready: {}\n{}",
            ssh(&dir, &cp, port, &format!("{K} get csr,nodes")).1,
            ssh(&dir, &w(idx), port, "journalctl -u kubelet -n 40").1
        );
    }
    let nodes = on(&cp, &format!("{K} get nodes"));
    assert!(
        nodes.contains("worker-01") && nodes.contains("Ready"),
        "{nodes}"
    );
    let link = on(
        &w(1),
        "readlink /var/lib/kubelet/pki/kubelet-client-current.pem",
    );
    assert!(
        link.trim()
            .starts_with("/var/lib/kubelet/pki/kubelet-client-2"),
        "{link}"
    );
}
