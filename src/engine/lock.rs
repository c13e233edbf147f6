//! One run at a time per host: the first script of a run on a host takes a lock in
//! /run/bootstrapctl.lock naming the run and the SSH connection that holds it (its sshd
//! process, with the process start time so a reused pid is never mistaken for it). The lock
//! needs no release: it lapses when that connection ends, however the run ended. Several
//! connections of one run to the same machine (two inventory names for it) share it. Whatever
//! follows the lock in that script (the removal of stale temp files, see `reads.rs`) runs only
//! once the lock is this run's.

/// The script that takes the lock for run `run_id`: prepended to the first script a run sends
/// to a host. Prints `@@ lock ok` or `@@ lock held PID SINCE` and then stops the script.
pub fn acquire(run_id: &str) -> String {
    // The run's start time comes from here: no `date` process on every host.
    let since = crate::k8s::token::format_rfc3339(std::time::SystemTime::now());
    ACQUIRE
        .replace("BSCTL_RUN_ID", run_id)
        .replace("BSCTL_SINCE", &since)
}

const ACQUIRE: &str = r#"bsctl_lock() {
  bsctl_l=/run/bootstrapctl.lock
  # Our connection: the nearest sshd (or, for local runs, bootstrapctl) above this shell.
  bsctl_p=$$ bsctl_me=""
  while [ "$bsctl_p" -gt 1 ] 2>/dev/null; do
    read -r bsctl_c < "/proc/$bsctl_p/comm" || break
    read -r bsctl_s < "/proc/$bsctl_p/stat" || break
    bsctl_s=${bsctl_s##*) }
    set -- $bsctl_s
    case $bsctl_c in sshd*|bootstrapctl) bsctl_me="$bsctl_p ${20}"; break ;; esac
    bsctl_p=$2
  done
  [ -n "$bsctl_me" ] || bsctl_me="$PPID 0"
  bsctl_i=0
  # The mutex is a file created exclusively (noclobber) by the shell itself: no process.
  set -C
  until { true; } 2>/dev/null >"$bsctl_l.d"; do
    bsctl_i=$((bsctl_i+1))
    # A run that died inside these few lines leaves the file (an older version, a
    # directory): take it over.
    if [ "$bsctl_i" -ge 50 ]; then rm -f "$bsctl_l.d" 2>/dev/null || rmdir "$bsctl_l.d"; fi
    sleep 0.1
  done
  set +C
  bsctl_held=""
  if read -r bsctl_pid bsctl_start bsctl_run bsctl_since < "$bsctl_l" 2>/dev/null && [ "$bsctl_run" != BSCTL_RUN_ID ]; then
    if read -r bsctl_s < "/proc/$bsctl_pid/stat" 2>/dev/null; then
      bsctl_s=${bsctl_s##*) }
      set -- $bsctl_s
      [ "${20}" = "$bsctl_start" ] && bsctl_held="$bsctl_pid $bsctl_since"
    fi
  fi
  if [ -z "$bsctl_held" ]; then
    # Inside the mkdir mutex, so no reader sees it half-written.
    printf '%s %s %s\n' "$bsctl_me" BSCTL_RUN_ID BSCTL_SINCE > "$bsctl_l"
  fi
  rm -f "$bsctl_l.d"
  if [ -n "$bsctl_held" ]; then echo "@@ lock held $bsctl_held"; exit 0; fi
  echo "@@ lock ok"
}
bsctl_lock
"#;

/// `Some(message)` when another run holds the host.
pub fn held(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("@@ lock held "))?;
    let mut f = line["@@ lock held ".len()..].split_whitespace();
    let pid = f.next().unwrap_or("?");
    let since = f.next().unwrap_or("?");
    Some(format!(
        "another bootstrapctl run is changing this host (its SSH connection, sshd pid {pid}, took the lock at {since}); try again when it has finished"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_here(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.replace("/run/bootstrapctl.lock", &lock_path()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn lock_path() -> String {
        std::env::temp_dir()
            .join(format!("bsctl-lock-test-{}", std::process::id()))
            .display()
            .to_string()
    }

    #[test]
    fn the_lock_is_taken_kept_by_its_holder_and_lapses_with_it() {
        // The same run takes it again; another run while the holder lives does not.
        let first = run_here(&acquire("run1"));
        assert!(first.contains("@@ lock ok"), "{first}");
        let again = run_here(&acquire("run1"));
        assert!(again.contains("@@ lock ok"), "{again}");
        // A live holder that is not us: point the lock at pid 1 with its real start time.
        let stat = std::fs::read_to_string("/proc/1/stat").unwrap();
        let after = &stat[stat.rfind(") ").unwrap() + 2..];
        let start = after.split_whitespace().nth(19).unwrap();
        std::fs::write(
            lock_path(),
            format!("1 {start} other 2026-01-01T00:00:00Z\n"),
        )
        .unwrap();
        let blocked = run_here(&format!("{}echo after", acquire("run2")));
        assert!(
            blocked.contains("@@ lock held 1 2026-01-01T00:00:00Z"),
            "{blocked}"
        );
        assert!(!blocked.contains("after"), "the script went on: {blocked}");
        assert!(held(blocked.as_bytes()).unwrap().contains("sshd pid 1"));
        // The same pid with another start time is a reused pid: not a holder.
        std::fs::write(lock_path(), "1 12345 other 2026-01-01T00:00:00Z\n").unwrap();
        assert!(run_here(&acquire("run2")).contains("@@ lock ok"));
        // The mutex is gone once the lock is taken; one a dead run left (a file, or the
        // directory of an older version) is taken over.
        let mutex = format!("{}.d", lock_path());
        assert!(!std::path::Path::new(&mutex).exists());
        std::fs::create_dir(&mutex).unwrap();
        assert!(run_here(&acquire("run3")).contains("@@ lock ok"));
        std::fs::write(&mutex, "").unwrap();
        assert!(run_here(&acquire("run3")).contains("@@ lock ok"));
        assert!(!std::path::Path::new(&mutex).exists());
        let _ = std::fs::remove_file(lock_path());
    }
}
