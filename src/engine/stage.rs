//! The write part of a batch script: a run of consecutive tasks is one staged group, whose
//! file writes are all put in temp files first (shell builtins only), made durable by one
//! `sync`, and then each task's ops run in task order, a write's `mv` in its place, with the
//! task's marker after them. The outcome is that of running the tasks one by one: a failure
//! leaves the tasks before it applied and none after it, and a failed task's files as they
//! were. A file that a later task of the group rewrites before anything may read it is
//! renamed once, with its last content (see `staged_group`).

use base64::Engine as _;

use super::executor::{
    chown_spec, is_root_spec, ops_body, parent, random_suffix, run_tag, OPS_UMASK, TEMP_PREFIX,
};
use crate::plan::Op;
use crate::shell::{quote as sh_quote, quote_always as sh_quote_always};

/// One task's ops in a batch script; `marker` N is echoed as `@@ done N` once they are applied,
/// so that the caller can tell, after a failure, which tasks took effect.
pub struct TaskOps<'a> {
    pub marker: Option<usize>,
    pub ops: &'a [Op],
}

/// Most writes staged behind one `sync` (the temp files of a group exist together).
const MAX_STAGED_WRITES: usize = 32;

/// The body (no prelude) for several tasks' ops, in order, each followed by its marker.
/// Consecutive tasks whose ops can be staged (file writes, attributes, directories, units,
/// swap, kernel modules and parameters) make one group: every temp file is written, then one
/// `sync` makes all of them durable, then the tasks run in order. If staging fails, the tasks
/// before the failed write run first, so the outcome is that of running the tasks one by one.
pub fn batch_body(tasks: &[TaskOps]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < tasks.len() {
        let j = group_end(tasks, i);
        if j > i {
            s.push_str(&staged_group(&tasks[i..j]));
            i = j;
            continue;
        }
        s.push_str(&ops_body(tasks[i].ops));
        s.push_str(&marker_line(tasks[i].marker));
        i += 1;
    }
    s
}

/// Ops that may run after later tasks' temp files were written: none of them touches a temp
/// file's directory except `Mkdir`/`Remove`, which end a group before a write under them.
fn stageable(op: &Op) -> bool {
    matches!(
        op,
        Op::WriteFile { .. }
            | Op::SetAttrs { .. }
            | Op::Mkdir { .. }
            | Op::Remove { .. }
            | Op::Systemctl { .. }
            | Op::SwapOff
            | Op::Sysctl { .. }
            | Op::Modprobe { .. }
    )
}

/// The end (exclusive) of the group starting at task `i`; `i` itself when that task cannot be
/// staged (it runs on its own). A write whose directory an earlier op of the group makes or
/// removes starts a new group: its temp file cannot be written before that op.
fn group_end(tasks: &[TaskOps], i: usize) -> usize {
    let mut changed: Vec<&str> = Vec::new();
    let mut writes = 0;
    let mut j = i;
    while j < tasks.len() {
        let ops = tasks[j].ops;
        if ops.is_empty() || !ops.iter().all(stageable) {
            break;
        }
        let n = ops
            .iter()
            .filter(|o| matches!(o, Op::WriteFile { .. }))
            .count();
        if j > i && writes + n > MAX_STAGED_WRITES {
            break;
        }
        let mut mine = changed.clone();
        let mut conflict = false;
        for op in ops {
            match op {
                Op::Mkdir { path, .. } | Op::Remove { path } => mine.push(path),
                Op::WriteFile { path, .. } => {
                    conflict |= mine.iter().any(|d| under(path, d));
                }
                _ => {}
            }
        }
        if conflict {
            break;
        }
        changed = mine;
        writes += n;
        j += 1;
    }
    j
}

/// `path` is inside directory `dir`.
fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.len() > dir.len() + 1 && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

fn marker_line(marker: Option<usize>) -> String {
    marker.map_or(String::new(), |m| format!("echo '@@ done {m}'\n"))
}

/// One file write of a staged group: its task (index in the group), the shell variable that
/// holds its temp file's name, and the op's fields.
struct Staged<'a> {
    task: usize,
    var: String,
    path: &'a str,
    content: &'a [u8],
    mode: u32,
    owner: &'a Option<String>,
    group: &'a Option<String>,
    /// The later write of the group to the same path (its index) that replaces this one
    /// before anything could read the file (only `sysctl -w` and other files' writes come
    /// between): this content is put in place only if the script fails before that write.
    replaced_by: Option<usize>,
}

