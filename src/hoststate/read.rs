//! Batched remote reads: one POSIX sh script reads every path, unit and fact a host's tasks
//! need, in one round trip; `parse_reads` is the pure parser of what it prints.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::kernel::{self, KernelRead, KernelRecord};
use super::kube::{parse_list, KubeRead, ObjectBatch, ObjectRef};
use super::{CommandOutput, Facts, FileKind, FileState, HostView, UnitState};
use crate::shell::quote as sh_quote;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    File(String),
    Unit(String),
    Swaps,
    Facts,
    /// The output of a read-only command, run as given.
    Command(String),
    /// A cluster object or list, through the host's kubectl.
    Kube(KubeRead),
    /// A sysctl value or whether a kernel module is loaded.
    Kernel(KernelRead),
}

impl Read {
    /// The command a command-like read runs (its output is parsed afterwards).
    fn command(&self) -> Option<String> {
        match self {
            Read::Command(c) => Some(c.clone()),
            Read::Kube(k) => Some(k.command()),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("reading host state: record {index} ({what}): {message}")]
    Record {
        index: usize,
        what: String,
        message: String,
    },
    #[error("reading host state: expected {expected} records, got {got}; output ended early (stderr: {stderr})")]
    Truncated {
        expected: usize,
        got: usize,
        stderr: String,
    },
}

/// Facts from /proc and builtins: no process, but `uname` on kernels older than 6.1 (no
/// /proc/sys/kernel/arch). os-release's three lines are sent as they are and unquoted here
/// (its values are shell words without expansions), rather than sourced in a subshell.
const FACTS_SCRIPT: &str = r#"echo '@@ facts'
read -r h < /proc/sys/kernel/hostname; printf 'H %s\n' "$h"
while read -r l || [ -n "$l" ]; do case $l in ID=*|VERSION_ID=*|PRETTY_NAME=*) printf 'R %s\n' "$l" ;; esac; done 2>/dev/null < /etc/os-release
read -r k < /proc/sys/kernel/osrelease
read -r m 2>/dev/null < /proc/sys/kernel/arch || m=$(uname -m)
printf 'K %s|%s\n' "$k" "$m"
if [ -d /run/systemd/system ]; then echo 'Y 1'; else echo 'Y 0'; fi
"#;

/// The script that performs `reads`. It costs a handful of processes whatever the number of
/// paths: one `stat` for every path, one `cat` for every regular file's bytes (split again by
/// the sizes `stat` gave), one `systemctl show` for every unit.
///
/// Output, in this order, each section present only when asked for:
/// `@@ facts` (tagged lines), `@@ swaps` (/proc/swaps), `@@ units` (`systemctl show` blocks),
/// `@@ stat` (`TYPE|MODE|USER|GROUP|SIZE|PATH` per existing path), `@@ content N` followed by
/// the raw bytes of the N regular files, then `\n@@ end\n`.
pub fn reads_script(reads: &[Read]) -> String {
    let mut s = String::from("LC_ALL=C; export LC_ALL\numask 077\n");
    let facts = reads.contains(&Read::Facts);
    if facts {
        s.push_str(FACTS_SCRIPT);
    }
    if facts || reads.contains(&Read::Swaps) {
        s.push_str("echo '@@ swaps'\nwhile IFS= read -r l; do printf '%s\\n' \"$l\"; done < /proc/swaps 2>/dev/null\n");
    }
    let units: Vec<String> = reads
        .iter()
        .filter_map(|r| match r {
            Read::Unit(u) => Some(sh_quote(&super::unit_name(u))),
            _ => None,
        })
        .collect();
    if !units.is_empty() {
        s.push_str(&format!(
            "echo '@@ units'\nsystemctl show -p Id,LoadState,ActiveState,UnitFileState,NeedDaemonReload -- {} 2>/dev/null\n",
            units.join(" ")
        ));
    }
    let kernel_reads: Vec<&KernelRead> = reads
        .iter()
        .filter_map(|r| match r {
            Read::Kernel(k) => Some(k),
            _ => None,
        })
        .collect();
    s.push_str(&kernel::script(&kernel_reads));
    let batches = object_batches(reads);
    for (i, r) in reads.iter().enumerate() {
        let cmd = match r {
            Read::Kube(KubeRead::Object(_)) => batches
                .iter()
                .find(|b| b.leader() == i)
                .map(ObjectBatch::command),
            _ => r.command(),
        };
        if let Some(cmd) = cmd {
            // Output travels base64-encoded, so it can never be mistaken for a section marker;
            // the temp files are private (umask 077) since the output may hold secrets.
            s.push_str(&format!(
                "bsctl_t=\"${{TMPDIR:-/tmp}}/.bootstrapctl-read.$$\"\n\
                 ( {cmd}\n) >\"$bsctl_t.o\" 2>\"$bsctl_t.e\" </dev/null; bsctl_r=$?\n\
                 printf '@@ cmd {i} %s %s %s\\n' \"$bsctl_r\" \"$(base64 -w0 < \"$bsctl_t.o\")\" \"$(base64 -w0 < \"$bsctl_t.e\")\"\n\
                 rm -f -- \"$bsctl_t.o\" \"$bsctl_t.e\"\n"
            ));
        }
    }
    let paths: Vec<String> = file_paths(reads).iter().map(|p| sh_quote(p)).collect();
    s.push_str("echo '@@ stat'\n");
    if !paths.is_empty() {
        let list = paths.join(" ");
        s.push_str(&format!(
            "stat -L -c '%F|%a|%U|%G|%s|%n' -- {list} 2>/dev/null\n\
             set --; for f in {list}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done\n\
             printf '@@ content %s\\n' \"$#\"\n\
             [ \"$#\" -eq 0 ] || cat -- \"$@\"\n"
        ));
    } else {
        s.push_str("echo '@@ content 0'\n");
    }
    s.push_str("printf '\\n@@ end\\n'\n");
    s
}

