//! glibc's per-thread cache of freed blocks (tcache) off, set before the process starts.
//!
//! Every host of a play runs on a thread of its own, and each glibc thread keeps up to 7
//! freed blocks of every size up to 1 KiB that no other thread can reuse: at 500 hosts that
//! was about 30 MiB of a first apply's 135 MiB peak, and with it off the run was no slower.
//! glibc takes that setting only from the GLIBC_TUNABLES environment variable, which the
//! dynamic loader reads before `main`. So the process starts itself once more with it
//! added, and then puts the variable back as it was, so that what the run starts (local
//! commands, ssh for a ProxyCommand) sees the user's environment. A GLIBC_TUNABLES that
//! already sets the cache is left as it is.

const TUNABLES: &str = "GLIBC_TUNABLES";
const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";
/// Set in the started process: the value GLIBC_TUNABLES had before (empty when unset).
const WAS: &str = "BOOTSTRAPCTL_GLIBC_TUNABLES_WAS";

/// Call while the process has one thread, before a command that runs hosts: it may replace
/// the process with itself (same pid, arguments, descriptors and environment plus the
/// tunable), or restore the environment in the process so started. Any failure leaves
/// things as they were.
pub fn exec_with_tcache_off() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;

        if let Some(was) = std::env::var_os(WAS) {
            std::env::remove_var(WAS);
            if was.is_empty() {
                std::env::remove_var(TUNABLES);
            } else {
                std::env::set_var(TUNABLES, was);
            }
            return;
        }
        let was = match std::env::var(TUNABLES) {
            Ok(v) if v.contains("glibc.malloc.tcache_count") => return,
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => String::new(),
            // Not text: neither added to nor put back, so left as it is.
            Err(std::env::VarError::NotUnicode(_)) => return,
        };
        let tunables = if was.is_empty() {
            TCACHE_OFF.to_string()
        } else {
            format!("{was}:{TCACHE_OFF}")
        };
        // The binary's own path, not /proc/self/exe: the process's name (what `ps` shows, and
        // what the host lock looks for in a local run) is taken from it.
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        // Returns only when the exec failed; the run goes on with glibc's defaults.
        let _ = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env(TUNABLES, tunables)
            .env(WAS, &was)
            .exec();
    }
}
