//! The stand-in entry point: which stand-in argv[0] names, running it, and which binary
//! `lab up` mounts as the stand-ins (the slim one of the same build, else the caller itself).

use std::path::{Path, PathBuf};

/// Identifies this build of the lab; `lab up` mounts a `bootstrapctl-standin` only from the
/// same build (see `standin_binary`).
pub const BUILD_ID: &str = env!("BOOTSTRAPCTL_LAB_BUILD_ID");

/// Command-line tools die quietly on a closed pipe (`journalctl -u x | head`) instead of
/// panicking in println!: SIGPIPE back to its default. Only for short-lived commands that write
/// to stdout: a server keeps Rust's SIG_IGN, since rustls writes with writev(2), which raises
/// SIGPIPE when a client has gone (send(2) with MSG_NOSIGNAL would not), and that would kill it.
/// Call before any thread starts.
fn die_quietly_on_closed_pipe() {
    // SAFETY: changes a signal disposition while the process is still single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The stand-in an argv[0] names (`systemctl`, `journalctl`, `kube-apiserver`,
/// `kube-controller-manager`, `kubelet`, `containerd`), by basename; None for anything else (bootstrapctl).
pub(crate) fn invoked_as(argv0: &str) -> Option<&'static str> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    [
        "systemctl",
        "journalctl",
        "kube-apiserver",
        "kube-controller-manager",
        "kubelet",
        "sysctl",
        "modprobe",
        "containerd",
        crate::realnet::NETNS_ARGV0,
    ]
    .into_iter()
    .find(|n| *n == base)
}

/// Runs the stand-in that `args[0]` names (systemctl, journalctl, kube-apiserver,
/// kube-controller-manager, kubelet); `None` when it names none of them.
pub fn standin_main(args: &[String]) -> Option<i32> {
    let argv0 = args.first()?;
    let rest = &args[1..];
    // systemctl and journalctl are commands (`journalctl -u x | head`); the kube-* stand-ins
    // are servers and clients of long-lived connections, which keep SIGPIPE ignored.
    match invoked_as(argv0)? {
        "systemctl" => {
            die_quietly_on_closed_pipe();
            Some(crate::systemctl::systemctl_main(rest))
        }
        "journalctl" => {
            die_quietly_on_closed_pipe();
            Some(crate::journalctl::journalctl_main(rest))
        }
        "sysctl" => {
            die_quietly_on_closed_pipe();
            Some(crate::kernel_standin::sysctl_main(rest))
        }
        "modprobe" => {
            die_quietly_on_closed_pipe();
            Some(crate::kernel_standin::modprobe_main(rest))
        }
        "kube-apiserver" => Some(crate::apiserver::main(rest)),
        "kube-controller-manager" => Some(crate::kcm::kcm_main(rest)),
        "kubelet" => Some(crate::kubelet::kubelet_main(rest)),
        "containerd" => Some(crate::containerd::containerd_main(rest)),
        crate::realnet::NETNS_ARGV0 => Some(crate::realnet::netns_main(rest)),
        _ => None,
    }
}

/// The binary to bind-mount as the stand-ins: `bootstrapctl-standin` beside `self_exe` when it
/// comes from the same build (it says so by its build id), else `self_exe` itself, which holds
/// the same stand-ins. A stand-in from another build is never used: its state format or flags
/// could differ from what this build's tests and playbooks expect.
pub fn standin_binary(self_exe: &Path) -> PathBuf {
    let standin = self_exe.with_file_name("bootstrapctl-standin");
    let same_build = std::process::Command::new(&standin)
        .arg("--bootstrapctl-build-id")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == BUILD_ID.as_bytes());
    if same_build {
        standin
    } else {
        self_exe.to_path_buf()
    }
}
