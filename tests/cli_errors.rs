//! Bad input: exact messages with file:line:column, exit code 2, nothing run.

use crate::support::{fixture, run, tempdir};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const INVENTORY: &str = "all:\n  children:\n    workers:\n      hosts:\n        worker-[01:03]:\n          ansible_host: 127.0.0.1\n";

#[test]
fn playbook_errors_name_file_line_and_column() {
    let d = tempdir("errors");
    let inv = write(&d, "inv.yaml", INVENTORY);
    let cases = [
        (
            "- hosts: workers\n  tasks:\n    - name: x\n      tempalte: {src: a, dest: /b}\n",
            ":4:7: [0].tasks[0]: unknown module or task keyword `tempalte`",
        ),
        (
            "- hosts: workers\n  tasks:\n    - copy: {dest: /x, content: y, mdoe: '0644'}\n",
            ":3:36: [0].tasks[0].copy: unknown field `mdoe`, expected one of `content`, `src`, `dest`, `mode`, `owner`, `group`, `force`",
        ),
        (
            "- hosts: workers\n  tasks:\n    - systemd: {name: k, enabled: maybe}\n",
            ":3:35: [0].tasks[0].systemd.enabled: invalid type: string \"maybe\", expected a boolean",
        ),
        ("- hosts: workers\n  tasks: [\n", ":3:1: did not find expected node content, while parsing a flow node"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let pb = write(&d, &format!("pb{i}.yaml"), text);
        let r = run(["apply", "-i", &inv, &pb]);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(
            r.stderr.starts_with(&format!("error: {pb}{want}")),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stdout.is_empty(), "nothing ran: {}", r.stdout);
    }
}

#[test]
fn undefined_template_variable_names_variable_template_and_line() {
    let d = tempdir("undef");
    let inv = write(
        &d,
        "inv.yaml",
        "all:\n  hosts:\n    local-1:\n      ansible_connection: local\n",
    );
    std::fs::create_dir_all(d.join("templates")).unwrap();
    write(
        &d.join("templates"),
        "t.j2",
        "a\n{{ inventory_hostname }}\n{{ api_sever }}\n",
    );
    let pb = write(
        &d,
        "pb.yaml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: render\n      template: {{src: t.j2, dest: {}/out}}\n",
            d.display()
        ),
    );
    let r = run(["apply", "-i", &inv, &pb]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("failed: [local-1] render: undefined variable `api_sever` in t.j2 line 3"),
        "{}",
        r.stdout
    );
    assert!(!d.join("out").exists());
}

