//! No secret in any output: the whole site playbook with --diff -vvv --output json, scanned.

use crate::support::{run, tempdir, Lab};

const TOKEN: &str = "07401b.f395accd246ae52d";
const TOKEN_SECRET: &str = "f395accd246ae52d";
const NO_LOG_VALUE: &str = "s3cr3t-from-no-log-task";

#[test]
fn secrets_never_appear_in_any_output() {
    let Some(lab) = Lab::up("secrets", 2) else {
        return;
    };
    let out = tempdir("secrets");
    let inv = lab.inventory().display().to_string();
    let report = out.join("report.json");
    let mut seen = String::new();
    for args in [
        vec!["plan".to_string()],
        vec!["apply".to_string(), "--diff".to_string()],
    ] {
        let mut a = args.clone();
        a.extend(
            [
                "-i",
                &inv,
                "-vvv",
                "--output",
                "json",
                &report.display().to_string(),
                "-e",
                &format!("bootstrap_token={TOKEN}"),
                "-e",
                "api_server=https://127.0.0.1:6443",
                "-e",
                "ca_data=Y2EK",
            ]
            .map(String::from),
        );
        let r = run(&a);
        assert_eq!(r.code, 0, "{}", r.all());
        seen.push_str(&r.all());
        seen.push_str(&std::fs::read_to_string(&report).unwrap());
    }
    // The token really reached the host, in a 0600 file.
    let kubeconfig = lab.ssh("worker-01", "stat -c %a /var/lib/kubelet/bootstrap-kubeconfig; cat /var/lib/kubelet/bootstrap-kubeconfig");
    assert!(
        kubeconfig.starts_with("600\n") && kubeconfig.contains(TOKEN),
        "{kubeconfig}"
    );
    // The diff and the -vvv scripts were printed, redacted.
    assert!(
        seen.contains("bootstrap-kubeconfig (after)"),
        "no diff shown"
    );
    assert!(
        seen.contains("token: <redacted>"),
        "redaction marker missing"
    );
    assert!(seen.contains("<worker-01> apply:"), "-vvv scripts missing");

    // A no_log task's output is withheld too.
    let pb = out.join("nolog.yaml");
    std::fs::write(
        &pb,
        format!("- hosts: workers\n  tasks:\n    - name: secret command\n      shell: echo {NO_LOG_VALUE}; exit 3\n      no_log: true\n"),
    )
    .unwrap();
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb.display().to_string(),
        "-vvv",
        "--output",
        "json",
        &report.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("'no_log: true' was specified"),
        "{}",
        r.stdout
    );
    seen.push_str(&r.all());
    seen.push_str(&std::fs::read_to_string(&report).unwrap());

    for secret in [TOKEN, TOKEN_SECRET] {
        assert!(!seen.contains(secret), "secret {secret} leaked:\n{seen}");
    }
    assert!(!seen.contains(NO_LOG_VALUE), "no_log task leaked:\n{seen}");
}
