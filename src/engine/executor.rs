//! Turns a task's Ops into one POSIX sh script and runs it in one round trip. File writes are
//! atomic: temp file in the same directory, fsync, mode and owner, then rename.

use std::time::Duration;

use base64::Engine as _;

use crate::plan::Op;
use crate::transport::{sh_quote, Become, ExecOutput, Transport, TransportError};

/// The script for every op except `Exec` (commands run on their own so their output is theirs).
///
/// Few processes per file, since a fleet pays for each one on every host: the content is
/// written by the shell's `printf` builtin (base64 only for bytes the shell cannot hold), into
/// a temp file created exclusively (`set -C`) under umask 077 in the target's directory, then
/// `chmod`, `chown` (only when an owner is given and it is not root running as root),
/// `sync` and `mv`; directories are synced once per script.
pub fn ops_script(ops: &[Op]) -> String {
    format!("{SCRIPT_PRELUDE}{}{}", ops_body(ops), dirs_sync(ops))
}

/// Starts every apply script: stop at the first error; temp files private until renamed.
pub const SCRIPT_PRELUDE: &str = "set -e\numask 077\nset -C\n\
    while read -r k v _; do [ \"$k\" = Uid: ] && { bsctl_uid=$v; break; }; done < /proc/self/status\n";

/// The ops without the prelude, so several tasks' ops can share one script.
pub fn ops_body(ops: &[Op]) -> String {
    let mut s = String::new();
    for op in ops {
        match op {
            Op::WriteFile {
                path,
                content,
                mode,
                owner,
                group,
            } => {
                let dir = parent(path);
                let t = sh_quote(&format!("{dir}/.bootstrapctl.{}", random_suffix()));
                // Created with its final permissions (or 0600 until chmod), never wider.
                let umask = if mode & 0o7111 == 0 {
                    !mode & 0o777
                } else {
                    0o077
                };
                s.push_str(&format!(
                    "t={t}\ntrap 'rm -f -- \"$t\"' EXIT\numask {umask:03o}\n"
                ));
                // dash's printf reports ENOSPC as a bare "I/O error": say what was written.
                let failed = format!(
                    " || {{ echo {} >&2; exit 1; }}\n",
                    sh_quote(&format!("bootstrapctl: writing {path} failed (disk full or I/O error); the old file is kept"))
                );
                match std::str::from_utf8(content) {
                    Ok(text) if !text.contains('\0') => {
                        s.push_str(&format!("printf '%s' {} > \"$t\"", sh_quote_always(text)));
                        s.push_str(&failed);
                    }
                    _ => {
                        s.push_str("base64 -d > \"$t\" <<'__BOOTSTRAPCTL_EOF__'");
                        s.push_str(&failed);
                        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
                        for chunk in b64.as_bytes().chunks(76) {
                            s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                            s.push('\n');
                        }
                        s.push_str("__BOOTSTRAPCTL_EOF__\n");
                    }
                }
                // A plain mode comes from the umask the file is created under (no chmod
                // process); modes with execute or special bits need chmod.
                let plain = mode & 0o7111 == 0;
                if !plain {
                    s.push_str(&format!("chmod {mode:04o} \"$t\"\n"));
                }
                if let Some(chown) = chown_spec(owner, group) {
                    let cmd = format!("chown {} \"$t\"", sh_quote(&chown));
                    if is_root_spec(owner, group) {
                        s.push_str(&format!("[ \"$bsctl_uid\" = 0 ] || {cmd}\n"));
                    } else {
                        s.push_str(&format!("{cmd}\n"));
                    }
                }
                s.push_str(&format!(
                    "sync -- \"$t\"\nmv -f -- \"$t\" {}\ntrap - EXIT\n",
                    sh_quote(path)
                ));
            }
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
                s.push_str(&format!(
                    "mkdir -p -- {p}\nchmod {mode:04o} -- {p}\n",
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
            Op::Exec { .. } => {}
        }
    }
    s
}

/// Make the renames of `ops` durable: one `sync` of every directory written into.
pub fn dirs_sync(ops: &[Op]) -> String {
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

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
        None => ".".to_string(),
    }
}

/// Single-quoted for sh whatever the text (empty included).
fn sh_quote_always(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Unpredictable enough that two runs never pick the same temp name; `set -C` refuses a
/// name that exists anyway.
fn random_suffix() -> String {
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

fn is_root_spec(owner: &Option<String>, group: &Option<String>) -> bool {
    owner.as_deref().is_none_or(|o| o == "root" || o == "0")
        && group.as_deref().is_none_or(|g| g == "root" || g == "0")
}

fn chown_spec(owner: &Option<String>, group: &Option<String>) -> Option<String> {
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
pub fn apply(
    t: &mut dyn Transport,
    ops: &[Op],
    become_: Option<&Become>,
    timeout: Duration,
) -> Result<ExecOutput, TransportError> {
    let mut last = ExecOutput::default();
    if ops.iter().any(|o| !matches!(o, Op::Exec { .. })) {
        last = run_script(t, &ops_script(ops), become_, timeout)?;
        if !last.success() {
            return Ok(last);
        }
    }
    for op in ops {
        if let Op::Exec { command, chdir } = op {
            last = run_script(t, &exec_script(command, chdir), become_, timeout)?;
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
}
