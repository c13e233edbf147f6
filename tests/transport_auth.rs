//! Logging in and becoming root against a real sshd: agent keys, IdentitiesOnly, sudo with a
//! password in a private /etc (the machine's own users and sudoers are never touched).

use std::path::Path;

use bootstrapctl::transport::ssh::{SshTarget, SshTransport};
use bootstrapctl::transport::{Become, BecomePassword, Transport, TransportError};

use crate::support::sshd::{next_id, sh, Agent, Sshd, SshdOpts, LONG};

#[test]
fn agent_key_is_used_when_no_identity_file_is_configured() {
    let sshd = Sshd::start();
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let mut target = sshd.target();
    target.identity_files = vec![];
    target.agent_socket = Some(agent.sock.clone());
    let mut t = SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(t.exec("echo a", b"", None, LONG).unwrap().stdout, b"a\n");
}

#[test]
fn identities_only_offers_only_the_identity_file_even_with_the_agent() {
    let sshd = Sshd::start();
    let d = sshd.dir.display();
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {d}/stranger"));
    // The agent holds the authorized key; the configured identity is another one.
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let mut target = sshd.target();
    target.agent_socket = Some(agent.sock.clone());
    target.identity_files = vec![sshd.dir.join("stranger")];
    target.identities_only = true;
    let err = SshTransport::connect(&target).unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("stranger"), "{err}");
    // The sshd saw exactly one key offered (the stranger), never the agent's.
    let offered = sshd.log().matches("Failed publickey").count()
        + sshd.log().matches("Accepted publickey").count();
    assert!(offered <= 1, "{}", sshd.log());

    // Without IdentitiesOnly the agent's other keys are tried after the file: success.
    target.identities_only = false;
    SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn identity_file_held_by_the_agent_is_used_through_the_agent() {
    let sshd = Sshd::start();
    // The private key is only in the agent; the identity file on disk is just the .pub.
    let agent = Agent::start(&sshd.dir, &[&sshd.client_key]);
    let only_pub = sshd.dir.join("only_pub");
    std::fs::copy(
        sshd.dir.join("client_key.pub"),
        sshd.dir.join("only_pub.pub"),
    )
    .unwrap();
    let mut target = sshd.target();
    target.agent_socket = Some(agent.sock.clone());
    target.identity_files = vec![only_pub];
    target.identities_only = true;
    let mut t = SshTransport::connect(&target).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.exec("echo via-agent", b"", None, LONG).unwrap().stdout,
        b"via-agent\n"
    );
}

// ---------------------------------------------------------------------------------------
// become with a password: a user and a sudoers rule that exist only in a private /etc.

