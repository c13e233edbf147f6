//! Batched remote reads: one POSIX sh script reads every path, unit and fact a host's tasks
//! need, in one round trip; `parse_reads` is the pure parser of what it prints.

use base64::Engine as _;

use super::{Facts, FileKind, FileState, HostView, UnitState};
use crate::transport::sh_quote;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    File(String),
    Unit(String),
    Swaps,
    Facts,
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

const FACTS_SCRIPT: &str = r#"printf 'H %s\n' "$(hostname 2>/dev/null || cat /etc/hostname)"
( . /etc/os-release 2>/dev/null; printf 'O %s|%s|%s\n' "$ID" "$VERSION_ID" "$PRETTY_NAME" )
printf 'K %s|%s\n' "$(uname -r)" "$(uname -m)"
if [ -d /run/systemd/system ]; then echo 'Y 1'; else echo 'Y 0'; fi
"#;

/// The script that performs `reads`; prints one `@@ N` header per read, then its record.
pub fn reads_script(reads: &[Read]) -> String {
    let mut s = String::from(
        "rd_file() {\n\
         if [ -d \"$1\" ]; then printf 'D %s\\n' \"$(stat -c '%a %U %G' -- \"$1\")\";\n\
         elif [ -f \"$1\" ]; then printf 'F %s ' \"$(stat -c '%a %U %G' -- \"$1\")\"; base64 -w0 -- \"$1\" || printf '!'; printf '\\n';\n\
         elif [ -e \"$1\" ] || [ -L \"$1\" ]; then printf 'X %s\\n' \"$(stat -c '%a %U %G' -- \"$1\")\";\n\
         else printf 'A\\n'; fi\n}\n",
    );
    for (i, r) in reads.iter().enumerate() {
        s.push_str(&format!("echo '@@ {i}'\n"));
        match r {
            Read::File(p) => s.push_str(&format!("rd_file {}\n", sh_quote(p))),
            Read::Unit(u) => s.push_str(&format!(
                "systemctl show -p LoadState,ActiveState,UnitFileState,NeedDaemonReload -- {} 2>/dev/null; true\n",
                sh_quote(&super::unit_name(u))
            )),
            Read::Swaps => s.push_str("cat /proc/swaps 2>/dev/null; true\n"),
            Read::Facts => {
                s.push_str(FACTS_SCRIPT);
                s.push_str("cat /proc/swaps 2>/dev/null | sed 's/^/S /'; true\n");
            }
        }
    }
    s.push_str("echo '@@ end'\n");
    s
}

/// Parse what `reads_script(reads)` printed and store it in `view`.
pub fn parse_reads(
    reads: &[Read],
    stdout: &[u8],
    stderr: &[u8],
    view: &mut HostView,
) -> Result<(), ReadError> {
    let text = String::from_utf8_lossy(stdout);
    let mut sections: Vec<Vec<&str>> = Vec::new();
    let mut ended = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            if rest == "end" {
                ended = true;
                break;
            }
            sections.push(Vec::new());
        } else if let Some(cur) = sections.last_mut() {
            cur.push(line);
        }
    }
    if !ended || sections.len() != reads.len() {
        return Err(ReadError::Truncated {
            expected: reads.len(),
            got: sections.len(),
            stderr: String::from_utf8_lossy(stderr).trim().to_string(),
        });
    }
    for (index, (read, lines)) in reads.iter().zip(sections).enumerate() {
        let err = |message: String| ReadError::Record {
            index,
            what: format!("{read:?}"),
            message,
        };
        match read {
            Read::File(path) => view.set_file(path, parse_file(&lines).map_err(err)?),
            Read::Unit(name) => view.set_unit(name, parse_unit(&lines)),
            Read::Swaps => view.set_swaps(parse_swaps(&lines)),
            Read::Facts => view.set_facts(parse_facts(&lines)),
        }
    }
    Ok(())
}

fn parse_file(lines: &[&str]) -> Result<FileState, String> {
    let line = lines.first().ok_or("no record")?;
    if *line == "A" {
        return Ok(FileState::absent());
    }
    let mut parts = line.splitn(5, ' ');
    let tag = parts.next().unwrap_or_default();
    let mode = parts.next().ok_or("missing mode")?;
    let owner = parts.next().ok_or("missing owner")?.to_string();
    let group = parts.next().ok_or("missing group")?.to_string();
    let mode = u32::from_str_radix(mode, 8).map_err(|e| format!("bad mode {mode:?}: {e}"))?;
    let (kind, content) = match tag {
        "D" => (FileKind::Directory, None),
        "X" => (FileKind::Other, None),
        "F" => {
            let b64 = parts.next().unwrap_or("");
            if b64 == "!" || b64.ends_with('!') {
                return Err("file exists but could not be read".into());
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("bad base64 content: {e}"))?;
            (FileKind::File, Some(bytes))
        }
        other => return Err(format!("unknown record tag {other:?}")),
    };
    Ok(FileState {
        kind,
        mode,
        owner,
        group,
        content,
    })
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

fn parse_facts(lines: &[&str]) -> Facts {
    let mut f = Facts::default();
    let mut swap_lines = Vec::new();
    for line in lines {
        let (tag, rest) = line.split_at(line.len().min(2));
        match tag.trim() {
            "H" => f.hostname = rest.to_string(),
            "O" => {
                let mut p = rest.splitn(3, '|');
                f.os_id = p.next().unwrap_or_default().to_string();
                f.os_version_id = p.next().unwrap_or_default().to_string();
                f.os_pretty_name = p.next().unwrap_or_default().to_string();
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
            Read::Unit("kubelet".into()),
            Read::Swaps,
            Read::Facts,
        ];
        let out = "@@ 0\nF 600 root root aGVsbG8K\n@@ 1\nA\n@@ 2\nD 755 root adm\n@@ 3\n\
                   LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=yes\n\
                   @@ 4\nFilename Type Size Used Priority\n/swapfile file 1024 0 -2\n\
                   @@ 5\nH worker-01\nO debian|12|Debian GNU/Linux 12 (bookworm)\nK 6.1.0|x86_64\nY 0\n\
                   S Filename Type Size Used Priority\nS /dev/vda2 partition 1 0 -2\n@@ end\n";
        let mut view = HostView::new();
        parse_reads(&reads, out.as_bytes(), b"", &mut view).unwrap();
        let a = view.file("/etc/a").unwrap();
        assert_eq!(
            (a.kind, a.mode, a.content.as_deref()),
            (FileKind::File, 0o600, Some(&b"hello\n"[..]))
        );
        assert!(!view.file("/etc/missing").unwrap().exists());
        assert_eq!(view.file("/etc/d").unwrap().group, "adm");
        let u = view.unit("kubelet").unwrap();
        assert!(
            u.need_daemon_reload && u.active_state == "active" && u.unit_file_state == "enabled"
        );
        assert_eq!(view.active_swaps().unwrap(), ["/swapfile"]);
        let f = view.facts().unwrap();
        assert_eq!(
            (f.hostname.as_str(), f.arch.as_str(), f.systemd_running),
            ("worker-01", "x86_64", false)
        );
        assert_eq!(f.swap_devices, ["/dev/vda2"]);
        assert!(view.missing(&reads).is_empty());
    }

    #[test]
    fn truncated_output_is_an_error_not_an_absent_file() {
        let reads = vec![Read::File("/etc/a".into())];
        let err = parse_reads(&reads, b"@@ 0\n", b"sh: killed", &mut HostView::new()).unwrap_err();
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
        assert!(!view.facts().unwrap().hostname.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