/// The object reads of `reads`, batched per cluster and namespace (see [`ObjectBatch`]).
fn object_batches(reads: &[Read]) -> Vec<ObjectBatch> {
    let objects: Vec<(usize, &ObjectRef)> = reads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Read::Kube(KubeRead::Object(o)) => Some((i, o)),
            _ => None,
        })
        .collect();
    ObjectBatch::group(&objects)
}

fn file_paths(reads: &[Read]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in reads {
        if let Read::File(p) = r {
            if !out.contains(&p.as_str()) {
                out.push(p);
            }
        }
    }
    out
}

type Stat = (String, u32, String, String, usize);

/// Parse what `reads_script(reads)` printed and store it in `view`.
pub fn parse_reads(
    reads: &[Read],
    stdout: &[u8],
    stderr: &[u8],
    view: &mut HostView,
) -> Result<(), ReadError> {
    let truncated = |got: usize| ReadError::Truncated {
        expected: reads.len(),
        got,
        stderr: String::from_utf8_lossy(stderr).trim().to_string(),
    };
    let marker = b"@@ content ";
    let at = find(stdout, marker).ok_or_else(|| truncated(0))?;
    let head = String::from_utf8_lossy(&stdout[..at]);
    let rest = &stdout[at + marker.len()..];
    let nl = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| truncated(0))?;
    let count: usize = std::str::from_utf8(&rest[..nl])
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| truncated(0))?;
    let body = &rest[nl + 1..];

    let mut section = "";
    let mut facts_lines = Vec::new();
    let mut swap_lines = Vec::new();
    let mut unit_lines = Vec::new();
    let mut stats: BTreeMap<String, Stat> = BTreeMap::new();
    let mut commands: BTreeMap<usize, CommandOutput> = BTreeMap::new();
    let mut kernel_records = Vec::new();
    for line in head.lines() {
        if let Some(rest) = line.strip_prefix("@@ cmd ") {
            let mut f = rest.split(' ');
            let index: usize = f
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| record(line, "bad command record"))?;
            let status: i32 = f
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| record(line, "bad command status"))?;
            let decode = |s: Option<&str>| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.unwrap_or(""))
                    .map_err(|_| record(line, "bad command output"))
            };
            let stdout = decode(f.next())?;
            let stderr = decode(f.next())?;
            commands.insert(
                index,
                CommandOutput {
                    status,
                    stdout,
                    stderr,
                },
            );
            continue;
        }
        if let Some(name) = line.strip_prefix("@@ ") {
            section = match name {
                "facts" => "facts",
                "swaps" => "swaps",
                "units" => "units",
                "stat" => "stat",
                "kernel" => "kernel",
                _ => "",
            };
            continue;
        }
        match section {
            "facts" => facts_lines.push(line),
            "swaps" => swap_lines.push(line),
            "units" => unit_lines.push(line),
            "kernel" => kernel_records.extend(kernel::parse_line(line)),
            "stat" => {
                let f: Vec<&str> = line.splitn(6, '|').collect();
                let [kind, mode, user, group, size, path] = f[..] else {
                    return Err(record(line, "expected TYPE|MODE|USER|GROUP|SIZE|PATH"));
                };
                let mode = u32::from_str_radix(mode, 8).map_err(|_| record(line, "bad mode"))?;
                let size = size.parse().map_err(|_| record(line, "bad size"))?;
                stats.insert(
                    path.to_string(),
                    (
                        kind.to_string(),
                        mode,
                        user.to_string(),
                        group.to_string(),
                        size,
                    ),
                );
            }
            _ => {}
        }
    }

    // The regular files, in the order `cat` printed them.
    let paths = file_paths(reads);
    let regular: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| stats.get(*p).is_some_and(|s| s.0.starts_with("regular")))
        .collect();
    let total: usize = regular.iter().map(|p| stats[*p].4).sum();
    let changed = || ReadError::Record {
        index: 0,
        what: "file contents".into(),
        message: "files changed while being read; run again".into(),
    };
    if regular.len() != count {
        return Err(changed());
    }
    if body.len() < total || !body[total..].starts_with(b"\n@@ end\n") {
        return if find(body, b"\n@@ end\n").is_some() {
            Err(changed())
        } else {
            Err(truncated(count))
        };
    }
    let mut offset = 0;
    for p in &paths {
        let state = match stats.get(*p) {
            None => FileState::absent(),
            Some((kind, mode, owner, group, size)) => {
                let (kind, content) = if kind.starts_with("regular") {
                    let c = body[offset..offset + size].to_vec();
                    offset += size;
                    (FileKind::File, Some(c))
                } else if kind == "directory" {
                    (FileKind::Directory, None)
                } else {
                    (FileKind::Other, None)
                };
                FileState {
                    kind,
                    mode: *mode,
                    owner: owner.clone(),
                    group: group.clone(),
                    content,
                }
            }
        };
        view.set_file(p, state);
    }
    if reads.contains(&Read::Facts) {
        let mut f = parse_facts(&facts_lines);
        f.swap_devices = parse_swaps(&swap_lines);
        view.set_facts(f);
    }
    if reads.contains(&Read::Facts) || reads.contains(&Read::Swaps) {
        view.set_swaps(parse_swaps(&swap_lines));
    }
    let batches = object_batches(reads);
    for (i, r) in reads.iter().enumerate() {
        match r {
            Read::Command(cmd) => {
                let out = commands.remove(&i).ok_or_else(|| truncated(i))?;
                view.set_command(cmd, out);
            }
            Read::Kube(KubeRead::Object(_)) => {
                let Some(batch) = batches.iter().find(|b| b.leader() == i) else {
                    continue; // answered by its batch's leader
                };
                let out = commands.remove(&i).ok_or_else(|| truncated(i))?;
                for (o, obj) in batch.parse(&out) {
                    view.set_kube_object(&o, obj);
                }
            }
            Read::Kube(KubeRead::List(l)) => {
                let out = commands.remove(&i).ok_or_else(|| truncated(i))?;
                view.set_kube_list(l, parse_list(&out));
            }
            _ => {}
        }
    }
    for rec in kernel_records {
        match rec {
            KernelRecord::Sysctl(n, v) => view.set_sysctl(&n, v),
            KernelRecord::Module(m, st) => view.set_kernel_module(&m, st),
        }
    }
    for r in reads.iter().filter(|r| matches!(r, Read::Kernel(_))) {
        if !view.has(r) {
            return Err(truncated(0));
        }
    }
    let units: Vec<&Read> = reads
        .iter()
        .filter(|r| matches!(r, Read::Unit(_)))
        .collect();
    let blocks = parse_unit_blocks(&unit_lines);
    for (i, r) in units.iter().enumerate() {
        if let Read::Unit(name) = r {
            let full = super::unit_name(name);
            let state = blocks
                .iter()
                .find(|(id, _)| id.as_deref() == Some(full.as_str()))
                .or_else(|| blocks.get(i).filter(|(id, _)| id.is_none()))
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            view.set_unit(name, state);
        }
    }
    Ok(())
}