impl Staged<'_> {
    /// A later write replaces this one (see `replaced_by`).
    fn superseded(&self) -> bool {
        self.replaced_by.is_some()
    }

    /// `"$tN"`, as the script refers to the temp file.
    fn temp(&self) -> String {
        format!("\"${}\"", self.var)
    }

    /// The shell variable set while this superseded write is due.
    fn due(&self) -> String {
        format!("bsctl_d{}", &self.var[1..])
    }

    /// Write the temp file with the content, mode and owner, each failure running the
    /// commands `fail(message)` gives.
    fn write_temp(&self, fail: &dyn Fn(Option<String>) -> String) -> String {
        let (temp, path, mode) = (self.temp(), self.path, self.mode);
        let mut s = String::new();
        let on_fail = |what: Option<String>| format!(" || {{\n{}}}\n", fail(what));
        // Created with its final permissions (or 0600 until chmod), never wider.
        let plain = mode & 0o7111 == 0;
        let umask = if plain { !mode & 0o777 } else { 0o077 };
        s.push_str(&format!("umask {umask:03o}\n"));
        // dash's printf reports ENOSPC as a bare "I/O error": say what was written.
        let what = Some(format!(
            "bootstrapctl: writing {path} failed (disk full or I/O error); the old file is kept"
        ));
        match std::str::from_utf8(self.content) {
            Ok(text) if !text.contains('\0') => {
                s.push_str(&format!("printf '%s' {} > {temp}", sh_quote_always(text)));
                s.push_str(&on_fail(what));
            }
            _ => {
                // The here-document's body starts on the next line, so the handler goes in
                // an `else` after it.
                s.push_str(&format!("if base64 -d > {temp} <<'__BOOTSTRAPCTL_EOF__'\n"));
                let b64 = base64::engine::general_purpose::STANDARD.encode(self.content);
                for chunk in b64.as_bytes().chunks(76) {
                    s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                    s.push('\n');
                }
                s.push_str("__BOOTSTRAPCTL_EOF__\nthen :; else\n");
                s.push_str(&fail(what));
                s.push_str("fi\n");
            }
        }
        // The write's umask must not reach what follows it in the script.
        s.push_str(OPS_UMASK);
        // A plain mode comes from the umask the file is created under (no chmod process);
        // modes with execute or special bits need chmod.
        if !plain {
            s.push_str(&format!("chmod {mode:04o} {temp}"));
            s.push_str(&on_fail(None));
        }
        if let Some(chown) = chown_spec(self.owner, self.group) {
            let cmd = format!("chown {} {temp}", sh_quote(&chown));
            if is_root_spec(self.owner, self.group) {
                s.push_str(&format!("[ \"$bsctl_uid\" = 0 ] || {cmd}"));
            } else {
                s.push_str(&cmd);
            }
            s.push_str(&on_fail(None));
        }
        s
    }
}

/// Ops that read no file a write of the group may replace, so that a write before them and
/// one after them of the same path leave the same host: `sysctl -w` (the kernel's own
/// settings) and other files' writes. `systemctl`, `modprobe` (its configuration may run
/// anything), `swapoff` (it reads fstab) and changes of paths may read it.
fn reads_no_written_file(op: &Op) -> bool {
    matches!(op, Op::Sysctl { .. } | Op::WriteFile { .. })
}

/// Mark each write that a later write of the same path replaces before any op that may read
/// that file runs (several `sysctl` tasks each rewrite their one sysctl.d file).
fn mark_superseded(tasks: &[TaskOps], writes: &mut [Staged]) {
    let ops: Vec<&Op> = tasks.iter().flat_map(|t| t.ops.iter()).collect();
    let at: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Op::WriteFile { .. }))
        .map(|(i, _)| i)
        .collect();
    for w in 0..writes.len() {
        let Some(next) = (w + 1..writes.len()).find(|&n| writes[n].path == writes[w].path) else {
            continue;
        };
        if ops[at[w] + 1..at[next]]
            .iter()
            .all(|o| reads_no_written_file(o))
        {
            writes[w].replaced_by = Some(next);
        }
    }
}

