//! Each lab host's own view of the kernel. The hosts share this machine's kernel (and its
//! network namespace), so nothing run in them may change the machine's settings: the host's
//! state dir holds regular files that are bind-mounted over the /proc/sys files playbooks and
//! preflight checks read, a directory over /sys/module (which modules are "loaded"), and one
//! over /sys/class (its product_uuid and network interfaces' MACs). The `sysctl` and `modprobe`
//! stand-ins (`kernel_standin`) change only these files.

use std::fs;
use std::path::{Path, PathBuf};

use super::LabError;

/// Sysctls each host gets its own copy of; all start at 0, as on a host where forwarding was
/// never enabled and br_netfilter never loaded. Only those that exist on this machine are
/// covered (a bind mount needs its target), so on a kernel without them the key is absent in
/// every host, as it is on the machine.
pub(crate) const VIEW_SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

/// Inside a host, relative to its state mount.
pub(crate) const PROC_SYS_DIR: &str = "kernel/proc-sys";
pub(crate) const SYS_MODULE_DIR: &str = "kernel/sys-module";
pub(crate) const SYS_CLASS_DIR: &str = "kernel/sys-class";

/// A stable per-host value derived from the lab's dir and a name: hosts of one lab differ,
/// and a host keeps its identity across `lab up`s of the same lab.
fn digest(seed: &str) -> [u8; 16] {
    // FNV-1a, twice with different offsets: identity only, not security.
    let mut out = [0u8; 16];
    for (half, offset) in [(0usize, 0xcbf29ce484222325u64), (8, 0x84222325cbf29ce4)] {
        let mut h = offset;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        out[half..half + 8].copy_from_slice(&h.to_be_bytes());
    }
    out
}

/// An RFC 4122 version-4-shaped UUID, upper case as DMI prints it.
fn product_uuid(seed: &str) -> String {
    let mut b = digest(seed);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A locally administered unicast MAC.
fn mac(seed: &str) -> String {
    let b = digest(seed);
    let mut m = [0x02u8, b[1], b[2], b[3], b[4], b[5]];
    m[0] = (b[0] & 0xfc) | 0x02;
    m.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(LabError::io(format!("creating {}", d.display())))?;
    }
    fs::write(path, text).map_err(LabError::io(format!("writing {}", path.display())))
}

/// Lays out a host's kernel view in `state_dir` (fresh: forwarding off, no module loaded) and
/// returns the (source, target) bind mounts that show it inside the host. `uuid_seed` names
/// the host whose product_uuid this one gets (itself, unless the lab gives two hosts one).
pub(crate) fn prepare(
    lab_dir: &Path,
    state_dir: &Path,
    host: &str,
    uuid_seed: &str,
) -> Result<Vec<(PathBuf, PathBuf)>, LabError> {
    let kernel = state_dir.join("kernel");
    if kernel.exists() {
        fs::remove_dir_all(&kernel)
            .map_err(LabError::io(format!("clearing {}", kernel.display())))?;
    }
    let mut binds = Vec::new();
    for key in VIEW_SYSCTLS {
        let real = Path::new("/proc/sys").join(key);
        if real.is_file() {
            let own = state_dir.join(PROC_SYS_DIR).join(key);
            write(&own, "0\n")?;
            binds.push((own, real));
        }
    }
    let modules = state_dir.join(SYS_MODULE_DIR);
    fs::create_dir_all(&modules)
        .map_err(LabError::io(format!("creating {}", modules.display())))?;
    if Path::new("/sys/module").is_dir() {
        binds.push((modules, PathBuf::from("/sys/module")));
    }
    let class = state_dir.join(SYS_CLASS_DIR);
    let lab = lab_dir.display().to_string();
    write(
        &class.join("dmi/id/product_uuid"),
        &format!("{}\n", product_uuid(&format!("{lab}/{uuid_seed}"))),
    )?;
    write(
        &class.join("net/eth0/address"),
        &format!("{}\n", mac(&format!("{lab}/{host}/eth0"))),
    )?;
    // A physical interface has a `device` link in sysfs; the loopback has none.
    fs::create_dir_all(class.join("net/eth0/device"))
        .map_err(LabError::io(format!("creating {}", class.display())))?;
    write(&class.join("net/lo/address"), "00:00:00:00:00:00\n")?;
    if Path::new("/sys/class").is_dir() {
        binds.push((class, PathBuf::from("/sys/class")));
    }
    Ok(binds)
}

const SYSCTL_PATHS: &[&str] = &[
    "/usr/sbin/sysctl",
    "/sbin/sysctl",
    "/usr/bin/sysctl",
    "/bin/sysctl",
];
const MODPROBE_PATHS: &[&str] = &[
    "/usr/sbin/modprobe",
    "/sbin/modprobe",
    "/usr/bin/modprobe",
    "/bin/modprobe",
];
/// Where a missing tool's stand-in goes: first on a host's PATH. The mountpoint created on
/// the machine is an empty file without execute bits, which the machine's shells pass over.
const FALLBACK_DIR: &str = "/usr/local/sbin";

/// The stand-in binary over every `sysctl` and `modprobe` of the machine (deduplicated by
/// inode: /sbin is often /usr/sbin), or over an empty mountpoint in FALLBACK_DIR when the
/// machine has none (a kernel without modules often comes without kmod).
pub(crate) fn standin_binds(standin_exe: &Path) -> Result<Vec<(PathBuf, PathBuf)>, LabError> {
    use std::os::unix::fs::MetadataExt;
    let mut binds = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (tool, paths) in [("sysctl", SYSCTL_PATHS), ("modprobe", MODPROBE_PATHS)] {
        let before = binds.len();
        for p in paths {
            if let Ok(md) = fs::metadata(p) {
                if md.is_file() && seen.insert((md.dev(), md.ino())) {
                    binds.push((standin_exe.to_path_buf(), PathBuf::from(p)));
                }
            }
        }
        if binds.len() == before {
            let target = Path::new(FALLBACK_DIR).join(tool);
            if target.symlink_metadata().is_err() {
                fs::create_dir_all(FALLBACK_DIR)
                    .map_err(LabError::io(format!("creating {FALLBACK_DIR}")))?;
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&target)
                    .map_err(LabError::io(format!(
                        "creating mountpoint {}",
                        target.display()
                    )))?;
            }
            binds.push((standin_exe.to_path_buf(), target));
        }
    }
    Ok(binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_and_distinct() {
        assert_eq!(product_uuid("a/w1"), product_uuid("a/w1"));
        assert_ne!(product_uuid("a/w1"), product_uuid("a/w2"));
        let u = product_uuid("a/w1");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let m = mac("a/w1/eth0");
        assert_eq!(m.len(), 17);
        let first = u8::from_str_radix(&m[0..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "locally administered unicast: {m}");
    }
}