fn record(line: &str, message: &str) -> ReadError {
    ReadError::Record {
        index: 0,
        what: format!("stat line {line:?}"),
        message: message.to_string(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `systemctl show` prints one block per unit, separated by blank lines.
fn parse_unit_blocks(lines: &[&str]) -> Vec<(Option<String>, UnitState)> {
    let mut out = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in lines.iter().chain(std::iter::once(&"")) {
        if line.is_empty() {
            if !block.is_empty() {
                let id = block
                    .iter()
                    .find_map(|l| l.strip_prefix("Id="))
                    .map(str::to_string);
                out.push((id, parse_unit(&block)));
                block.clear();
            }
        } else {
            block.push(line);
        }
    }
    out
}

fn parse_unit(lines: &[&str]) -> UnitState {
    let mut u = UnitState::default();
    for line in lines {
        if let Some((k, v)) = line.split_once('=') {
            match k {
                "LoadState" => u.load_state = v.to_string(),
                "ActiveState" => u.active_state = v.to_string(),
                "UnitFileState" => u.unit_file_state = v.to_string(),
                "NeedDaemonReload" => u.need_daemon_reload = v == "yes",
                _ => {}
            }
        }
    }
    u
}

fn parse_swaps(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// An os-release value as the shell that sources the file gives it: one word, quotes and
/// backslashes removed (a value that is no valid shell word is kept as it is).
fn os_release_value(raw: &str) -> String {
    match shell_words::split(raw) {
        Ok(words) => words.join(" "),
        Err(_) => raw.to_string(),
    }
}

fn parse_facts(lines: &[&str]) -> Facts {
    let mut f = Facts::default();
    let mut swap_lines = Vec::new();
    for line in lines {
        let (tag, rest) = line.split_at(line.len().min(2));
        match tag.trim() {
            "H" => f.hostname = rest.to_string(),
            "R" => {
                let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
                let value = os_release_value(value);
                match key {
                    "ID" => f.os_id = value,
                    "VERSION_ID" => f.os_version_id = value,
                    _ => f.os_pretty_name = value,
                }
            }
            "K" => {
                let mut p = rest.splitn(2, '|');
                f.kernel = p.next().unwrap_or_default().to_string();
                f.arch = p.next().unwrap_or_default().to_string();
            }
            "Y" => f.systemd_running = rest == "1",
            "S" => swap_lines.push(rest),
            _ => {}
        }
    }
    f.swap_devices = parse_swaps(&swap_lines);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_record() {
        let reads = vec![
            Read::File("/etc/a".into()),
            Read::File("/etc/missing".into()),
            Read::File("/etc/d".into()),
            Read::File("/etc/b|c".into()),
            Read::Unit("kubelet".into()),
            Read::Unit("absent.service".into()),
            Read::Swaps,
            Read::Facts,
        ];
        let out = b"@@ facts\nH worker-01\nR ID=debian\nR VERSION_ID='12'\nR PRETTY_NAME=\"Debian GNU/Linux 12 \\\"bookworm\\\"\"\nK 6.1.0|x86_64\nY 0\n\
                    @@ swaps\nFilename Type Size Used Priority\n/swapfile file 1024 0 -2\n\
                    @@ units\nId=kubelet.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=yes\n\n\
                    Id=absent.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\nNeedDaemonReload=no\n\
                    @@ stat\nregular file|600|root|root|6|/etc/a\ndirectory|755|root|adm|4096|/etc/d\nregular file|644|root|root|3|/etc/b|c\n\
                    @@ content 2\nhello\nx|y\n@@ end\n";
        let mut view = HostView::new();
        parse_reads(&reads, out, b"", &mut view).unwrap();
        let a = view.file("/etc/a").unwrap();
        assert_eq!(
            (a.kind, a.mode, a.content.as_deref()),
            (FileKind::File, 0o600, Some(&b"hello\n"[..]))
        );
        assert_eq!(
            view.file("/etc/b|c").unwrap().content.as_deref(),
            Some(&b"x|y"[..])
        );
        assert!(!view.file("/etc/missing").unwrap().exists());
        assert_eq!(view.file("/etc/d").unwrap().group, "adm");
        let u = view.unit("kubelet").unwrap();
        assert!(
            u.need_daemon_reload && u.active_state == "active" && u.unit_file_state == "enabled"
        );
        assert_eq!(view.unit("absent.service").unwrap().load_state, "not-found");
        assert_eq!(view.active_swaps().unwrap(), ["/swapfile"]);
        let f = view.facts().unwrap();
        assert_eq!(
            (f.hostname.as_str(), f.arch.as_str(), f.systemd_running),
            ("worker-01", "x86_64", false)
        );
        assert_eq!(
            (
                f.os_id.as_str(),
                f.os_version_id.as_str(),
                f.os_pretty_name.as_str()
            ),
            ("debian", "12", "Debian GNU/Linux 12 \"bookworm\"")
        );
        assert_eq!(f.swap_devices, ["/swapfile"]);
        assert!(view.missing(&reads).is_empty());
    }

    #[test]
    fn a_file_that_changed_size_while_read_is_an_error() {
        let reads = vec![Read::File("/etc/a".into())];
        let out =
            b"@@ stat\nregular file|600|root|root|6|/etc/a\n@@ content 1\nhello world\n@@ end\n";
        let err = parse_reads(&reads, out, b"", &mut HostView::new()).unwrap_err();
        assert!(
            err.to_string().contains("changed while being read"),
            "{err}"
        );
    }

    #[test]
    fn truncated_output_is_an_error_not_an_absent_file() {
        let reads = vec![Read::File("/etc/a".into())];
        let out = b"@@ stat\nregular file|600|root|root|6|/etc/a\n@@ content 1\nhel";
        let err = parse_reads(&reads, out, b"sh: killed", &mut HostView::new()).unwrap_err();
        assert!(matches!(err, ReadError::Truncated { .. }), "{err}");
    }

    #[test]
    fn script_runs_against_this_machine() {
        let dir = std::env::temp_dir().join(format!("bsctl-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("it's a file");
        std::fs::write(&file, b"x\ny").unwrap();
        let reads = vec![
            Read::File(file.display().to_string()),
            Read::File(dir.display().to_string()),
            Read::File(dir.join("nope").display().to_string()),
            Read::Facts,
            Read::Command("printf 'a\\n@@ end\\n'; echo oops >&2; exit 3".into()),
        ];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(reads_script(&reads))
            .output()
            .unwrap();
        let mut view = HostView::new();
        parse_reads(&reads, &out.stdout, &out.stderr, &mut view).unwrap();
        assert_eq!(
            view.file(&file.display().to_string())
                .unwrap()
                .content
                .as_deref(),
            Some(&b"x\ny"[..])
        );
        assert_eq!(
            view.file(&dir.display().to_string()).unwrap().kind,
            FileKind::Directory
        );
        assert!(!view
            .file(&dir.join("nope").display().to_string())
            .unwrap()
            .exists());
        let facts = view.facts().unwrap();
        assert!(!facts.hostname.is_empty());
        // os-release as a shell that sources it reads it.
        let sourced = std::process::Command::new("sh")
            .arg("-c")
            .arg(". /etc/os-release; printf '%s|%s|%s' \"$ID\" \"$VERSION_ID\" \"$PRETTY_NAME\"")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sourced.stdout),
            format!(
                "{}|{}|{}",
                facts.os_id, facts.os_version_id, facts.os_pretty_name
            )
        );
        let c = view
            .command("printf 'a\\n@@ end\\n'; echo oops >&2; exit 3")
            .unwrap();
        assert_eq!(
            (c.status, c.stdout.as_slice(), c.stderr.as_slice()),
            (3, &b"a\n@@ end\n"[..], &b"oops\n"[..])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
