//! Per-host files written before a host starts: its sshd_config and its private /etc/fstab.

use std::path::Path;

/// A Debian fstab as a fresh VM has it, swap included: the playbooks' `swap` module must find
/// an active swap line to comment out, as kubelet refuses to run with swap on by default.
pub(crate) const FSTAB: &str = "\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/vda1 during installation
UUID=3f1c7a52-5d2b-4e0a-9c1e-2b8f4d6a7e10 /               ext4    errors=remount-ro 0       1
# /boot/efi was on /dev/vda15 during installation
UUID=A1B2-C3D4  /boot/efi       vfat    umask=0077      0       1
/swapfile none swap sw 0 0
";

/// sshd_config arguments are quoted; `%` is a token prefix in AuthorizedKeysFile, so doubled.
fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

pub(crate) struct SshdPaths<'a> {
    pub(crate) host_key: &'a Path,
    pub(crate) pid_file: &'a Path,
    pub(crate) authorized_keys: &'a Path,
}

/// The config of one host's sshd. Root logs in by key only; limits are raised because the tool
/// opens hundreds of connections at once; LogLevel ERROR keeps the per-host log readable.
pub(crate) fn render(address: &str, port: u16, p: &SshdPaths) -> String {
    let authorized = quote(p.authorized_keys).replace('%', "%%");
    // AcceptEnv is left unset: its default accepts no variables (a literal `AcceptEnv none`
    // would accept a variable named "none").
    format!(
        "# Written by bootstrapctl lab up: the sshd of one lab host.\n\
         ListenAddress {address}:{port}\n\
         HostKey {host_key}\n\
         PidFile {pid_file}\n\
         AuthorizedKeysFile {authorized}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         LogLevel ERROR\n\
         MaxStartups 1000:30:2000\n\
         MaxSessions 100\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         Subsystem sftp internal-sftp\n",
        host_key = quote(p.host_key),
        pid_file = quote(p.pid_file),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_only_on_the_host_address() {
        let cfg = render(
            "127.10.0.3",
            2222,
            &SshdPaths {
                host_key: Path::new("/l/hosts/w/ssh_host_ed25519_key"),
                pid_file: Path::new("/l/hosts/w/sshd.pid"),
                authorized_keys: Path::new("/l/100%/authorized_keys"),
            },
        );
        assert!(cfg.contains("ListenAddress 127.10.0.3:2222\n"));
        assert!(cfg.contains("AuthorizedKeysFile \"/l/100%%/authorized_keys\"\n"));
        assert!(cfg.contains("MaxStartups 1000:30:2000\n"));
        assert!(FSTAB
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("swap") && !l.starts_with('#')));
    }
}
