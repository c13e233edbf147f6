//! Turns a task's Ops into one POSIX sh script and runs it in one round trip. File writes are
//! atomic: temp file in the same directory, fsync, mode and owner, then rename. Temp files
//! are named `.bootstrapctl.<run tag>.<random>`, so that a later run can tell the ones an
//! interrupted run left behind from its own and remove them (`stale_temps_script`).

use std::time::Duration;

use crate::plan::Op;
use crate::shell::{quote as sh_quote, quote_always as sh_quote_always};
use crate::transport::{Become, ExecOutput, Transport, TransportError};

/// The script for every op except `Exec` (commands run on their own so their output is theirs);
/// cluster ops are the kubectl invocations `Op::kubectl_command` gives.
///
/// Few processes per file, since a fleet pays for each one on every host: the content is
/// written by the shell's `printf` builtin (base64 only for bytes the shell cannot hold), into
/// a temp file created exclusively (`set -C`) under the umask of its final mode in the target's
/// directory, then `chmod` (only for modes a umask cannot give), `chown` (only when an owner is
/// given and it is not root running as root), one `sync` for the temp files of a run of
/// tasks (`stage.rs`), and `mv`; directories are synced once per script.
pub fn ops_script(ops: &[Op]) -> String {
    let body = batch_body(&[TaskOps { marker: None, ops }]);
    format!("{SCRIPT_PRELUDE}{body}{}", dirs_sync(ops))
}

/// The umask everything but a write's temp file is created under (directories of `mkdir -p`,
/// `systemctl enable`'s `*.wants`), as a login shell and so Ansible's modules have it.
pub(super) const OPS_UMASK: &str = "umask 022\n";

/// Starts every apply script: stop at the first error; the umask of OPS_UMASK (each write sets
/// its own around its temp file and restores this one).
pub const SCRIPT_PRELUDE: &str = "set -e\numask 022\nset -C\n\
    while read -r k v _; do [ \"$k\" = Uid: ] && { bsctl_uid=$v; break; }; done < /proc/self/status\n";

pub use super::stage::{batch_body, TaskOps};

/// CSRs per `kubectl certificate approve`: kubectl makes two requests per CSR (read, approve)
/// and its client allows a burst of 10 requests, then 5 per second, so one call for a hundred
/// CSRs waited about 40 s on itself. Calls of this many run at once instead.
const APPROVALS_PER_CALL: usize = 5;

/// `kubectl certificate approve` for `names` (already quoted): one call for a few, else calls
/// of [`APPROVALS_PER_CALL`] in the background, all waited for; a failed one fails the script
/// (under its `set -e`).
fn approve_calls(cluster: &crate::hoststate::Cluster, names: &[String]) -> String {
    let call = |chunk: &[String]| cluster.raw(&format!("certificate approve {}", chunk.join(" ")));
    if names.len() <= APPROVALS_PER_CALL {
        return format!("{}\n", call(names));
    }
    let mut s = String::new();
    let chunks: Vec<&[String]> = names.chunks(APPROVALS_PER_CALL).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        s.push_str(&format!("{} & bsctl_approve_{i}=$!\n", call(chunk)));
    }
    // Every call is waited for, so that none outlives the script; then any failure fails it.
    s.push_str("bsctl_approve_rc=0\n");
    for i in 0..chunks.len() {
        s.push_str(&format!(
            "wait \"$bsctl_approve_{i}\" || bsctl_approve_rc=1\n"
        ));
    }
    s.push_str("[ \"$bsctl_approve_rc\" -eq 0 ]\n");
    s
}

