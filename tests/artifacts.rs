//! Fresh hosts get their binaries: bare lab workers (`lab up --bare`: no kubelet, empty
//! /usr/local and /opt) install the kubelet and containerd stand-ins and CNI plugins as
//! verified artifacts, some from this machine over SSH, some from a loopback HTTP server, then
//! join; a second run transfers nothing; a corrupted artifact is refused with both sums;
//! `bundle verify`.

use std::path::{Path, PathBuf};

use crate::support::http::HttpServer;
use crate::support::{bin, json, run, tempdir, Lab};

fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The multi-call stand-in binary: installed as /usr/local/bin/kubelet, it runs the kubelet
/// stand-in because it dispatches on argv[0].
fn kubelet_standin() -> PathBuf {
    let slim = Path::new(bin()).with_file_name("bootstrapctl-standin");
    if slim.exists() {
        slim
    } else {
        PathBuf::from(bin())
    }
}

/// A CNI plugins release as the upstream tarball lays it out: `./bridge`, `./host-local`...
fn cni_tarball(dir: &Path) -> PathBuf {
    let stage = dir.join("cni-stage");
    std::fs::create_dir_all(&stage).unwrap();
    for p in ["bridge", "host-local", "loopback"] {
        std::fs::write(stage.join(p), format!("#!/bin/sh\necho {p} plugin\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(stage.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tgz = dir.join("cni-plugins-linux-amd64-v1.5.1.tgz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&stage)
        .args(["./bridge", "./host-local", "./loopback"])
        .status()
        .unwrap();
    assert!(st.success());
    tgz
}

/// A containerd release as upstream lays it out (`bin/containerd`, unpacked into /usr/local),
/// holding the lab's containerd stand-in (the multi-call binary, dispatching on argv[0]).
fn containerd_tarball(dir: &Path) -> PathBuf {
    let stage = dir.join("containerd-stage");
    std::fs::create_dir_all(stage.join("bin")).unwrap();
    std::fs::copy(kubelet_standin(), stage.join("bin/containerd")).unwrap();
    let tgz = dir.join("containerd-1.7.22-linux-amd64.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&stage)
        .arg("bin/containerd")
        .status()
        .unwrap();
    assert!(st.success());
    tgz
}

fn apply(inventory: &Path, report: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "apply".to_string(),
        "-i".into(),
        inventory.display().to_string(),
        "--output".into(),
        "json".into(),
        report.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run(args)
}

fn recap(report: &serde_json::Value, host: &str, field: &str) -> u64 {
    report["recap"][host][field]
        .as_u64()
        .unwrap_or_else(|| panic!("recap {host} {field}: {}", report["recap"]))
}

#[test]
fn bare_workers_get_verified_binaries_from_the_laptop_and_a_url_then_join() {
    let Some(lab) = Lab::bare_cluster("artifacts", 1, 2) else {
        return;
    };
    let out = tempdir("artifacts");
    let files = tempdir("artifact-files");
    let kubelet = files.join("kubelet");
    std::fs::copy(kubelet_standin(), &kubelet).unwrap();
    let tgz = cni_tarball(&files);
    let containerd = containerd_tarball(&files);
    let (kubelet_sum, cni_sum) = (sha256(&kubelet), sha256(&tgz));
    let containerd_sum = sha256(&containerd);
    let sizes = std::fs::metadata(&kubelet).unwrap().len()
        + std::fs::metadata(&tgz).unwrap().len()
        + std::fs::metadata(&containerd).unwrap().len();
    let server = HttpServer::start(files.clone());

    // A bare worker has no kubelet and no CNI plugins.
    for w in ["worker-01", "worker-02"] {
        assert_eq!(
            lab.ssh(
                w,
                "ls -A /usr/local/bin /opt/cni/bin; command -v kubelet || echo none"
            ),
            "/opt/cni/bin:\n\n/usr/local/bin:\nnone\n"
        );
    }

    // worker-01 takes both from this machine (the CNI plugins through an air-gap bundle);
    // worker-02 fetches both from the HTTP server.
    let bundle = files.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(&tgz, bundle.join("cni.tgz")).unwrap();
    std::fs::write(
        bundle.join("manifest.yaml"),
        format!("artifacts:\n  - {{name: cni_plugins, version: v1.5.1, sha256: {cni_sum}, path: cni.tgz}}\n"),
    )
    .unwrap();
    let host_vars = lab.dir.join("host_vars");
    std::fs::create_dir_all(&host_vars).unwrap();
    std::fs::write(
        host_vars.join("worker-01.yaml"),
        format!(
            "artifact_bundle: {}\nbinaries:\n  - {{name: kubelet, version: v1.32.0, sha256: {kubelet_sum}, src: {}}}\n  - {{name: cni_plugins}}\n  - {{name: containerd, version: 1.7.22, sha256: {containerd_sum}, src: {}}}\n",
            bundle.display(),
            kubelet.display(),
            containerd.display()
        ),
    )
    .unwrap();
    std::fs::write(
        host_vars.join("worker-02.yaml"),
        format!(
            // cri-dockerd is for docker as the runtime only: skipped with containerd.
            "binaries:\n  - {{name: kubelet, version: v1.32.0, sha256: {kubelet_sum}, url: '{}'}}\n  - {{name: cni-plugins, version: v1.5.1, sha256: {cni_sum}, url: '{}'}}\n  - {{name: cri-dockerd, version: 0.3.15, sha256: {}, url: 'http://127.0.0.1:1/cri-dockerd.tgz'}}\n  - {{name: containerd, version: 1.7.22, sha256: {containerd_sum}, url: '{}'}}\n",
            server.url("kubelet"),
            server.url("cni-plugins-linux-amd64-v1.5.1.tgz"),
            "0".repeat(64),
            server.url("containerd-1.7.22-linux-amd64.tar.gz")
        ),
    )
    .unwrap();

    // The preview says what would be installed, from where and how many bytes; it installs
    // nothing and fetches nothing.
    let plan = run(["plan", "-i", &lab.inventory().display().to_string()]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let kubelet_size = std::fs::metadata(&kubelet).unwrap().len();
    for want in [
        format!("kubelet v1.32.0 sha256 {kubelet_sum}"),
        format!(
            "from laptop:{} ({kubelet_size} bytes, uploaded)",
            kubelet.canonicalize().unwrap().display()
        ),
        format!("from {} (fetched by the host)", server.url("kubelet")),
        "/opt/cni/bin (cni_plugins unpacked)".to_string(),
    ] {
        assert!(
            plan.stdout.contains(&want),
            "missing {want:?} in\n{}",
            plan.stdout
        );
    }
    assert_eq!(server.served(), (0, 0));
    assert_eq!(lab.ssh("worker-01", "ls -A /usr/local/bin"), "");

    let first = out.join("first.json");
    let r = apply(&lab.inventory(), &first, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let report = json(&first);
    assert_eq!(recap(&report, "worker-01", "bytes_transferred"), sizes);
    assert_eq!(recap(&report, "worker-02", "bytes_transferred"), sizes);
    assert_eq!(recap(&report, "cp-1", "bytes_transferred"), 0);
    assert_eq!(
        server.served(),
        (3, sizes),
        "worker-02 fetched each file once"
    );
    assert_eq!(lab.ready_nodes(), ["worker-01", "worker-02"]);
    for w in ["worker-01", "worker-02"] {
        // In place with the right bytes and mode, no temp file left behind.
        assert_eq!(
            lab.ssh(w, "sha256sum /usr/local/bin/kubelet | cut -d' ' -f1; stat -c %a /usr/local/bin/kubelet; ls -A /usr/local/bin /opt/cni/bin"),
            format!("{kubelet_sum}\n755\n/opt/cni/bin:\n.bootstrapctl-{name}.sha256\nbridge\nhost-local\nloopback\n\n/usr/local/bin:\ncontainerd\nkubelet\n",
                name = if w == "worker-01" { "cni_plugins" } else { "cni-plugins" })
        );
        assert_eq!(lab.ssh(w, "/opt/cni/bin/bridge"), "bridge plugin\n");
    }

    // Converged: nothing changes and not one byte moves.
    let second = out.join("second.json");
    let r = apply(&lab.inventory(), &second, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let report = json(&second);
    for h in ["cp-1", "worker-01", "worker-02"] {
        assert_eq!(recap(&report, h, "changed"), 0, "{h}: {}", r.all());
        assert_eq!(recap(&report, h, "bytes_transferred"), 0, "{h}");
    }
    assert_eq!(server.served(), (3, sizes), "nothing fetched again");
    // The installed sums are part of the batched read: a converged worker costs the round
    // trips it costs without artifacts.
    for w in ["worker-01", "worker-02"] {
        eprintln!(
            "{w}: {} round trips on the no-op run",
            recap(&report, w, "round_trips")
        );
    }
    eprintln!(
        "bytes transferred: first apply {sizes} per worker, second apply 0 (from {})",
        second.display()
    );
}

#[test]
fn a_corrupted_artifact_is_refused_with_both_sums_and_nothing_is_installed() {
    let Some(lab) = Lab::bare_cluster("artifact-bad", 0, 2) else {
        return;
    };
    let files = tempdir("artifact-bad");
    let good = files.join("good");
    std::fs::write(&good, "#!/bin/sh\necho the real kubelet\n").unwrap();
    let want = sha256(&good);
    // What arrives is not what was pinned: a truncated download, a tampered mirror.
    let bad = files.join("kubelet");
    std::fs::write(&bad, "#!/bin/sh\necho something else\n").unwrap();
    let got = sha256(&bad);
    let server = HttpServer::start(files.clone());
    let inventory = lab.inventory_with("");
    let host_vars = lab.dir.join("host_vars");
    std::fs::create_dir_all(&host_vars).unwrap();
    std::fs::write(
        host_vars.join("worker-01.yaml"),
        format!(
            "binaries: [{{name: kubelet, version: v1.32.0, sha256: {want}, src: {}}}]\n",
            bad.display()
        ),
    )
    .unwrap();
    std::fs::write(
        host_vars.join("worker-02.yaml"),
        format!(
            "binaries: [{{name: kubelet, version: v1.32.0, sha256: {want}, url: '{}'}}]\n",
            server.url("kubelet")
        ),
    )
    .unwrap();
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/binaries.yaml");
    let report = tempdir("artifact-bad-report").join("r.json");
    let r = apply(&inventory, &report, &[&playbook.display().to_string()]);
    assert_eq!(r.code, 1, "{}", r.all());
    let results = json(&report);
    for w in ["worker-01", "worker-02"] {
        let failed: Vec<&serde_json::Value> = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["host"] == w && x["status"] == "failed")
            .collect();
        assert_eq!(failed.len(), 1, "{w}: {}", r.all());
        let msg = failed[0]["msg"].as_str().unwrap();
        let from = if w == "worker-01" {
            format!("laptop:{}", bad.canonicalize().unwrap().display())
        } else {
            server.url("kubelet")
        };
        assert!(
            msg.contains(&format!(
                "checksum mismatch for /usr/local/bin/kubelet (kubelet v1.32.0 from {from}"
            )) && msg.contains(&format!(
                "expected sha256 {want}, got {got}; nothing installed"
            )),
            "{w}: {msg}"
        );
        // Nothing in place, no temp file left.
        assert_eq!(lab.ssh(w, "ls -A /usr/local/bin"), "", "{w}");
    }
}

#[test]
fn bundle_verify_passes_a_good_bundle_and_names_each_bad_file_with_both_sums() {
    let dir = tempdir("bundle");
    std::fs::write(dir.join("kubelet"), "kubelet bytes\n").unwrap();
    std::fs::write(dir.join("runc"), "runc bytes\n").unwrap();
    let (k, r) = (sha256(&dir.join("kubelet")), sha256(&dir.join("runc")));
    std::fs::write(
        dir.join("manifest.yaml"),
        format!(
            "artifacts:\n  - {{name: kubelet, version: v1.32.0, sha256: {k}, path: kubelet}}\n  - {{name: runc, version: v1.1.14, sha256: {r}, path: runc}}\n"
        ),
    )
    .unwrap();
    let ok = run(["bundle", "verify", &dir.display().to_string()]);
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert_eq!(
        ok.stdout,
        format!(
            "kubelet v1.32.0 kubelet: OK\nrunc v1.1.14 runc: OK\n2 artifact(s) verified in {}\n",
            dir.display()
        )
    );

    std::fs::write(dir.join("runc"), "tampered\n").unwrap();
    let bad_sum = sha256(&dir.join("runc"));
    let bad = run(["bundle", "verify", &dir.display().to_string()]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert_eq!(
        bad.stdout,
        format!(
            "kubelet v1.32.0 kubelet: OK\nrunc v1.1.14 runc: FAILED: checksum mismatch for {d}/runc: expected sha256 {r}, got {bad_sum}\n1 of 2 artifact(s) FAILED in {d}\n",
            d = dir.display()
        )
    );

    let missing = run(["bundle", "verify", &dir.join("nope").display().to_string()]);
    assert_eq!(missing.code, 2, "{}", missing.all());
    assert!(
        missing.stderr.contains("manifest.yaml"),
        "{}",
        missing.all()
    );
}
