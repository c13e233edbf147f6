//! Kernel state a host's tasks read: sysctl values (from /proc/sys, as `sysctl -n` reads
//! them) and whether a kernel module is loaded (its /sys/module entry, or built in). The
//! read-script fragment and its pure parser live here; `HostView` holds the results.

use crate::shell::{quote as sh_quote, quote_always as sh_quote_always};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelRead {
    /// A sysctl by its dotted name (`net.ipv4.ip_forward`).
    Sysctl(String),
    /// A kernel module by name (`br_netfilter`; `-` and `_` are the same to the kernel).
    Module(String),
}

/// Whether a module is in the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    Loaded,
    /// Compiled into the kernel: always there, and `modprobe -r` cannot remove it.
    Builtin,
    Absent,
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`; `sysctl` also takes `/` as the
/// separator, so both spellings name the same file.
pub fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.trim_matches('.').replace('.', "/"))
}

/// The canonical dotted name (`net/ipv4/ip_forward` → `net.ipv4.ip_forward`).
pub fn sysctl_name(name: &str) -> String {
    name.trim().trim_matches('/').replace('/', ".")
}

/// The kernel's own spelling of a module name: dashes are underscores in /sys/module.
pub fn module_name(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// A value as the kernel prints it, whitespace runs collapsed (`32768\t60999` and
/// `32768 60999` are the same setting), as ansible.posix.sysctl compares them.
pub fn normalize_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The script lines for `reads`: builtins only for sysctls (`read` from /proc/sys, no
/// subshell) and for modules /sys/module shows; one `grep` of modules.builtin for all the
/// modules it does not show.
pub fn script(reads: &[&KernelRead]) -> String {
    if reads.is_empty() {
        return String::new();
    }
    let mut s = String::from("echo '@@ kernel'\n");
    let modules: Vec<String> = reads
        .iter()
        .filter_map(|r| match r {
            KernelRead::Module(name) => Some(module_name(name)),
            KernelRead::Sysctl(_) => None,
        })
        .collect();
    if !modules.is_empty() {
        let names: Vec<String> = modules.iter().map(|m| sh_quote(m)).collect();
        let alternatives: Vec<String> = modules
            .iter()
            .flat_map(|m| [m.clone(), m.replace('_', "-")])
            .collect();
        let pattern = sh_quote_always(&format!("/({})\\.ko", alternatives.join("|")));
        s.push_str(&format!(
            "read -r bsctl_k < /proc/sys/kernel/osrelease\nbsctl_b=\n\
             for bsctl_m in {}; do [ -d \"/sys/module/$bsctl_m\" ] || \
             {{ bsctl_b=$(grep -E {pattern} \"/lib/modules/$bsctl_k/modules.builtin\" 2>/dev/null); break; }}; done\n",
            names.join(" ")
        ));
    }
    for r in reads {
        match r {
            KernelRead::Sysctl(name) => {
                let name = sysctl_name(name);
                let p = sh_quote(&sysctl_path(&name));
                let n = sh_quote(&name);
                s.push_str(&format!(
                    "bsctl_v=\nif [ -e {p} ] && while IFS= read -r l || [ -n \"$l\" ]; do bsctl_v=\"$bsctl_v$l \"; done < {p}; \
                     then printf 'S %s|+%s\\n' {n} \"$bsctl_v\"; else printf 'S %s|-\\n' {n}; fi\n"
                ));
            }
            KernelRead::Module(name) => {
                let m = module_name(name);
                let dash = m.replace('_', "-");
                let q = sh_quote(&m);
                s.push_str(&format!(
                    "if [ -d /sys/module/{q} ]; then echo 'M {m}|loaded'; else case $bsctl_b in \
                     *{}*|*{}*) echo 'M {m}|builtin' ;; *) echo 'M {m}|absent' ;; esac; fi\n",
                    sh_quote_always(&format!("/{m}.ko")),
                    sh_quote_always(&format!("/{dash}.ko")),
                ));
            }
        }
    }
    s
}

/// One parsed kernel record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelRecord {
    /// `None`: no such sysctl on this kernel (its module is not loaded, or it does not exist).
    Sysctl(String, Option<String>),
    Module(String, ModuleState),
}

/// Parses one line of the `@@ kernel` section.
pub fn parse_line(line: &str) -> Option<KernelRecord> {
    if let Some(rest) = line.strip_prefix("S ") {
        let (name, value) = rest.split_once('|')?;
        // `+VALUE` (the file's lines joined by spaces) or `-` for no such file.
        let value = value.strip_prefix('+').map(normalize_value);
        return Some(KernelRecord::Sysctl(name.to_string(), value));
    }
    if let Some(rest) = line.strip_prefix("M ") {
        let (name, state) = rest.split_once('|')?;
        let state = match state {
            "loaded" => ModuleState::Loaded,
            "builtin" => ModuleState::Builtin,
            _ => ModuleState::Absent,
        };
        return Some(KernelRecord::Module(name.to_string(), state));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_canonical() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(sysctl_name("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(module_name("br-netfilter"), "br_netfilter");
        assert_eq!(normalize_value("32768\t60999 \n"), "32768 60999");
    }

    #[test]
    fn parses_records() {
        assert_eq!(
            parse_line("S net.ipv4.ip_forward|+1 "),
            Some(KernelRecord::Sysctl(
                "net.ipv4.ip_forward".into(),
                Some("1".into())
            ))
        );
        assert_eq!(
            parse_line("S net.bridge.bridge-nf-call-iptables|-"),
            Some(KernelRecord::Sysctl(
                "net.bridge.bridge-nf-call-iptables".into(),
                None
            ))
        );
        assert_eq!(
            parse_line("M overlay|builtin"),
            Some(KernelRecord::Module("overlay".into(), ModuleState::Builtin))
        );
    }

    #[test]
    fn script_reads_this_machine() {
        let reads = [
            KernelRead::Sysctl("kernel.ostype".into()),
            KernelRead::Sysctl("no.such.key".into()),
            KernelRead::Module("no_such_module_xyz".into()),
            // A write-only one: its read fails, as if absent.
            KernelRead::Sysctl("net.ipv4.route.flush".into()),
        ];
        let refs: Vec<&KernelRead> = reads.iter().collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&refs))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let recs: Vec<KernelRecord> = text.lines().filter_map(parse_line).collect();
        assert_eq!(
            recs,
            vec![
                KernelRecord::Sysctl("kernel.ostype".into(), Some("Linux".into())),
                KernelRecord::Sysctl("no.such.key".into(), None),
                KernelRecord::Module("no_such_module_xyz".into(), ModuleState::Absent),
                KernelRecord::Sysctl("net.ipv4.route.flush".into(), None),
            ]
        );
        // Every sysctl value is read by the shell itself: no subshell.
        let sysctls: Vec<&KernelRead> = refs
            .iter()
            .copied()
            .filter(|r| matches!(r, KernelRead::Sysctl(_)))
            .collect();
        assert!(!script(&sysctls).contains("$("), "{}", script(&sysctls));
    }

    #[test]
    fn modules_are_loaded_built_in_or_absent_with_one_grep_for_all() {
        let dir = std::env::temp_dir().join(format!("bsctl-kmod-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sys/loaded_one")).unwrap();
        std::fs::write(
            dir.join("builtin"),
            "kernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br-netfilter.ko\n",
        )
        .unwrap();
        let reads = [
            KernelRead::Module("loaded-one".into()),
            KernelRead::Module("overlay".into()),
            KernelRead::Module("br_netfilter".into()),
            KernelRead::Module("overlayfs".into()),
            KernelRead::Module("no_such_module_xyz".into()),
        ];
        let refs: Vec<&KernelRead> = reads.iter().collect();
        let run = |script: &str| {
            let script = script
                .replace("/sys/module/", &format!("{}/sys/", dir.display()))
                .replace(
                    "/lib/modules/$bsctl_k/modules.builtin",
                    &dir.join("builtin").display().to_string(),
                );
            // A grep that counts its runs, ahead of the real one.
            std::fs::write(
                dir.join("grep"),
                format!(
                    "#!/bin/sh\necho x >> {}/greps\nexec {} \"$@\"\n",
                    dir.display(),
                    ["/usr/bin/grep", "/bin/grep"]
                        .into_iter()
                        .find(|p| std::path::Path::new(p).exists())
                        .unwrap()
                ),
            )
            .unwrap();
            std::fs::set_permissions(
                dir.join("grep"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            let _ = std::fs::remove_file(dir.join("greps"));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env(
                    "PATH",
                    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
                )
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let greps = std::fs::read_to_string(dir.join("greps"))
                .unwrap_or_default()
                .lines()
                .count();
            (
                text.lines().filter_map(parse_line).collect::<Vec<_>>(),
                greps,
            )
        };
        let (recs, greps) = run(&script(&refs));
        let m = |n: &str, s| KernelRecord::Module(n.into(), s);
        assert_eq!(
            recs,
            vec![
                m("loaded_one", ModuleState::Loaded),
                m("overlay", ModuleState::Builtin),
                m("br_netfilter", ModuleState::Builtin),
                m("overlayfs", ModuleState::Absent),
                m("no_such_module_xyz", ModuleState::Absent),
            ]
        );
        assert_eq!(greps, 1);
        // Every module in /sys/module: no grep at all.
        let (recs, greps) = run(&script(&refs[..1]));
        assert_eq!(recs, vec![m("loaded_one", ModuleState::Loaded)]);
        assert_eq!(greps, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