/// The ops of one task without the prelude; writes are staged one by one.
pub(super) fn ops_body(ops: &[Op]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < ops.len() {
        let op = &ops[i];
        i += 1;
        if let Op::ApproveCsr { object, .. } = op {
            // A batch of approvals on one cluster is one kubectl call, not one per CSR.
            let mut names = vec![sh_quote(&object.name)];
            while let Some(Op::ApproveCsr { object: next, .. }) = ops.get(i) {
                if next.cluster != object.cluster {
                    break;
                }
                names.push(sh_quote(&next.name));
                i += 1;
            }
            s.push_str(&approve_calls(&object.cluster, &names));
            continue;
        }
        match op {
            Op::WriteFile { .. } => s.push_str(&super::stage::staged_group(&[TaskOps {
                marker: None,
                ops: std::slice::from_ref(op),
            }])),
            Op::SetAttrs {
                path,
                mode,
                owner,
                group,
            } => {
                if let Some(m) = mode {
                    s.push_str(&format!("chmod {m:04o} -- {}\n", sh_quote(path)));
                }
                if let Some(chown) = chown_spec(owner, group) {
                    s.push_str(&format!(
                        "chown {} -- {}\n",
                        sh_quote(&chown),
                        sh_quote(path)
                    ));
                }
            }
            Op::Mkdir {
                path,
                mode,
                owner,
                group,
            } => {
                // Planned for a directory that was absent: when its parent exists, one
                // `mkdir -m` makes it with its mode (as chmod would set it); else, or when it
                // exists meanwhile, `mkdir -p` and `chmod`.
                s.push_str(&format!(
                    "mkdir -m {mode:04o} -- {p} 2>/dev/null || {{ mkdir -p -- {p} && chmod {mode:04o} -- {p}; }}\n",
                    p = sh_quote(path)
                ));
                if let Some(chown) = chown_spec(owner, group) {
                    s.push_str(&format!(
                        "chown {} -- {}\n",
                        sh_quote(&chown),
                        sh_quote(path)
                    ));
                }
            }
            Op::Remove { path } => s.push_str(&format!("rm -rf -- {}\n", sh_quote(path))),
            Op::Systemctl { args } => {
                let args: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
                s.push_str(&format!("systemctl {}\n", args.join(" ")));
            }
            Op::SwapOff => s.push_str("swapoff -a\n"),
            Op::Sysctl { name, value } => s.push_str(&format!(
                "sysctl -q -w {}\n",
                sh_quote(&format!("{name}={value}"))
            )),
            Op::Modprobe {
                name,
                params,
                remove,
            } => {
                let mut words = vec!["modprobe".to_string()];
                if *remove {
                    words.push("-r".into());
                }
                words.push("--".into());
                words.push(sh_quote(name));
                words.extend(params.iter().map(|p| sh_quote(p)));
                s.push_str(&words.join(" "));
                s.push('\n');
            }
            Op::KubeApply { .. }
            | Op::KubeDelete { .. }
            | Op::CreateToken { .. }
            | Op::ApproveCsr { .. } => {
                if let Some(cmd) = op.kubectl_command() {
                    s.push_str(&cmd);
                    s.push('\n');
                }
            }
            Op::Exec { .. } | Op::Artifact(_) => {}
        }
    }
    s
}

/// Make the renames of `ops` durable: one `sync` of every directory written into.
pub fn dirs_sync<'a>(ops: impl IntoIterator<Item = &'a Op>) -> String {
    let mut dirs: Vec<String> = Vec::new();
    for op in ops {
        if let Op::WriteFile { path, .. } = op {
            let d = sh_quote(&parent(path));
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    if dirs.is_empty() {
        String::new()
    } else {
        format!("sync -- {} 2>/dev/null || true\n", dirs.join(" "))
    }
}

/// What every temp file of a write starts with.
pub const TEMP_PREFIX: &str = ".bootstrapctl.";

/// This process's part of its temp file names: one run per process, so other runs' temp
/// files (and those of older versions, `.bootstrapctl.<random>`) are the ones without it.
pub fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("r{}", &random_suffix()[..10]))
}

/// Remove what interrupted runs left in `dirs`: regular files named like this executor's temp
/// files but not of this run; prints `@@ stale PATH` for each one removed. Only for a script
/// that holds the host's lock (no other run is writing there), and only in directories the
/// run writes into. A run that died between writing a temp file and renaming it (kill -9,
/// a lost connection) leaves the old target intact and this file, which may hold a secret.
pub fn stale_temps_script<S: AsRef<str>>(dirs: &[S]) -> String {
    if dirs.is_empty() {
        return String::new();
    }
    let globs: Vec<String> = dirs
        .iter()
        .map(|d| {
            let d = d.as_ref().trim_end_matches('/');
            format!("{}/{TEMP_PREFIX}*", sh_quote_always(d))
        })
        .collect();
    format!(
        "for bsctl_f in {}; do
  case $bsctl_f in */{TEMP_PREFIX}{}.*) continue ;; esac
  [ -f \"$bsctl_f\" ] && [ ! -L \"$bsctl_f\" ] || continue
  rm -f -- \"$bsctl_f\" && printf '@@ stale %s\\n' \"$bsctl_f\"
done
",
        globs.join(" "),
        run_tag()
    )
}

