//! containerd STAND-IN for the lab (the stand-in binary run as `containerd`): it listens on the
//! gRPC socket that `--config` (default `/etc/containerd/config.toml`) names in `[grpc] address`
//! (default `/run/containerd/containerd.sock`), as a node with containerd installed has, so
//! that a playbook can wait for the runtime's socket before it starts the kubelet. It accepts
//! connections and closes them: it speaks no CRI and runs no containers (the kubelet stand-in
//! never calls the runtime). On SIGTERM it removes its socket and exits, as containerd does.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";
const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

/// `address` of the `[grpc]` table of a containerd config (TOML, only what that key needs).
fn grpc_address(config: &str) -> Option<String> {
    let mut in_grpc = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_grpc = line == "[grpc]";
            continue;
        }
        if !in_grpc {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "address" {
                let v = v.trim().trim_matches('"').to_string();
                return (!v.is_empty()).then_some(v);
            }
        }
    }
    None
}

fn config_path(args: &[String]) -> PathBuf {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--config=") {
            return v.into();
        }
        if a == "--config" || a == "-c" {
            if let Some(v) = it.next() {
                return v.into();
            }
        }
    }
    DEFAULT_CONFIG.into()
}

pub(crate) fn containerd_main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("containerd: bootstrapctl lab STAND-IN: listens on the gRPC socket of --config's [grpc] address; no CRI, no containers");
        return 0;
    }
    let config = config_path(args);
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    let socket = PathBuf::from(grpc_address(&text).unwrap_or_else(|| DEFAULT_SOCKET.into()));
    if let Some(dir) = socket.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("containerd (lab stand-in): creating {}: {e}", dir.display());
            return 1;
        }
    }
    // A socket left by a killed containerd is replaced, as containerd does at start.
    let _ = std::fs::remove_file(&socket);
    // SIGTERM is waited for by a thread, so the socket goes away with the process.
    // SAFETY: the mask is set while the process is single-threaded; threads inherit it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "containerd (lab stand-in): listening on {}: {e}",
                socket.display()
            );
            return 1;
        }
    };
    eprintln!(
        "containerd (bootstrapctl lab STAND-IN): serving on {} (config {}); no CRI, no containers",
        socket.display(),
        config.display()
    );
    let sock = socket.clone();
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` holds the signals blocked above.
        unsafe { libc::sigwait(&set, &mut sig) };
        let _ = std::fs::remove_file(&sock);
        std::process::exit(0);
    });
    for conn in listener.incoming() {
        drop(conn);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_from_the_grpc_table_only() {
        let cfg = "version = 2\n[ttrpc]\n  address = \"/x.ttrpc\"\n[grpc]\n  address = \"/run/c/c.sock\"\n";
        assert_eq!(grpc_address(cfg).as_deref(), Some("/run/c/c.sock"));
        assert_eq!(
            grpc_address("version = 2\n[plugins.x]\naddress = \"/y\"\n"),
            None
        );
        assert_eq!(
            config_path(&["--config".into(), "/c.toml".into()]),
            PathBuf::from("/c.toml")
        );
        assert_eq!(config_path(&[]), PathBuf::from(DEFAULT_CONFIG));
    }
}