#[test]
fn limit_errors_and_inventory_list() {
    let d = tempdir("limit");
    let inv = write(&d, "inv.yaml", INVENTORY);
    let r = run([
        "inventory",
        "list",
        "-i",
        &inv,
        "--limit",
        "workers:!worker-01",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.stdout,
        "HOST       ADDRESS                 GROUPS\nworker-02  127.0.0.1               workers\nworker-03  127.0.0.1               workers\n"
    );
    let r = run(["inventory", "list", "-i", &inv, "--limit", "nosuch*"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("nosuch*"), "{}", r.stderr);
    let _ = fixture("");
}

fn local_inventory(d: &std::path::Path) -> String {
    write(
        d,
        "local.yaml",
        "all:\n  hosts:\n    local-1:\n      ansible_connection: local\n",
    )
}

#[test]
fn bad_host_patterns_and_inventory_cycles() {
    let d = tempdir("patterns");
    let inv = write(&d, "inv.yaml", INVENTORY);
    let r = run(["inventory", "list", "-i", &inv, "--limit", "workers,!"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        "error: selecting hosts with --limit
  caused by: bad host pattern \"workers,!\": \"!\" must be followed by a host or group name
"
    );
    let pb = write(
        &d,
        "pb.yaml",
        "- hosts: workers\n  tasks:\n    - command: 'true'\n",
    );
    let r = run(["apply", "-i", &inv, &pb, "--limit", "nosuchhost"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        format!("error: selecting hosts with --limit\n  caused by: pattern \"nosuchhost\" matches no hosts in {inv}\n")
    );
    let cyc = write(
        &d,
        "cycle.yaml",
        "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a: {}\n",
    );
    let r = run(["inventory", "list", "-i", &cyc]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.starts_with(&format!(
            "error: {cyc}:5:9: group \"b\" includes itself: b -> a -> b"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_template_file_and_newline_in_a_flag_value() {
    let d = tempdir("missing");
    let inv = local_inventory(&d);
    let unit = d.join("kube-apiserver.service");
    std::fs::write(
        &unit,
        "[Service]\nExecStart=/usr/local/bin/kube-apiserver \\\n  --secure-port=6443\n",
    )
    .unwrap();
    let pb = write(
        &d,
        "pb.yaml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: flags\n      kube_flags:\n        path: {}\n        flags: {{--audit-log-path: \"{{{{ evil }}}}\"}}\n    - name: render\n      template: {{src: nope.j2, dest: {}/out}}\n",
            unit.display(),
            d.display()
        ),
    );
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "-e",
        "{\"evil\": \"/x\\nExecStartPre=/bin/sh\"}",
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains(&format!(
            "failed: [local-1] flags: {}: flag --audit-log-path: value contains a newline; it would break the unit file",
            unit.display()
        )),
        "{}",
        r.stdout
    );
    assert!(!std::fs::read_to_string(&unit)
        .unwrap()
        .contains("ExecStartPre"));
    let pb2 = write(
        &d,
        "pb2.yaml",
        &format!("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: render\n      template: {{src: nope.j2, dest: {}/out}}\n", d.display()),
    );
    let r = run(["apply", "-i", &inv, &pb2]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("failed: [local-1] render: template file nope.j2 not found (looked beside the playbook and in the built-in templates)"),
        "{}",
        r.stdout
    );
}

#[test]
fn errors_print_their_cause_chain_once_with_file_line_and_column() {
    let d = tempdir("chain");
    let inv = local_inventory(&d);
    let pb = write(&d, "pb.yaml", "- hosts: all\n  tasks: []\n");
    let vars = write(&d, "vars.yaml", "a: 1\nb: [\n");
    let r = run(["apply", "-i", &inv, &pb, "-e", &format!("@{vars}")]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        format!(
            "error: reading extra variables\n  caused by: -e @{vars}:3:1: cannot read variables\n  caused by: did not find expected node content at line 3 column 1, while parsing a flow node\n"
        )
    );
    assert!(r.stdout.is_empty(), "nothing ran: {}", r.stdout);
    let r = run([
        "apply",
        "-i",
        &inv,
        &pb,
        "--ssh-config",
        "/nonexistent/ssh_config",
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        "error: cannot read ssh config /nonexistent/ssh_config\n  caused by: No such file or directory (os error 2)\n"
    );
}

#[test]
fn secrets_in_a_failing_argument_print_redacted() {
    const TOKEN: &str = "abcdef.0123456789abcdef";
    let d = tempdir("secret-error");
    let inv = local_inventory(&d);
    let pb = write(&d, "pb.yaml", "- hosts: all\n  tasks: []\n");
    // key=value words that cannot be split (an unclosed quote), a YAML mapping that does not
    // parse, and a password that is no token: none of them may show the value.
    let cases = [
        (
            format!("bootstrap_token={TOKEN} note='unclosed"),
            "  caused by: -e bootstrap_token=<redacted> note='unclosed: cannot split into words\n",
        ),
        (
            format!("{{\"join_token\": \"{TOKEN}\", \"x\": [}}"),
            "  caused by: -e {\"join_token\": \"<redacted>\", \"x\": [}: not a YAML mapping\n",
        ),
        (
            "db_password=hunter2-not-a-token 'unclosed".to_string(),
            "  caused by: -e db_password=<redacted> 'unclosed: cannot split into words\n",
        ),
    ];
    for (arg, want) in cases {
        let r = run(["apply", "-i", &inv, &pb, "-e", &arg]);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(
            r.stderr.starts_with("error: reading extra variables\n"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains(want), "{}", r.stderr);
        assert!(!r.stderr.contains("0123456789abcdef"), "{}", r.stderr);
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }
}

#[test]
fn discovery_and_pki_errors_name_the_file_and_keep_the_cause() {
    let d = tempdir("discovery-errors");
    let not_pem = write(&d, "not-a-cert.pem", "hello\n");
    let r = run(["pki", "ca-hash", not_pem.as_str()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        format!("error: {not_pem}: reading certificates\n  caused by: no PEM CERTIFICATE found\n")
    );
    let missing = d.join("missing.yaml").display().to_string();
    let r = run([
        "discovery",
        "verify",
        "--token",
        "abcdef.0123456789abcdef",
        "--cluster-info",
        missing.as_str(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.starts_with(&format!(
            "error: reading {missing}\n  caused by: No such file"
        )),
        "{}",
        r.stderr
    );
    // A malformed token is named by its flag, and never printed back.
    let r = run([
        "discovery",
        "verify",
        "--token",
        "ABCDEF.0123456789abcdef",
        "--cluster-info",
        missing.as_str(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr,
        "error: --token\n  caused by: token does not match the format [a-z0-9]{6}.[a-z0-9]{16}\n"
    );
}