/// What a result says of the stale temp files a script removed (see [`stale_removed`]).
pub fn stale_message(removed: &[String]) -> String {
    format!(
        "removed {} temp file(s) an interrupted run left: {}",
        removed.len(),
        removed.join(", ")
    )
}

/// The paths a script from [`stale_temps_script`] reported removed.
pub fn stale_removed(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("@@ stale "))
        .map(str::to_string)
        .collect()
}

pub fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
        None => ".".to_string(),
    }
}

/// Unpredictable enough that two runs never pick the same temp name; `set -C` refuses a
/// name that exists anyway.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish())
}

pub(super) fn is_root_spec(owner: &Option<String>, group: &Option<String>) -> bool {
    owner.as_deref().is_none_or(|o| o == "root" || o == "0")
        && group.as_deref().is_none_or(|g| g == "root" || g == "0")
}

pub(super) fn chown_spec(owner: &Option<String>, group: &Option<String>) -> Option<String> {
    match (owner, group) {
        (None, None) => None,
        (Some(o), None) => Some(o.clone()),
        (None, Some(g)) => Some(format!(":{g}")),
        (Some(o), Some(g)) => Some(format!("{o}:{g}")),
    }
}

/// Run a generated script: sent on stdin to `sh -s` (a command line is limited to what one
/// SSH channel request holds, about 32 KiB in libssh2), inside a brace group so the shell
/// reads all of it before running any of it, with the commands' stdin at /dev/null.
pub fn run_script(
    t: &mut dyn Transport,
    script: &str,
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<ExecOutput, TransportError> {
    let wrapped = format!("{{\n{script}\n}} </dev/null\n");
    t.exec("sh -s", wrapped.as_bytes(), become_, timeout)
}

pub fn exec_script(command: &str, chdir: &Option<String>) -> String {
    match chdir {
        Some(dir) => format!("cd {} && {command}", sh_quote(dir)),
        None => command.to_string(),
    }
}

/// Run `ops`: the non-command ops in one script, then each command. Returns the output of the
/// last command (or of the script when there was none).
#[cfg(test)]
pub fn apply(
    t: &mut dyn Transport,
    ops: &[Op],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<ExecOutput, TransportError> {
    let slots = crate::artifact::upload::UploadSlots::new(1);
    apply_reporting(
        t,
        ops,
        become_,
        timeout,
        &slots,
        &mut |_, _, _| {},
        &mut |_, _| {},
    )
}

/// `apply`, with artifact installs after the script (uploads bounded by `slots`) and each
/// upload's progress given to `progress(name, sent, total)`. Each script is given to
/// `trace(what, script)` (`apply`, `install` or `command`) right before it is sent. An
/// artifact's output (its `@@ bytes N` line) is the one returned when it is the last op run.
pub fn apply_reporting(
    t: &mut dyn Transport,
    ops: &[Op],
    become_: Option<&Become>,
    timeout: Duration,
    slots: &crate::artifact::upload::UploadSlots,
    progress: &mut dyn FnMut(&str, u64, u64),
    trace: &mut dyn FnMut(&str, &str),
) -> Result<ExecOutput, TransportError> {
    let rest: Vec<Op>;
    let ops = match super::direct_api::approve(t, ops, become_, timeout, trace) {
        super::direct_api::Outcome::NotHere | super::direct_api::Outcome::Declined => ops,
        super::direct_api::Outcome::Done => {
            rest = ops
                .iter()
                .filter(|o| !matches!(o, Op::ApproveCsr { .. }))
                .cloned()
                .collect();
            &rest[..]
        }
        // The API's refusal, as it said it: no process ran to give an exit status.
        super::direct_api::Outcome::Failed(why) => return Err(TransportError::Other(why)),
    };
    let mut last = ExecOutput::default();
    if ops
        .iter()
        .any(|o| !matches!(o, Op::Exec { .. } | Op::Artifact(_)))
    {
        let script = ops_script(ops);
        trace("apply", &script);
        last = run_script(t, &script, become_, timeout)?;
        if !last.success() {
            return Ok(last);
        }
    }
    for op in ops {
        if let Op::Artifact(a) = op {
            trace("install", &crate::artifact::script::install_script(a));
            last = crate::artifact::upload::install(t, a, become_, timeout, slots, &mut |s, n| {
                progress(&a.name, s, n)
            })?;
            if !last.success() {
                return Ok(last);
            }
        }
    }
    for op in ops {
        if let Op::Exec { command, chdir } = op {
            let script = exec_script(command, chdir);
            trace("command", &script);
            last = run_script(t, &script, become_, timeout)?;
            if !last.success() {
                return Ok(last);
            }
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalTransport;

    #[test]
    fn script_writes_atomically_with_mode_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("bsctl-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("it's here.conf");
        let ops = vec![
            Op::WriteFile {
                path: path.display().to_string(),
                content: b"line 1\n__BOOTSTRAPCTL_EOF__\n\x00bin".to_vec(),
                mode: 0o600,
                owner: None,
                group: None,
            },
            Op::Mkdir {
                path: dir.join("sub/dir").display().to_string(),
                mode: 0o750,
                owner: None,
                group: None,
            },
        ];
        let out = apply(
            &mut LocalTransport::new(),
            &ops,
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"line 1\n__BOOTSTRAPCTL_EOF__\n\x00bin"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.join("sub/dir"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".bootstrapctl"))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_approvals_run_as_concurrent_calls_and_any_failure_fails_the_script() {
        let dir = std::env::temp_dir().join(format!("bsctl-approve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A kubectl that records what it approved and fails for csr-7.
        let fake = dir.join("kubectl");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nshift 2; shift 2; for n in \"$@\"; do echo \"$n\" >> {}/approved; [ \"$n\" != csr-7 ] || exit 3; done\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cluster = crate::hoststate::Cluster {
            kubectl: fake.display().to_string(),
            kubeconfig: "/k".into(),
        };
        let run = |names: &[String]| {
            let _ = std::fs::remove_file(dir.join("approved"));
            let script = format!("set -e\n{}", approve_calls(&cluster, names));
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .status()
                .unwrap()
                .success();
            let mut got: Vec<String> = std::fs::read_to_string(dir.join("approved"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            got.sort();
            (script, ok, got)
        };
        let names =
            |r: std::ops::Range<u32>| -> Vec<String> { r.map(|i| format!("csr-{i:02}")).collect() };
        let (script, ok, got) = run(&names(0..3));
        assert!(ok && !script.contains('&'), "{script}");
        assert_eq!(got, names(0..3));
        let (script, ok, got) = run(&names(0..12));
        assert_eq!(script.matches(" & ").count(), 3, "{script}");
        assert!(ok);
        assert_eq!(got, names(0..12));
        let mut failing = names(0..12);
        failing[9] = "csr-7".into();
        let (_, ok, _) = run(&failing);
        assert!(!ok, "a failed approval must fail the script");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temp_file() {
        let dir = std::env::temp_dir().join(format!("bsctl-exec-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, "old").unwrap();
        let ops = vec![Op::WriteFile {
            path: path.display().to_string(),
            content: b"new".to_vec(),
            mode: 0o644,
            owner: Some("no-such-user-bsctl".into()),
            group: None,
        }];
        let out = apply(
            &mut LocalTransport::new(),
            &ops,
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!out.success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temp_files_of_other_runs_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("bsctl-exec-stale-{}", std::process::id()));
        let other = dir.join("unmanaged dir");
        std::fs::create_dir_all(&other).unwrap();
        let ours = format!("{TEMP_PREFIX}{}.0123", run_tag());
        for f in [
            ".bootstrapctl.0123456789abcdef", // an older version's name
            ".bootstrapctl.r0000000000.feed", // another run's
            &ours,                            // this run's, being written
            ".bootstrapctl-read.42.o",        // not a write's temp file
            "bootstrapctl.keep",
            "kubelet.service",
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        std::fs::create_dir(dir.join(".bootstrapctl.adir")).unwrap();
        std::fs::write(other.join(".bootstrapctl.0123"), "x").unwrap();
        let script = stale_temps_script(&[format!("{}/", dir.display())]);
        let out = run_script(
            &mut LocalTransport::new(),
            &script,
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.success(), "{}", out.stderr_lossy());
        let mut removed = stale_removed(&out.stdout);
        removed.sort();
        let d = dir.display();
        assert_eq!(
            removed,
            [
                format!("{d}/.bootstrapctl.0123456789abcdef"),
                format!("{d}/.bootstrapctl.r0000000000.feed"),
            ]
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            ".bootstrapctl-read.42.o".to_string(),
            ".bootstrapctl.adir".into(),
            ours,
            "bootstrapctl.keep".into(),
            "kubelet.service".into(),
            "unmanaged dir".into(),
        ];
        want.sort();
        assert_eq!(left, want);
        assert!(other.join(".bootstrapctl.0123").exists());
        // Nothing to look at, nothing printed, no error.
        assert_eq!(stale_temps_script::<String>(&[]), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::transport::local::LocalTransport;

    fn write(path: &std::path::Path, content: &str, owner: Option<&str>) -> Op {
        Op::WriteFile {
            path: path.display().to_string(),
            content: content.as_bytes().to_vec(),
            mode: 0o644,
            owner: owner.map(str::to_string),
            group: None,
        }
    }

    fn run(script: &str) -> ExecOutput {
        run_script(
            &mut LocalTransport::new(),
            script,
            None,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    /// Tasks with markers 0, 1, 2, ... in order.
    fn numbered<'a>(ops: &[&'a [Op]]) -> Vec<TaskOps<'a>> {
        ops.iter()
            .enumerate()
            .map(|(i, ops)| TaskOps {
                marker: Some(i),
                ops,
            })
            .collect()
    }

    fn markers(out: &ExecOutput) -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("@@ done "))
            .map(str::to_string)
            .collect()
    }

    fn temp_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".bootstrapctl"))
            .count()
    }

    #[test]
    fn write_only_tasks_share_one_sync_and_report_in_order() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        let (t0, t1) = (
            vec![write(&a, "A", None)],
            vec![write(&b, "B", None), write(&c, "C", None)],
        );
        let tasks = [
            TaskOps {
                marker: Some(0),
                ops: &t0,
            },
            TaskOps {
                marker: Some(2),
                ops: &t1,
            },
        ];
        let body = batch_body(&tasks);
        // One sync for the three temp files; the failure handlers' partial syncs never run.
        assert_eq!(
            body.matches("\nsync -- \"$t1\" \"$t2\" \"$t3\"\n").count(),
            1,
            "{body}"
        );
        let out = run(&format!("{SCRIPT_PRELUDE}{body}"));
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(markers(&out), ["0", "2"]);
        for (p, want) in [(&a, "A"), (&b, "B"), (&c, "C")] {
            assert_eq!(std::fs::read_to_string(p).unwrap(), want);
        }
        assert_eq!(temp_files(&dir), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failure_while_staging_commits_the_tasks_before_it_and_nothing_after() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b1, b2, c) = (dir.join("a"), dir.join("b1"), dir.join("b2"), dir.join("c"));
        for p in [&a, &b1, &b2, &c] {
            std::fs::write(p, "old").unwrap();
        }
        // The second task's second file cannot be given its owner: that task fails whole.
        let t0 = vec![write(&a, "new", None)];
        let t1 = vec![
            write(&b1, "new", None),
            write(&b2, "new", Some("no-such-user-bsctl")),
        ];
        let t2 = vec![write(&c, "new", None)];
        let tasks = numbered(&[&t0, &t1, &t2]);
        let out = run(&format!("{SCRIPT_PRELUDE}{}", batch_body(&tasks)));
        assert!(!out.success());
        assert_eq!(markers(&out), ["0"]);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        for p in [&b1, &b2, &c] {
            assert_eq!(
                std::fs::read_to_string(p).unwrap(),
                "old",
                "{}",
                p.display()
            );
        }
        assert_eq!(temp_files(&dir), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_runs_of_writes_are_split_into_bounded_groups() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ops: Vec<Vec<Op>> = (0..70)
            .map(|i| vec![write(&dir.join(format!("f{i}")), &format!("{i}"), None)])
            .collect();
        let refs: Vec<&[Op]> = ops.iter().map(Vec::as_slice).collect();
        let tasks = numbered(&refs);
        let body = batch_body(&tasks);
        // 70 writes in groups of 32, 32 and 6: each group syncs all its temps once (the
        // failure handlers of the full groups sync at most 31).
        let all = |n: usize| {
            let temps: Vec<String> = (1..=n).map(|i| format!("\"$t{i}\"")).collect();
            format!("\nsync -- {}\n", temps.join(" "))
        };
        assert_eq!(body.matches(&all(32)).count(), 2, "{body}");
        assert!(body.contains(&all(6)));
        assert!(!body.contains("$t33"));
        let out = run(&format!("{SCRIPT_PRELUDE}{body}"));
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(markers(&out).len(), 70);
        assert_eq!(std::fs::read_to_string(dir.join("f69")).unwrap(), "69");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_op_between_staged_writes_leaves_the_tasks_before_it_applied_and_no_temp() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-op-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, c) = (dir.join("a"), dir.join("c"));
        std::fs::write(&c, "old").unwrap();
        // The second task's chmod fails (no such path): the third task's write, staged before
        // it, must not take effect.
        let t0 = vec![write(&a, "new", None)];
        let t1 = vec![Op::SetAttrs {
            path: dir.join("missing").display().to_string(),
            mode: Some(0o644),
            owner: None,
            group: None,
        }];
        let t2 = vec![write(&c, "new", None)];
        let tasks = numbered(&[&t0, &t1, &t2]);
        let body = batch_body(&tasks);
        // One group: one sync of both temp files on the way that succeeds.
        assert_eq!(
            body.matches("\nsync -- \"$t1\" \"$t2\"\n").count(),
            1,
            "{body}"
        );
        let out = run(&format!("{SCRIPT_PRELUDE}{body}"));
        assert!(!out.success());
        assert_eq!(markers(&out), ["0"]);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "old");
        assert_eq!(temp_files(&dir), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_into_a_directory_made_earlier_in_the_batch_is_staged_after_it() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-mkdir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sub = dir.join("new");
        let t0 = vec![Op::Mkdir {
            path: sub.display().to_string(),
            mode: 0o755,
            owner: None,
            group: None,
        }];
        let t1 = vec![write(&sub.join("f"), "x", None)];
        let t2 = vec![write(&dir.join("g"), "y", None)];
        let tasks = numbered(&[&t0, &t1, &t2]);
        let out = run(&format!("{SCRIPT_PRELUDE}{}", batch_body(&tasks)));
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(markers(&out), ["0", "1", "2"]);
        assert_eq!(std::fs::read_to_string(sub.join("f")).unwrap(), "x");
        assert_eq!(std::fs::read_to_string(dir.join("g")).unwrap(), "y");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_gets_its_mode_whether_its_parent_exists_it_is_new_or_it_is_there() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-mkmode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("there")).unwrap();
        let mkdir = |p: &str, mode| Op::Mkdir {
            path: dir.join(p).display().to_string(),
            mode,
            owner: None,
            group: None,
        };
        // Parent there (one mkdir), parent missing (mkdir -p), and the directory already
        // there (made meanwhile): each ends with exactly its mode, special bits too.
        let ops = vec![
            mkdir("one", 0o700),
            mkdir("sticky", 0o1777),
            mkdir("deep/er", 0o2750),
            mkdir("there", 0o711),
        ];
        let out = run(&format!("{SCRIPT_PRELUDE}{}", ops_body(&ops)));
        assert!(out.success(), "{}", out.stderr_lossy());
        assert!(out.stderr.is_empty(), "{}", out.stderr_lossy());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            [
                mode("one"),
                mode("sticky"),
                mode("deep"),
                mode("deep/er"),
                mode("there")
            ],
            [0o700, 0o1777, 0o755, 0o2750, 0o711]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writes_umask_does_not_reach_the_ops_after_it() {
        let dir = std::env::temp_dir().join(format!("bsctl-batch-umask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ops = vec![
            write(&dir.join("f"), "x", None),
            Op::Mkdir {
                path: dir.join("new/sub").display().to_string(),
                mode: 0o755,
                owner: None,
                group: None,
            },
        ];
        let body = batch_body(&[TaskOps {
            marker: Some(0),
            ops: &ops,
        }]);
        // The 0644 write's umask is set before its temp file and put back before the mkdir runs.
        let write_at = body.find("umask 133\n").expect("write umask");
        let restore_at = body[write_at..].find("umask 022\n").expect("restored") + write_at;
        // The mkdir runs in the commit, after the writes are staged.
        assert!(restore_at < body.rfind("bsctl_upto 1").unwrap(), "{body}");
        let out = run(&format!("{SCRIPT_PRELUDE}{body}"));
        assert!(out.success(), "{}", out.stderr_lossy());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("f"), 0o644);
        // `mkdir -p` made the parent under the ops' umask, not the write's 133 (0644).
        assert_eq!(mode("new"), 0o755);
        assert_eq!(mode("new/sub"), 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
