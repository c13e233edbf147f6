//! Running one install on a host: the script from `script`, with the artifact streamed from
//! the laptop on the command's stdin for an upload. Uploads have a parallelism bound of their
//! own (`UploadSlots`), apart from `--forks`: many hosts may plan and read at once while only a
//! few push large files through the laptop's uplink.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::script::install_script;
use super::{ArtifactOp, Source};
use crate::shell::quote_always;
use crate::transport::{Become, ExecOutput, Transport, TransportError};

/// A counting semaphore for uploads (ssh2 is blocking: each host waits on its own thread).
#[derive(Debug)]
pub struct UploadSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl UploadSlots {
    pub fn new(n: usize) -> Self {
        UploadSlots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().expect("upload slots");
        while *free == 0 {
            free = self.freed.wait(free).expect("upload slots");
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a UploadSlots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().expect("upload slots") += 1;
        self.0.freed.notify_one();
    }
}

/// Install `op` through `t`. `progress(sent, total)` follows an upload's bytes. A failed
/// install (wrong checksum, no curl or wget, a failed fetch) is a non-zero exit status with
/// the reason on stderr, not an error.
pub fn install(
    t: &mut dyn Transport,
    op: &ArtifactOp,
    become_: Option<&Become>,
    timeout: Duration,
    slots: &UploadSlots,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExecOutput, TransportError> {
    let command = format!("sh -c {}", quote_always(&install_script(op)));
    match &op.source {
        Source::Url { .. } => t.exec(&command, &[], become_, timeout),
        Source::Upload { local, size } => {
            let mut file = std::fs::File::open(local)
                .map_err(|e| TransportError::Other(format!("opening {local} to upload it: {e}")))?;
            let _slot = slots.acquire();
            let total = *size;
            t.exec_reader(&command, &mut file, become_, timeout, &mut |sent| {
                progress(sent, total)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{marker_path, Install};
    use crate::transport::local::LocalTransport;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bsctl-artifact-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn run(op: &ArtifactOp) -> ExecOutput {
        install(
            &mut LocalTransport::new(),
            op,
            None,
            Duration::from_secs(30),
            &UploadSlots::new(1),
            &mut |_, _| {},
        )
        .unwrap()
    }

    /// `src` uploaded as `target/kubelet` (mode 0755), expected to have `sha256`.
    fn kubelet_upload(
        src: &std::path::Path,
        target: &std::path::Path,
        sha256: String,
    ) -> ArtifactOp {
        ArtifactOp {
            name: "kubelet".into(),
            version: "v1.31.0".into(),
            sha256,
            source: Source::Upload {
                local: src.display().to_string(),
                size: std::fs::metadata(src).unwrap().len(),
            },
            install: Install::Binary {
                dest: target.join("kubelet").display().to_string(),
                mode: 0o755,
            },
        }
    }

    fn names(d: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_upload_is_verified_then_renamed_and_a_wrong_sum_installs_nothing() {
        let d = dir("bin");
        let src = d.join("src-kubelet");
        std::fs::write(&src, b"#!/bin/sh\necho kubelet\n").unwrap();
        let good = crate::artifact::sha256_file(&src).unwrap();
        let target = d.join("bin");
        let mut op = kubelet_upload(&src, &target, "0".repeat(64));
        let out = run(&op);
        assert_eq!(out.status, 1);
        let err = out.stderr_lossy();
        assert!(
            err.contains(&format!("expected sha256 {}, got {good}", "0".repeat(64))),
            "{err}"
        );
        assert!(err.contains("kubelet"), "{err}");
        assert_eq!(names(&target), Vec::<String>::new(), "no temp file left");
        op.sha256 = good;
        let out = run(&op);
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(crate::artifact::bytes_reported(&out.stdout), 23);
        assert_eq!(names(&target), ["kubelet"]);
        use std::os::unix::fs::PermissionsExt as _;
        let md = std::fs::metadata(target.join("kubelet")).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o755);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_tarball_unpacks_with_strip_and_writes_its_marker_last() {
        let d = dir("tar");
        let stage = d.join("stage/cri-dockerd");
        std::fs::create_dir_all(&stage).unwrap();
        std::fs::write(stage.join("cri-dockerd"), b"x").unwrap();
        let tgz = d.join("cri.tgz");
        let ok = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&tgz)
            .arg("-C")
            .arg(d.join("stage"))
            .arg("cri-dockerd")
            .status()
            .unwrap();
        assert!(ok.success());
        let target = d.join("usr-local-bin");
        let op = ArtifactOp {
            name: "cri_dockerd".into(),
            version: "0.3.15".into(),
            sha256: crate::artifact::sha256_file(&tgz).unwrap(),
            source: Source::Upload {
                local: tgz.display().to_string(),
                size: std::fs::metadata(&tgz).unwrap().len(),
            },
            install: Install::Tarball {
                dir: target.display().to_string(),
                strip: 1,
            },
        };
        let out = run(&op);
        assert!(out.success(), "{}", out.stderr_lossy());
        assert_eq!(
            names(&target),
            [".bootstrapctl-cri_dockerd.sha256", "cri-dockerd"]
        );
        let marker =
            std::fs::read_to_string(marker_path(&target.display().to_string(), "cri_dockerd"))
                .unwrap();
        assert_eq!(
            marker,
            format!("{}  cri_dockerd 0.3.15\ncri-dockerd\n", op.sha256)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_install_removes_what_interrupted_installs_left_in_its_directory_and_nothing_else() {
        let d = dir("stale");
        let src = d.join("src-kubelet");
        std::fs::write(&src, b"#!/bin/sh\n").unwrap();
        let target = d.join("bin");
        let stale_dir = target.join(".bootstrapctl.r0000000000.beef.d");
        std::fs::create_dir_all(stale_dir.join("sub")).unwrap();
        std::fs::write(stale_dir.join("sub/member"), b"x").unwrap();
        for f in [
            ".bootstrapctl.r0000000000.feed",   // another run's upload
            ".bootstrapctl.0123456789abcdef",   // an older version's
            ".bootstrapctl.r0000000000.beef.l", // a tarball's member list
            ".bootstrapctl-containerd.sha256",  // a marker, not a temp file
            "keep",
        ] {
            std::fs::write(target.join(f), b"token: secret").unwrap();
        }
        // Not of the unpack-directory shape: left alone.
        std::fs::create_dir(target.join(".bootstrapctl.adir")).unwrap();
        let op = kubelet_upload(&src, &target, crate::artifact::sha256_file(&src).unwrap());
        let out = run(&op);
        assert!(out.success(), "{}", out.stderr_lossy());
        let t = target.display().to_string();
        let mut removed = crate::engine::executor::stale_removed(&out.stdout);
        removed.sort();
        assert_eq!(
            removed,
            [
                format!("{t}/.bootstrapctl.0123456789abcdef"),
                format!("{t}/.bootstrapctl.r0000000000.beef.d"),
                format!("{t}/.bootstrapctl.r0000000000.beef.l"),
                format!("{t}/.bootstrapctl.r0000000000.feed"),
            ]
        );
        assert_eq!(
            names(&target),
            [
                ".bootstrapctl-containerd.sha256",
                ".bootstrapctl.adir",
                "keep",
                "kubelet"
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use crate::artifact::Install;
    use crate::transport::local::LocalTransport;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn uploads_never_exceed_their_bound() {
        let slots = std::sync::Arc::new(UploadSlots::new(2));
        let now = std::sync::Arc::new(AtomicUsize::new(0));
        let max = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, now, max) = (slots.clone(), now.clone(), max.clone());
                std::thread::spawn(move || {
                    let _slot = slots.acquire();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::yield_now();
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(max.load(Ordering::SeqCst) <= 2);
        assert_eq!(*slots.free.lock().unwrap(), 2, "every slot given back");
    }

    #[test]
    fn a_host_without_curl_or_wget_says_so_and_installs_nothing() {
        // A PATH holding the shell tools but neither curl nor wget.
        let d = std::env::temp_dir().join(format!("bsctl-nofetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["mkdir", "rm"] {
            let real = ["/bin", "/usr/bin"]
                .iter()
                .map(|p| std::path::Path::new(p).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
        }
        let target = d.join("target");
        let op = ArtifactOp {
            name: "kubelet".into(),
            version: "v1.32.0".into(),
            sha256: "a".repeat(64),
            source: Source::Url {
                url: "http://127.0.0.1:1/kubelet".into(),
            },
            install: Install::Binary {
                dest: target.join("kubelet").display().to_string(),
                mode: 0o755,
            },
        };
        let script = install_script(&op);
        let command = format!(
            "PATH={} /bin/sh -c {}",
            bin.display(),
            quote_always(&script)
        );
        let out = LocalTransport::new()
            .exec(&command, b"", None, Duration::from_secs(10))
            .unwrap();
        assert_eq!(out.status, 1);
        assert_eq!(
            out.stderr_lossy(),
            "bootstrapctl: cannot fetch http://127.0.0.1:1/kubelet: neither curl nor wget is installed on this host\n"
        );
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
