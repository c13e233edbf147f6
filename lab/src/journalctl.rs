//! The `journalctl` stand-in bind-mounted into lab hosts: `journalctl -u UNIT [-n N] [-f]`
//! prints the unit's log, /var/log/lab/<unit>.log (what the systemctl stand-in and the service
//! wrote), since there is no journald in the lab.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::service;
use super::units::{self, Root};

pub(crate) fn journalctl_main(args: &[String]) -> i32 {
    let root = match std::env::var("BOOTSTRAPCTL_LAB_ROOT") {
        Ok(r) if !r.is_empty() => Root(r.into()),
        _ => Root("/".into()),
    };
    run(
        &root,
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        None,
    )
}

/// `follow_for`: in tests, how long `-f` follows before returning (None: until killed).
pub(crate) fn run(
    root: &Root,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    follow_for: Option<Duration>,
) -> i32 {
    let mut unitnames = Vec::new();
    let mut lines: Option<usize> = None;
    let mut follow = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "--unit" => match it.next() {
                Some(u) => unitnames.push(units::normalize(u)),
                None => {
                    let _ = writeln!(err, "journalctl: option '{a}' requires an argument");
                    return 1;
                }
            },
            "-n" | "--lines" => match it.next().map(|n| n.parse::<usize>()) {
                Some(Ok(n)) => lines = Some(n),
                _ => {
                    let _ = writeln!(err, "Failed to parse lines");
                    return 1;
                }
            },
            "-f" | "--follow" => follow = true,
            "-e" | "--pager-end" => lines = lines.or(Some(1000)),
            "--no-pager" | "-q" | "--quiet" | "-b" | "--boot" | "-x" | "--catalog"
            | "--no-hostname" | "-l" | "--full" | "--system" => {}
            "-o" | "--output" => {
                it.next();
            }
            s if s.starts_with("--unit=") => unitnames.push(units::normalize(&s[7..])),
            s if s.starts_with("--lines=") => match s[8..].parse() {
                Ok(n) => lines = Some(n),
                Err(_) => {
                    let _ = writeln!(err, "Failed to parse lines '{}'", &s[8..]);
                    return 1;
                }
            },
            s if s.starts_with("-u") && s.len() > 2 => unitnames.push(units::normalize(&s[2..])),
            s if s.starts_with("-n") && s.len() > 2 => match s[2..].parse() {
                Ok(n) => lines = Some(n),
                Err(_) => {
                    let _ = writeln!(err, "Failed to parse lines '{}'", &s[2..]);
                    return 1;
                }
            },
            s if s.starts_with("--output=") => {}
            s => {
                let _ = writeln!(
                    err,
                    "journalctl (bootstrapctl lab stand-in): unsupported argument '{s}' (supported: -u UNIT, -n N, -f, --no-pager)"
                );
                return 1;
            }
        }
    }
    if unitnames.is_empty() {
        let _ = writeln!(
            err,
            "journalctl (bootstrapctl lab stand-in): only per-unit logs exist in the lab; use -u UNIT"
        );
        return 1;
    }
    let mut any = false;
    for u in &unitnames {
        if let Some(t) = service::log_tail(root, u, lines) {
            any = true;
            let _ = out.write_all(t.as_bytes());
        }
    }
    if !any && !follow {
        let _ = writeln!(out, "-- No entries --");
    }
    if follow && unitnames.len() == 1 {
        let path = service::log_file(root, &unitnames[0]);
        let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let start = std::time::Instant::now();
        while follow_for.is_none_or(|d| start.elapsed() < d) {
            std::thread::sleep(Duration::from_millis(200));
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < pos {
                pos = 0;
            }
            if len > pos && f.seek(SeekFrom::Start(pos)).is_ok() {
                let mut buf = Vec::new();
                if f.read_to_end(&mut buf).is_ok() {
                    pos += buf.len() as u64;
                    let _ = out.write_all(&buf);
                    let _ = out.flush();
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn jc(root: &Root, args: &str) -> (i32, String, String) {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = run(root, &args, &mut o, &mut e, Some(Duration::from_millis(10)));
        (
            code,
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
        )
    }

    #[test]
    fn prints_the_units_log_tail() {
        let tmp = TempDir::new("journalctl");
        let root = Root(tmp.0.clone());
        std::fs::create_dir_all(root.path("/var/log/lab")).unwrap();
        std::fs::write(root.path("/var/log/lab/kubelet.service.log"), "a\nb\nc\n").unwrap();
        assert_eq!(
            jc(&root, "-u kubelet --no-pager"),
            (0, "a\nb\nc\n".into(), String::new())
        );
        assert_eq!(jc(&root, "-u kubelet.service -n 2").1, "b\nc\n");
        assert_eq!(jc(&root, "-ukubelet -n1").1, "c\n");
        assert_eq!(jc(&root, "-u nope").1, "-- No entries --\n");
        assert_eq!(jc(&root, "-u kubelet -f").1, "a\nb\nc\n");
        assert_eq!(jc(&root, "--no-pager").0, 1);
        assert_eq!(jc(&root, "-u kubelet --since today").0, 1);
    }

    #[test]
    fn argv0() {
        assert_eq!(
            crate::standin::invoked_as("/usr/bin/journalctl"),
            Some("journalctl")
        );
        assert_eq!(
            crate::standin::invoked_as("/usr/bin/systemctl"),
            Some("systemctl")
        );
    }
}
