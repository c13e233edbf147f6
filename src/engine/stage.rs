//! The write part of a batch script: a run of consecutive tasks is one staged group, whose
//! file writes are all put in temp files first (shell builtins only), made durable by one
//! `sync`, and then each task's ops run in task order, a write's `mv` in its place, with the
//! task's marker after them. The outcome is that of running the tasks one by one: a failure
//! leaves the tasks before it applied and none after it, and a failed task's files as they
//! were.

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
}

impl Staged<'_> {
    /// `"$tN"`, as the script refers to the temp file.
    fn temp(&self) -> String {
        format!("\"${}\"", self.var)
    }
}

/// A group of tasks (all their ops stageable): stage every temp file, one sync, then the
/// tasks in order. The tasks are the arms of one function, `bsctl_t N`, and `bsctl_upto N`
/// runs the first N, so that a failed write's handler runs the tasks before it without
/// repeating their ops in the script.
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
    s.push_str(&format!("trap 'rm -f -- {}' EXIT\n", all.join(" ")));
    s.push_str("bsctl_t() {\ncase $1 in\n");
    let mut next = writes.iter();
    for (g, t) in tasks.iter().enumerate() {
        s.push_str(&format!("{g})\n"));
        for op in t.ops {
            if let Op::WriteFile { path, .. } = op {
                let w = next.next().expect("one staged write per WriteFile");
                s.push_str(&format!("mv -f -- {} {}\n", w.temp(), sh_quote(path)));
            } else {
                s.push_str(&ops_body(std::slice::from_ref(op)));
            }
        }
        s.push_str(&marker_line(t.marker));
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
        let temps: Vec<String> = writes
            .iter()
            .filter(|w| w.task < upto)
            .map(Staged::temp)
            .collect();
        let mut c = String::new();
        if !temps.is_empty() {
            c.push_str(&format!("sync -- {}\n", temps.join(" ")));
        }
        c.push_str(&format!("bsctl_upto {upto}\n"));
        c
    };
    for w in &writes {
        let (temp, path, mode) = (w.temp(), w.path, w.mode);
        // On failure: the tasks before this one still take effect, as if run one by one.
        let handler = |what: Option<String>| -> String {
            let say = what.map_or(String::new(), |m| format!("echo {} >&2\n", sh_quote(&m)));
            format!("{say}{}exit 1\n", commit(w.task))
        };
        let on_fail = |what: Option<String>| format!(" || {{\n{}}}\n", handler(what));
        // Created with its final permissions (or 0600 until chmod), never wider.
        let plain = mode & 0o7111 == 0;
        let umask = if plain { !mode & 0o777 } else { 0o077 };
        s.push_str(&format!("umask {umask:03o}\n"));
        // dash's printf reports ENOSPC as a bare "I/O error": say what was written.
        let what = Some(format!(
            "bootstrapctl: writing {path} failed (disk full or I/O error); the old file is kept"
        ));
        match std::str::from_utf8(w.content) {
            Ok(text) if !text.contains('\0') => {
                s.push_str(&format!("printf '%s' {} > {temp}", sh_quote_always(text)));
                s.push_str(&on_fail(what));
            }
            _ => {
                // The here-document's body starts on the next line, so the handler goes in
                // an `else` after it.
                s.push_str(&format!("if base64 -d > {temp} <<'__BOOTSTRAPCTL_EOF__'\n"));
                let b64 = base64::engine::general_purpose::STANDARD.encode(w.content);
                for chunk in b64.as_bytes().chunks(76) {
                    s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                    s.push('\n');
                }
                s.push_str("__BOOTSTRAPCTL_EOF__\nthen :; else\n");
                s.push_str(&handler(what));
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
        if let Some(chown) = chown_spec(w.owner, w.group) {
            let cmd = format!("chown {} {temp}", sh_quote(&chown));
            if is_root_spec(w.owner, w.group) {
                s.push_str(&format!("[ \"$bsctl_uid\" = 0 ] || {cmd}"));
            } else {
                s.push_str(&cmd);
            }
            s.push_str(&on_fail(None));
        }
    }
    s.push_str(&format!("sync -- {}\n", all.join(" ")));
    s.push_str(&format!("bsctl_upto {}\n", tasks.len()));
    s.push_str("trap - EXIT\n");
    s
}
