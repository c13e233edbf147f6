//! Starts one host: sshd exec'd in a fresh mount + UTS namespace with the host's private mounts.
//!
//! The namespace is set up between fork and exec (no `unshare`/`mount` helper processes): a
//! 200-host lab would otherwise spawn thousands of short processes, and the forked pid becomes
//! sshd's pid, which is what lab.json records.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(crate) const SSHD: &str = "/usr/sbin/sshd";

/// Paths that get an empty private tmpfs in every host: what the playbooks write, so a lab host
/// starts like a fresh node and the real machine is never touched.
pub(crate) const TMPFS_DIRS: &[&str] = &[
    "/etc/kubernetes",
    "/etc/systemd/system",
    "/var/lib/kubelet",
    "/etc/containerd",
    "/etc/docker",
];
/// Bare workers (`LabSpec::bare`) also get these, empty: where binaries are installed.
pub(crate) const BARE_TMPFS_DIRS: &[&str] = &["/usr/local", "/opt"];
/// Made inside the bare tmpfs dirs, as a fresh Debian has them (PATH, the CNI plugin dir, and
/// the unit directory where the lab's package units appear).
const BARE_SUBDIRS: &[&str] = &[
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/local/lib",
    "/usr/local/lib/systemd",
    "/opt/cni",
    "/opt/cni/bin",
];

/// Where the host's state dir appears inside it (the systemctl stand-in keeps unit state here).
pub(crate) const STATE_MOUNT: &str = "/var/lib/bootstrapctl-lab";
/// Where the host's log dir appears inside it.
pub(crate) const LOG_MOUNT: &str = "/var/log/lab";

/// One mount(2) call, with its arguments prepared as C strings before the fork.
struct Mount {
    source: CString,
    target: CString,
    fstype: Option<CString>,
    flags: libc::c_ulong,
    data: Option<CString>,
    /// Bind mounts made read-only need a second, remount call.
    remount_ro: bool,
    /// Create the target first (inside a tmpfs just mounted it cannot exist yet).
    create: Create,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    Nothing,
    Dir,
    File,
}

impl Mount {
    /// A directory to make, not a mount (the bare hosts' subdirectories).
    fn only_create(&self) -> bool {
        self.fstype.is_none() && self.flags == 0
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NUL in path {}", p.display()),
        )
    })
}

/// Everything one host needs mounted, in host-side paths.
pub(crate) struct HostMounts {
    pub(crate) name: String,
    /// The host's writable layer over the real /etc (its fstab and hostname are already in
    /// it): files in /etc can be replaced by rename, as on a real host, which a bind-mounted
    /// file would refuse with EBUSY.
    pub(crate) etc_upper: PathBuf,
    pub(crate) etc_work: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    /// (file or dir on the real machine, where it appears in the host) for the systemctl stand-in.
    pub(crate) systemctl_binds: Vec<(PathBuf, PathBuf)>,
    /// A bare worker: private empty `/usr/local` and `/opt` (see `BARE_TMPFS_DIRS`).
    pub(crate) bare: bool,
    /// (file or dir in the host's state dir, where it appears): the host's own kernel view,
    /// writable (see `kernel_view`).
    pub(crate) kernel_binds: Vec<(PathBuf, PathBuf)>,
    /// More private tmpfs for this host (what real components write; see `real`).
    pub(crate) extra_tmpfs: Vec<&'static str>,
}