/// A group of tasks (all their ops stageable): stage every temp file, one sync, then the
/// tasks in order. The tasks are the arms of one function, `bsctl_t N`, and `bsctl_upto N`
/// runs the first N, so that a failed write's handler runs the tasks before it without
/// repeating their ops in the script.
///
/// A superseded write (see [`Staged::superseded`]) is neither staged nor renamed: when its
/// task runs it is only marked due, the later write's rename makes it moot, and the exit
/// trap of a script that fails in between puts it in place (temp, sync, rename) before the
/// tasks' marker is printed. So the host goes through the same files, less the states no
/// one could have read, and a failure leaves it as the tasks one by one would have.
pub(super) fn staged_group(tasks: &[TaskOps]) -> String {
    let mut writes: Vec<Staged> = Vec::new();
    for (task, t) in tasks.iter().enumerate() {
        for op in t.ops {
            if let Op::WriteFile {
                path,
                content,
                mode,
                owner,
                group,
            } = op
            {
                writes.push(Staged {
                    task,
                    var: format!("t{}", writes.len() + 1),
                    path,
                    content,
                    mode: *mode,
                    owner,
                    group,
                    replaced_by: None,
                });
            }
        }
    }
    let mut s = String::new();
    if writes.is_empty() {
        for t in tasks {
            s.push_str(&ops_body(t.ops));
            s.push_str(&marker_line(t.marker));
        }
        return s;
    }
    mark_superseded(tasks, &mut writes);
    for w in &writes {
        let t = format!(
            "{}/{TEMP_PREFIX}{}.{}",
            parent(w.path),
            run_tag(),
            random_suffix()
        );
        s.push_str(&format!("{}={}\n", w.var, sh_quote(&t)));
    }
    let all: Vec<String> = writes.iter().map(Staged::temp).collect();
    let staged: Vec<&Staged> = writes.iter().filter(|w| !w.superseded()).collect();
    let late = writes.iter().any(Staged::superseded);
    if late {
        s.push_str(&late_writes(&writes));
        s.push_str(&format!(
            "trap 'bsctl_late || :; rm -f -- {}' EXIT\n",
            all.join(" ")
        ));
    } else {
        s.push_str(&format!("trap 'rm -f -- {}' EXIT\n", all.join(" ")));
    }
    // Whether a superseded write of a task at or before `task` is still due after it.
    let due_after = |task: usize| {
        writes
            .iter()
            .any(|w| w.task <= task && w.replaced_by.is_some_and(|n| writes[n].task > task))
    };
    s.push_str("bsctl_t() {\ncase $1 in\n");
    let mut next = writes.iter().enumerate();
    for (g, t) in tasks.iter().enumerate() {
        s.push_str(&format!("{g})\n"));
        for op in t.ops {
            if let Op::WriteFile { path, .. } = op {
                let (i, w) = next.next().expect("one staged write per WriteFile");
                if w.superseded() {
                    s.push_str(&format!("{}=1\n", w.due()));
                } else {
                    s.push_str(&format!("mv -f -- {} {}\n", w.temp(), sh_quote(path)));
                }
                // The write this one replaces is no longer due.
                if let Some(r) = writes.iter().find(|e| e.replaced_by == Some(i)) {
                    s.push_str(&format!("{}=\n", r.due()));
                }
            } else {
                s.push_str(&ops_body(std::slice::from_ref(op)));
            }
        }
        match t.marker {
            // Printed by the exit trap once the due write is in place, or by a later task.
            Some(m) if due_after(g) => s.push_str(&format!("bsctl_m={m}\n")),
            m => s.push_str(&marker_line(m)),
        }
        s.push_str(";;\n");
    }
    s.push_str("esac\n}\n");
    s.push_str(
        "bsctl_upto() {\nbsctl_n=0\nwhile [ \"$bsctl_n\" -lt \"$1\" ]; do bsctl_t \"$bsctl_n\"; \
         bsctl_n=$((bsctl_n+1)); done\n}\n",
    );
    // The tasks before `upto` run, after one sync of their temp files.
    let commit = |upto: usize| -> String {
        if upto == 0 {
            return String::new();
        }
        let temps: Vec<String> = staged
            .iter()
            .filter(|w| w.task < upto)
            .map(|w| w.temp())
            .collect();
        let mut c = String::new();
        if !temps.is_empty() {
            c.push_str(&format!("sync -- {}\n", temps.join(" ")));
        }
        c.push_str(&format!("bsctl_upto {upto}\n"));
        c
    };
    for w in &staged {
        // On failure: the tasks before this one still take effect, as if run one by one.
        let handler = |what: Option<String>| -> String {
            let say = what.map_or(String::new(), |m| format!("echo {} >&2\n", sh_quote(&m)));
            format!("{say}{}exit 1\n", commit(w.task))
        };
        s.push_str(&w.write_temp(&handler));
    }
    let temps: Vec<String> = staged.iter().map(|w| w.temp()).collect();
    s.push_str(&format!("sync -- {}\n", temps.join(" ")));
    s.push_str(&format!("bsctl_upto {}\n", tasks.len()));
    s.push_str("trap - EXIT\n");
    s
}