/// An sshd in its own mount namespace whose /etc/passwd, /etc/shadow, /etc/group and
/// /etc/sudoers.d are bind-mounted temp files: users `bsctlpw` (sudo with password
/// `s3cret-pw!`) and `bsctlnp` (NOPASSWD) exist only there.
fn sudo_sshd(login: &str) -> Option<Sshd> {
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/sudo").exists() {
        eprintln!("skipping: needs root and sudo (scripts/setup installs it)");
        return None;
    }
    let n = next_id();
    let etc = std::env::temp_dir().join(format!("bsctl-etc-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&etc);
    std::fs::create_dir_all(etc.join("sudoers.d")).unwrap();
    let hash = sh("perl -e 'print crypt(q{s3cret-pw!}, q{$6$bsctlsalt$})'");
    assert!(hash.starts_with("$6$"), "{hash}");
    let e = etc.display();
    let home = std::env::temp_dir();
    sh(&format!(
        "cp /etc/passwd {e}/passwd && cp /etc/shadow {e}/shadow && cp /etc/group {e}/group && \
         echo 'bsctlpw:x:4701:4701::{h}:/bin/sh' >> {e}/passwd && \
         echo 'bsctlnp:x:4702:4702::{h}:/bin/sh' >> {e}/passwd && \
         echo 'bsctlpw:x:4701:' >> {e}/group && echo 'bsctlnp:x:4702:' >> {e}/group && \
         chmod 0640 {e}/shadow",
        h = home.display()
    ));
    let mut shadow = std::fs::read_to_string(etc.join("shadow")).unwrap();
    shadow.push_str(&format!("bsctlpw:{hash}:19000:0:99999:7:::\n"));
    shadow.push_str(&format!("bsctlnp:{hash}:19000:0:99999:7:::\n"));
    std::fs::write(etc.join("shadow"), shadow).unwrap();
    std::fs::write(
        etc.join("sudoers.d/bsctl"),
        "Defaults:bsctlpw lecture=never\nbsctlpw ALL=(ALL:ALL) ALL\nbsctlnp ALL=(ALL:ALL) NOPASSWD: ALL\n",
    )
    .unwrap();
    sh(&format!("chmod 0440 {e}/sudoers.d/bsctl"));
    let script = format!(
        "mount --bind {e}/passwd /etc/passwd && mount --bind {e}/shadow /etc/shadow && \
         mount --bind {e}/group /etc/group && mount --bind {e}/sudoers.d /etc/sudoers.d && \
         exec \"$@\""
    );
    let sshd = Sshd::start_opts(SshdOpts {
        wrapper: vec![
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
            "sh".into(),
        ],
        user: Some(login.into()),
        ..Default::default()
    });
    // The users' keys: the fixture's client key. /etc stays untouched outside.
    assert!(!std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("bsctlpw"));
    Some(sshd)
}

const SUDO_PW: &str = "s3cret-pw!";

#[test]
fn become_with_password_feeds_sudo_and_keeps_stdin() {
    let Some(sshd) = sudo_sshd("bsctlpw") else {
        return;
    };
    let root = Become { user: None };
    // Without a password: sudo -n refuses.
    let mut t = sshd.connect();
    assert_eq!(
        t.exec("id -un", b"", None, LONG).unwrap().stdout,
        b"bsctlpw\n"
    );
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert!(!out.success(), "{}", out.stdout_lossy());
    assert!(
        out.stderr_lossy().contains("password"),
        "{}",
        out.stderr_lossy()
    );

    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new(SUDO_PW));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert_eq!(out.stdout, b"0\n", "{}", out.stderr_lossy());
    // The command's own stdin arrives intact, without the password line.
    let out = t
        .exec("cat; id -un", b"line one\nline two\n", Some(&root), LONG)
        .unwrap();
    assert_eq!(
        out.stdout,
        b"line one\nline two\nroot\n",
        "{}",
        out.stderr_lossy()
    );
    // Not on any command line while it runs, not in any output.
    let out = t
        .exec(
            "ps -eo args; cat /proc/self/cmdline",
            b"",
            Some(&root),
            LONG,
        )
        .unwrap();
    assert!(!out.stdout_lossy().contains(SUDO_PW));
    assert!(!out.stderr_lossy().contains(SUDO_PW));
    // become_user other than root.
    let out = t
        .exec(
            "id -un",
            b"",
            Some(&Become {
                user: Some("bsctlnp".into()),
            }),
            LONG,
        )
        .unwrap();
    assert_eq!(out.stdout, b"bsctlnp\n", "{}", out.stderr_lossy());
    // No become: the password is not fed to anything.
    assert_eq!(t.exec("cat", b"in\n", None, LONG).unwrap().stdout, b"in\n");

    // A wrong password fails the command, and shows no password.
    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new("wrong-password"));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t.exec("id -u", b"", Some(&root), LONG).unwrap();
    assert!(!out.success());
    assert!(!out.stdout_lossy().contains("wrong-password"));
    assert!(!out.stderr_lossy().contains("wrong-password"));
}

#[test]
fn become_password_with_nopasswd_rule_does_not_leak_into_stdin() {
    let Some(sshd) = sudo_sshd("bsctlnp") else {
        return;
    };
    let mut target = sshd.target();
    target.become_password = Some(BecomePassword::new(SUDO_PW));
    let mut t = SshTransport::connect(&target).unwrap();
    let out = t
        .exec(
            "cat; id -u",
            b"payload\n",
            Some(&Become { user: None }),
            LONG,
        )
        .unwrap();
    assert_eq!(out.stdout, b"payload\n0\n", "{}", out.stderr_lossy());
}

#[test]
fn become_password_debug_is_redacted() {
    let p = BecomePassword::new("hunter2-secret");
    assert!(!format!("{p:?}").contains("hunter2"));
    let target = SshTarget {
        become_password: Some(p),
        ..Default::default()
    };
    assert!(!format!("{target:?}").contains("hunter2"));
}