fn plan(m: &HostMounts) -> io::Result<Vec<Mount>> {
    let mut out = Vec::new();
    let overlay = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        m.etc_upper.display(),
        m.etc_work.display()
    );
    out.push(Mount {
        source: CString::new(format!("lab-{}", m.name))?,
        target: CString::new("/etc")?,
        fstype: Some(CString::new("overlay")?),
        flags: 0,
        data: Some(CString::new(overlay)?),
        remount_ro: false,
        create: Create::Nothing,
    });
    out.push(Mount {
        source: CString::new(format!("lab-{}-run", m.name))?,
        target: CString::new("/run")?,
        fstype: Some(CString::new("tmpfs")?),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: Some(CString::new("mode=0755,size=64m")?),
        remount_ro: false,
        create: Create::Nothing,
    });
    for dir in TMPFS_DIRS.iter().chain(&m.extra_tmpfs) {
        out.push(Mount {
            source: CString::new(format!("lab-{}", m.name))?,
            target: cstr(Path::new(dir))?,
            fstype: Some(CString::new("tmpfs")?),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: Some(CString::new("mode=0755,size=256m")?),
            remount_ro: false,
            create: Create::Nothing,
        });
    }
    if m.bare {
        for dir in BARE_TMPFS_DIRS {
            out.push(Mount {
                source: CString::new(format!("lab-{}-bare", m.name))?,
                target: cstr(Path::new(dir))?,
                fstype: Some(CString::new("tmpfs")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(CString::new("mode=0755,size=512m")?),
                remount_ro: false,
                create: Create::Nothing,
            });
        }
        for dir in BARE_SUBDIRS {
            // Only created, never mounted (`Mount::only_create`).
            out.push(Mount {
                source: cstr(Path::new(dir))?,
                target: cstr(Path::new(dir))?,
                fstype: None,
                flags: 0,
                data: None,
                remount_ro: false,
                create: Create::Dir,
            });
        }
    }
    let bare = m.bare;
    let under_bare = |target: &Path| bare && BARE_TMPFS_DIRS.iter().any(|d| target.starts_with(d));
    let mut bind = |src: &Path, target: &Path, ro: bool| -> io::Result<()> {
        out.push(Mount {
            source: cstr(src)?,
            target: cstr(target)?,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
            remount_ro: ro,
            create: if under_bare(target) {
                if src.is_dir() {
                    Create::Dir
                } else {
                    Create::File
                }
            } else {
                Create::Nothing
            },
        });
        Ok(())
    };
    bind(&m.state_dir, Path::new(STATE_MOUNT), false)?;
    bind(&m.log_dir, Path::new(LOG_MOUNT), false)?;
    for (src, target) in &m.systemctl_binds {
        // Read-only: a playbook writing "systemctl" must not overwrite the bootstrapctl binary.
        bind(src, target, true)?;
    }
    for (src, target) in &m.kernel_binds {
        bind(src, target, false)?;
    }
    Ok(out)
}

/// Forks, enters new mount + UTS namespaces, mounts, sets the hostname and execs
/// `sshd -D -e -f config`. sshd's stderr goes to `log`. Returns the running child.
pub(crate) fn spawn_sshd(m: &HostMounts, config: &Path, log: File) -> io::Result<Child> {
    let mounts = plan(m)?;
    let hostname = m.name.clone().into_bytes();
    let root = CString::new("/")?;
    let run_sshd = CString::new("/run/sshd")?;
    let mut cmd = Command::new(SSHD);
    cmd.arg("-D").arg("-e").arg("-f").arg(config);
    // sshd and every session get a clean environment: nothing of the caller's leaks into hosts.
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let setup = move || -> io::Result<()> {
        // Only syscalls below: this runs in the forked child of a possibly multi-threaded parent.
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        unsafe {
            // Own session: a Ctrl-C meant for the CLI that ran `lab up` must not stop the lab.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            // Private propagation, so nothing mounted here leaks back to the real machine.
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::sethostname(
                hostname.as_ptr() as *const libc::c_char,
                hostname.len(),
            ))?;
            for mt in &mounts {
                match mt.create {
                    Create::Nothing => {}
                    Create::Dir => {
                        if libc::mkdir(mt.target.as_ptr(), 0o755) != 0
                            && *libc::__errno_location() != libc::EEXIST
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Create::File => {
                        let fd = libc::open(
                            mt.target.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        libc::close(fd);
                    }
                }
                if mt.only_create() {
                    continue;
                }
                let fstype = mt.fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
                let data = mt
                    .data
                    .as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void);
                check(libc::mount(
                    mt.source.as_ptr(),
                    mt.target.as_ptr(),
                    fstype,
                    mt.flags,
                    data,
                ))?;
                if mt.remount_ro {
                    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
                    check(libc::mount(
                        std::ptr::null(),
                        mt.target.as_ptr(),
                        std::ptr::null(),
                        flags,
                        std::ptr::null(),
                    ))?;
                }
            }
            // /run is private too (each host has its own locks and runtime files); sshd
            // needs its privilege separation directory there.
            check(libc::mkdir(run_sshd.as_ptr(), 0o755))?;
        }
        Ok(())
    };
    unsafe { cmd.pre_exec(setup) };
    cmd.spawn()
}