/// `bsctl_late`, run by the exit trap of a script that stopped while superseded writes were
/// due: each is put in place as any write is (temp file, sync, rename, its directory synced),
/// then the marker of the last task that finished is printed; on a failure it says what and
/// prints no marker, so those tasks are not reported applied.
fn late_writes(writes: &[Staged]) -> String {
    let mut s = String::from("bsctl_late() {\nbsctl_w=\n");
    for w in writes.iter().filter(|w| w.superseded()) {
        s.push_str(&format!("if [ -n \"${}\" ]; then\n", w.due()));
        let fail = |what: Option<String>| -> String {
            let say = what.map_or(String::new(), |m| format!("echo {} >&2\n", sh_quote(&m)));
            format!("{say}{OPS_UMASK}return 1\n")
        };
        s.push_str(&w.write_temp(&fail));
        s.push_str(&format!(
            "sync -- {t} && mv -f -- {t} {p} || return 1\nsync -- {d} 2>/dev/null || :\nbsctl_w=1\nfi\n",
            t = w.temp(),
            p = sh_quote(w.path),
            d = sh_quote(&parent(w.path))
        ));
    }
    s.push_str(
        "[ -z \"$bsctl_w\" ] || [ -z \"$bsctl_m\" ] || echo \"@@ done $bsctl_m\"\n}\nbsctl_m=\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::executor::SCRIPT_PRELUDE;
    use std::path::{Path, PathBuf};

    fn write(path: &Path, content: &str) -> Op {
        Op::WriteFile {
            path: path.display().to_string(),
            content: content.as_bytes().to_vec(),
            mode: 0o640,
            owner: None,
            group: None,
        }
    }

    fn sysctl(name: &str) -> Op {
        Op::Sysctl {
            name: name.into(),
            value: "1".into(),
        }
    }

    /// A scratch dir with stand-ins for `sysctl` (fails for names starting with `fail`) and
    /// `systemctl` (logs the file `seen` as it is when called), ahead of the real ones on the
    /// scripts' PATH: nothing here touches this machine's kernel or services.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bsctl-stage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let d = dir.display();
        for (tool, body) in [
            (
                "sysctl",
                "case $3 in fail*) echo \"sysctl: $3: refused\" >&2; exit 1 ;; esac".to_string(),
            ),
            ("systemctl", format!("cat {d}/seen >> {d}/log")),
        ] {
            let p = dir.join("bin").join(tool);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        dir
    }

    fn shells() -> Vec<&'static str> {
        let mut v = vec!["sh"];
        if std::process::Command::new("busybox")
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
        {
            v.push("busybox sh");
        }
        v
    }

    /// Runs the batch for `tasks` (markers 0, 1, ...) as the executor does, under `shell`;
    /// returns (success, the highest marker printed + 1, stderr).
    fn run(shell: &str, dir: &Path, tasks: &[Vec<Op>]) -> (bool, usize, String) {
        let tasks: Vec<TaskOps> = tasks
            .iter()
            .enumerate()
            .map(|(i, ops)| TaskOps {
                marker: Some(i),
                ops,
            })
            .collect();
        let script = format!(
            "{{\nPATH={}/bin:$PATH\n{SCRIPT_PRELUDE}{}\n}} </dev/null\n",
            dir.display(),
            batch_body(&tasks)
        );
        let mut words = shell.split(' ');
        let out = std::process::Command::new(words.next().unwrap())
            .args(words)
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let done = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("@@ done "))
            .filter_map(|n| n.parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        (
            out.status.success(),
            done,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|_| "(absent)".into())
    }

    fn temps(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn a_file_rewritten_by_the_next_tasks_is_renamed_once_with_the_last_content() {
        let tasks = |dir: &Path| {
            let (p, q) = (dir.join("99-k.conf"), dir.join("other"));
            vec![
                vec![sysctl("a"), write(&p, "a\n")],
                vec![write(&q, "q\n")],
                vec![sysctl("b"), write(&p, "a\nb\n")],
                vec![sysctl("c"), write(&p, "a\nb\nc\n")],
            ]
        };
        let dir = scratch("once");
        let body = batch_body(
            &tasks(&dir)
                .iter()
                .map(|ops| TaskOps {
                    marker: Some(0),
                    ops,
                })
                .collect::<Vec<_>>(),
        );
        // One rename of the file and one temp file staged for it, the last content's.
        assert_eq!(body.matches("\nmv -f -- ").count(), 2, "{body}");
        // The replaced contents are in the exit trap's function only, never staged.
        let first = "printf '%s' 'a\n' >";
        assert_eq!(body.matches(first).count(), 1, "{body}");
        assert!(body.find(first) < body.find("bsctl_t() {"), "{body}");
        for shell in shells() {
            std::fs::write(dir.join("99-k.conf"), "old\n").unwrap();
            let (ok, done, err) = run(shell, &dir, &tasks(&dir));
            assert!(ok, "{shell}: {err}");
            assert_eq!(done, 4, "{shell}");
            assert_eq!(read(&dir.join("99-k.conf")), "a\nb\nc\n", "{shell}");
            assert_eq!(read(&dir.join("other")), "q\n", "{shell}");
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("99-k.conf"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o640, "{shell}");
            assert!(temps(&dir).is_empty(), "{shell}: {:?}", temps(&dir));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failure_before_the_last_rewrite_leaves_the_file_as_the_tasks_before_it_made_it() {
        let dir = scratch("fail");
        let (p, r) = (dir.join("99-k.conf"), dir.join("later"));
        for shell in shells() {
            // The third task's sysctl fails: the file is the second task's, the tasks before
            // it are reported done, nothing after it happened.
            std::fs::write(&p, "old\n").unwrap();
            let _ = std::fs::remove_file(&r);
            let tasks = vec![
                vec![sysctl("a"), write(&p, "a\n")],
                vec![sysctl("b"), write(&p, "a\nb\n")],
                vec![sysctl("fail-c"), write(&p, "a\nb\nc\n")],
                vec![write(&r, "r\n")],
            ];
            let (ok, done, err) = run(shell, &dir, &tasks);
            assert!(!ok);
            assert_eq!(done, 2, "{shell}: {err}");
            assert!(err.contains("refused"), "{shell}: {err}");
            assert_eq!(read(&p), "a\nb\n", "{shell}");
            assert_eq!(read(&r), "(absent)", "{shell}");
            assert!(temps(&dir).is_empty(), "{shell}: {:?}", temps(&dir));
            // The last rewrite cannot be staged (no such owner): the tasks before it are
            // applied, the file is the one they left.
            std::fs::write(&p, "old\n").unwrap();
            let mut bad = write(&p, "a\nb\nc\n");
            if let Op::WriteFile { owner, .. } = &mut bad {
                *owner = Some("no-such-user-bsctl".into());
            }
            let tasks = vec![
                vec![sysctl("a"), write(&p, "a\n")],
                vec![sysctl("b"), write(&p, "a\nb\n")],
                vec![sysctl("c"), bad],
            ];
            let (ok, done, err) = run(shell, &dir, &tasks);
            assert!(!ok);
            assert_eq!(done, 2, "{shell}: {err}");
            assert_eq!(read(&p), "a\nb\n", "{shell}");
            assert!(temps(&dir).is_empty(), "{shell}: {:?}", temps(&dir));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_before_an_op_that_may_read_it_is_in_place_when_that_op_runs() {
        let dir = scratch("barrier");
        let seen = dir.join("seen");
        let tasks = vec![
            vec![write(&seen, "first\n")],
            vec![Op::Systemctl {
                args: vec!["daemon-reload".into()],
            }],
            vec![write(&seen, "second\n")],
        ];
        let refs: Vec<TaskOps> = tasks
            .iter()
            .map(|ops| TaskOps {
                marker: Some(0),
                ops,
            })
            .collect();
        assert_eq!(batch_body(&refs).matches("\nmv -f -- ").count(), 2);
        for shell in shells() {
            let _ = std::fs::remove_file(dir.join("log"));
            let (ok, done, err) = run(shell, &dir, &tasks);
            assert!(ok, "{shell}: {err}");
            assert_eq!(done, 3);
            assert_eq!(read(&dir.join("log")), "first\n", "{shell}");
            assert_eq!(read(&seen), "second\n", "{shell}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
