//! `sysctl` and `modprobe` stand-ins: lab hosts share this machine's kernel, so these change
//! only the host's own kernel view (`kernel_view`) in its state dir, never the machine's
//! settings. They take the procps/kmod options the playbooks use and say they are stand-ins.

use std::fs;
use std::path::{Path, PathBuf};

use super::kernel_view::{PROC_SYS_DIR, SYS_MODULE_DIR};
use super::namespace::STATE_MOUNT;

const SYSCTL_HELP: &str = "sysctl (bootstrapctl lab stand-in): reads and sets this lab host's own \
copy of kernel parameters; the lab never changes the machine's kernel.\n\
usage: sysctl [-n] [-e] [-q] NAME...\n       sysctl [-q] -w NAME=VALUE...\n       sysctl [-q] -p FILE\n";

const MODPROBE_HELP: &str = "modprobe (bootstrapctl lab stand-in): marks modules loaded or \
removed in this lab host's own /sys/module view; nothing is loaded into the machine's kernel.\n\
usage: modprobe [-q] [--] NAME [PARAM=VALUE...]\n       modprobe -r [-q] [--] NAME...\n";

fn state() -> PathBuf {
    PathBuf::from(STATE_MOUNT)
}

/// The host's own copy of a sysctl, if the lab gave it one.
fn own_copy(name: &str) -> PathBuf {
    state()
        .join(PROC_SYS_DIR)
        .join(name.trim_matches('.').replace('.', "/"))
}

fn real_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.trim_matches('.').replace('.', "/"))
}

fn dotted(name: &str) -> String {
    name.trim().trim_matches('/').replace('/', ".")
}

fn read_value(name: &str) -> Result<String, String> {
    let own = own_copy(name);
    let path = if own.is_file() { own } else { real_path(name) };
    fs::read_to_string(&path)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join("\t"))
        .map_err(|e| format!("sysctl: cannot stat {}: {e}", real_path(name).display()))
}

fn write_value(name: &str, value: &str) -> Result<(), String> {
    let own = own_copy(name);
    if own.is_file() {
        return fs::write(&own, format!("{}\n", value.trim()))
            .map_err(|e| format!("sysctl: setting key \"{name}\": {e}"));
    }
    if real_path(name).exists() {
        // The key exists on the machine but the lab gave the host no copy of it: changing
        // it would change the machine's kernel.
        return Err(format!(
            "sysctl (lab stand-in): {name} is not in this lab host's kernel view; the lab never \
             changes the machine's kernel"
        ));
    }
    Err(format!(
        "sysctl: cannot stat {}: No such file or directory",
        real_path(name).display()
    ))
}

pub(crate) fn sysctl_main(args: &[String]) -> i32 {
    let (mut names_only, mut quiet, mut ignore, mut write, mut load) =
        (false, false, false, false, None::<Option<String>>);
    let mut words = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" | "-V" | "--version" => {
                print!("{SYSCTL_HELP}");
                return 0;
            }
            "-n" | "--values" => names_only = true,
            "-q" | "--quiet" => quiet = true,
            "-e" | "--ignore" => ignore = true,
            "-w" | "--write" => write = true,
            "-p" | "--load" => {
                load = Some(
                    it.next_if(|n| !n.starts_with('-'))
                        .cloned()
                        .or_else(|| Some("/etc/sysctl.conf".into())),
                )
            }
            s if s.starts_with("-p") => load = Some(Some(s[2..].to_string())),
            s if s.starts_with('-') && s.len() > 1 && !s.contains('=') => {
                // Combined short flags: -qw, -nq.
                for c in s[1..].chars() {
                    match c {
                        'n' => names_only = true,
                        'q' => quiet = true,
                        'e' => ignore = true,
                        'w' => write = true,
                        _ => {
                            eprintln!("sysctl (lab stand-in): option -{c} is not supported\n{SYSCTL_HELP}");
                            return 1;
                        }
                    }
                }
            }
            _ => words.push(a.clone()),
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(file) = load {
        let file = file.unwrap_or_default();
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("sysctl: cannot open \"{file}\": {e}");
                return 255;
            }
        };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                pairs.push((
                    dotted(k.trim().trim_start_matches('-')),
                    v.trim().to_string(),
                ));
            }
        }
        write = true;
    }
    let mut status = 0;
    for w in &words {
        match w.split_once('=') {
            Some((k, v)) => pairs.push((dotted(k), v.trim().to_string())),
            None if write => {
                eprintln!("sysctl: \"{w}\" must be of the form name=value");
                status = 255;
            }
            None => match read_value(&dotted(w)) {
                Ok(v) if names_only => println!("{v}"),
                Ok(v) => println!("{} = {v}", dotted(w)),
                Err(e) if ignore => drop(e),
                Err(e) => {
                    eprintln!("{e}");
                    status = 255;
                }
            },
        }
    }
    for (k, v) in pairs {
        match write_value(&k, &v) {
            Ok(()) if !quiet => println!("{k} = {v}"),
            Ok(()) => {}
            Err(e) if ignore => drop(e),
            Err(e) => {
                eprintln!("{e}");
                status = 255;
            }
        }
    }
    status
}

pub(crate) fn modprobe_main(args: &[String]) -> i32 {
    let (mut remove, mut quiet) = (false, false);
    let mut words = Vec::new();
    let mut literal = false;
    for a in args {
        match a.as_str() {
            _ if literal => words.push(a.clone()),
            "--" => literal = true,
            "-h" | "--help" | "-V" | "--version" => {
                print!("{MODPROBE_HELP}");
                return 0;
            }
            "-r" | "--remove" => remove = true,
            "-q" | "--quiet" => quiet = true,
            "-rq" | "-qr" => (remove, quiet) = (true, true),
            s if s.starts_with('-') => {
                eprintln!("modprobe (lab stand-in): option {s} is not supported\n{MODPROBE_HELP}");
                return 1;
            }
            _ => words.push(a.clone()),
        }
    }
    let Some((name, params)) = words.split_first() else {
        eprintln!("modprobe: ERROR: missing module name.\n{MODPROBE_HELP}");
        return 1;
    };
    let modules: Vec<String> = if remove {
        words.iter().map(|w| w.replace('-', "_")).collect()
    } else {
        vec![name.replace('-', "_")]
    };
    if let Some(bad) = modules
        .iter()
        .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        eprintln!("modprobe: FATAL: Module {bad} not found.");
        return 1;
    }
    let dir = state().join(SYS_MODULE_DIR);
    for m in &modules {
        let at = dir.join(m);
        if remove {
            if !at.is_dir() {
                if !quiet {
                    eprintln!("modprobe: FATAL: Module {m} is not in kernel.");
                }
                return 1;
            }
            if let Err(e) = fs::remove_dir_all(&at) {
                eprintln!("modprobe (lab stand-in): removing {m}: {e}");
                return 1;
            }
        } else if !at.is_dir() {
            let done = fs::create_dir_all(at.join("parameters"))
                .and_then(|()| fs::write(at.join("initstate"), "live\n"))
                .and_then(|()| {
                    params.iter().try_for_each(|p| match p.split_once('=') {
                        Some((k, v)) => fs::write(at.join("parameters").join(k), format!("{v}\n")),
                        None => fs::write(at.join("parameters").join(p), "Y\n"),
                    })
                });
            if let Err(e) = done {
                eprintln!("modprobe (lab stand-in): loading {m}: {e}");
                return 1;
            }
        }
    }
    0
}
