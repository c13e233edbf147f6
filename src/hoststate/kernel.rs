//! Kernel state a host's tasks read: sysctl values (from /proc/sys, as `sysctl -n` reads
//! them) and whether a kernel module is loaded (its /sys/module entry, or built in). The
//! read-script fragment and its pure parser live here; `HostView` holds the results.

use crate::shell::quote as sh_quote;

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
/// subshell); one `grep`
/// of modules.builtin per module that /sys/module does not show.
pub fn script(reads: &[&KernelRead]) -> String {
    if reads.is_empty() {
        return String::new();
    }
    let mut s = String::from("echo '@@ kernel'\n");
    if reads.iter().any(|r| matches!(r, KernelRead::Module(_))) {
        s.push_str("read -r bsctl_k < /proc/sys/kernel/osrelease\n");
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
                    "if [ -d /sys/module/{q} ]; then echo 'M {m}|loaded'; \
                     elif grep -qE '/({m}|{dash})\\.ko' \"/lib/modules/$bsctl_k/modules.builtin\" 2>/dev/null; \
                     then echo 'M {m}|builtin'; else echo 'M {m}|absent'; fi\n"
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
        // Every value is read by the shell itself: no subshell per sysctl.
        assert!(!script(&refs).contains("$("), "{}", script(&refs));
    }
}
