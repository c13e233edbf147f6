//! One run at a time per host: the first script of a run on a host takes a lock in
//! /run/bootstrapctl.lock naming the run and the SSH connection that holds it (its sshd
//! process, with the process start time so a reused pid is never mistaken for it). The lock
//! needs no release: it lapses when that connection ends, however the run ended. Several
//! connections of one run to the same machine (two inventory names for it) share it. Whatever
//! follows the lock in that script (the removal of stale temp files, see `reads.rs`) runs only
//! once the lock is this run's. Taking it starts no process: the file is a list of claims
//! that the shell appends to and reads (see the script).

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
  # The file holds claims, one line each, in the order they were appended: the first claim
  # whose connection lives (and is not withdrawn) holds the lock. An append is one write
  # under O_APPEND, so concurrent claims never interleave and each contender sees every claim
  # made before its own: no mutex, and nothing to remove. A contender appends only when no
  # other run holds the host; the holder then rewrites the file as its claim alone.
  bsctl_i=0 bsctl_claimed=""
  while :; do
    bsctl_w=" "
    while read -r bsctl_pid bsctl_start _; do
      [ "$bsctl_pid" = - ] && bsctl_w="$bsctl_w$bsctl_start "
    done 2>/dev/null < "$bsctl_l"
    bsctl_held="" bsctl_mine=""
    while read -r bsctl_pid bsctl_start bsctl_run bsctl_since _; do
      case $bsctl_pid$bsctl_start in *[!0-9]*|'') continue ;; esac
      case $bsctl_w in *" $bsctl_pid:$bsctl_start "*) continue ;; esac
      if [ "$bsctl_pid $bsctl_start" = "$bsctl_me" ] && [ "$bsctl_run" = BSCTL_RUN_ID ]; then
        bsctl_mine=1; break
      fi
      read -r bsctl_s < "/proc/$bsctl_pid/stat" 2>/dev/null || continue
      bsctl_s=${bsctl_s##*) }
      set -- $bsctl_s
      [ "${20}" = "$bsctl_start" ] || continue
      # A live claim of this run (another connection to the same machine) lets us share.
      if [ "$bsctl_run" = BSCTL_RUN_ID ]; then [ -n "$bsctl_claimed" ] && bsctl_mine=2; else bsctl_held="$bsctl_pid $bsctl_since"; fi
      break
    done 2>/dev/null < "$bsctl_l"
    if [ -n "$bsctl_held" ]; then
      # Lost a race to a claim made at the same time: ours is withdrawn, so that it never
      # holds the host while this connection lives on.
      [ -z "$bsctl_claimed" ] || printf '%s %s\n' - "${bsctl_me% *}:${bsctl_me#* }" >> "$bsctl_l"
      echo "@@ lock held $bsctl_held"; exit 0
    fi
    [ -z "$bsctl_mine" ] || break
    bsctl_i=$((bsctl_i+1))
    if [ "$bsctl_i" -gt 20 ]; then echo "@@ lock failed cannot append a claim to $bsctl_l"; exit 0; fi
    # No claim of ours in the file (none made yet, or the holder's rewrite raced it): claim.
    printf '%s %s %s\n' "$bsctl_me" BSCTL_RUN_ID BSCTL_SINCE >> "$bsctl_l" && bsctl_claimed=1
  done
  # Ours is the first live claim: the file becomes that claim alone (so that it stays short).
  [ "$bsctl_mine" = 2 ] || printf '%s %s %s\n' "$bsctl_me" BSCTL_RUN_ID BSCTL_SINCE >| "$bsctl_l"
  echo "@@ lock ok"
}
bsctl_lock
"#;

/// `Some(message)` when another run holds the host, or the lock could not be taken.
pub fn held(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    if let Some(why) = text.lines().find_map(|l| l.strip_prefix("@@ lock failed ")) {
        return Some(format!("the host's run lock could not be taken: {why}"));
    }
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
    use std::io::BufRead as _;
    use std::path::{Path, PathBuf};

    fn run_here(lock: &Path, script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.replace("/run/bootstrapctl.lock", &lock.display().to_string()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bsctl-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// pid 1's start time: a live process that is none of ours.
    fn init_start() -> String {
        let stat = std::fs::read_to_string("/proc/1/stat").unwrap();
        let after = &stat[stat.rfind(") ").unwrap() + 2..];
        after.split_whitespace().nth(19).unwrap().to_string()
    }

    #[test]
    fn the_lock_is_taken_kept_by_its_holder_and_lapses_with_it() {
        let dir = scratch("seq");
        let lock = dir.join("lock");
        // The same run takes it again; another run while the holder lives does not.
        let first = run_here(&lock, &acquire("run1"));
        assert!(first.contains("@@ lock ok"), "{first}");
        let again = run_here(&lock, &acquire("run1"));
        assert!(again.contains("@@ lock ok"), "{again}");
        // The holder's claim alone is left: the file does not grow run after run.
        let text = std::fs::read_to_string(&lock).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(" run1 "), "{text}");
        // A live holder that is not us: a claim naming pid 1 with its real start time, after
        // a dead one.
        let start = init_start();
        std::fs::write(
            &lock,
            format!("999999 1 dead 2025-01-01T00:00:00Z\n1 {start} other 2026-01-01T00:00:00Z\n"),
        )
        .unwrap();
        let blocked = run_here(&lock, &format!("{}echo after", acquire("run2")));
        assert!(
            blocked.contains("@@ lock held 1 2026-01-01T00:00:00Z"),
            "{blocked}"
        );
        assert!(!blocked.contains("after"), "the script went on: {blocked}");
        assert!(held(blocked.as_bytes()).unwrap().contains("sshd pid 1"));
        // A blocked run claims nothing (the file is as it was).
        assert_eq!(std::fs::read_to_string(&lock).unwrap().lines().count(), 2);
        // The same pid with another start time is a reused pid: not a holder; nor is a
        // withdrawn claim, nor a line that is no claim.
        std::fs::write(&lock, "1 12345 other 2026-01-01T00:00:00Z\n").unwrap();
        assert!(run_here(&lock, &acquire("run2")).contains("@@ lock ok"));
        std::fs::write(
            &lock,
            format!("1 {start} other 2026-01-01T00:00:00Z\n- 1:{start}\n1x {start} junk\n"),
        )
        .unwrap();
        assert!(run_here(&lock, &acquire("run3")).contains("@@ lock ok"));
        // Nothing but the lock file is made, and the mutex an older version used (a file, or
        // a directory) is not waited for.
        std::fs::create_dir(dir.join("lock.d")).unwrap();
        assert!(run_here(&lock, &acquire("run4")).contains("@@ lock ok"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["lock", "lock.d"]);
        // A lock file that cannot be written is an error, not a lock.
        let blocked = run_here(&dir.join("lock.d"), &acquire("run5"));
        assert!(
            held(blocked.as_bytes())
                .unwrap()
                .contains("could not be taken"),
            "{blocked}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A contender for the lock at `lock`, whose connection is a live process named
    /// `bootstrapctl` (`wrapper`, a link to dash) running `shell` on the lock script; it holds
    /// on until `release` exists.
    fn contender(
        wrapper: &Path,
        shell: &str,
        lock: &Path,
        run: &str,
        release: &Path,
    ) -> std::process::Child {
        let script = format!(
            "{}i=0; until [ -e {r} ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done\n",
            acquire(run).replace("/run/bootstrapctl.lock", &lock.display().to_string()),
            r = release.display()
        );
        std::process::Command::new(wrapper)
            .args(["-c", "$0 -c \"$1\"; :", shell, &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn first_line(child: &mut std::process::Child) -> String {
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    }

    #[test]
    fn of_runs_contending_at_once_exactly_one_takes_the_lock_and_the_losers_never_hold_it() {
        let mut shells = vec!["/bin/sh".to_string()];
        if let Ok(bb) = which("busybox") {
            shells.push(format!("{bb} sh"));
        }
        for (n, shell) in shells.iter().enumerate() {
            let dir = scratch(&format!("race{n}"));
            let wrapper = dir.join("bootstrapctl");
            std::os::unix::fs::symlink(
                std::fs::canonicalize("/bin/dash").unwrap_or_else(|_| "/bin/sh".into()),
                &wrapper,
            )
            .unwrap();
            let lock = dir.join("lock");
            let mut kids: Vec<_> = (0..8)
                .map(|i| {
                    let release = dir.join(format!("release{i}"));
                    (
                        contender(&wrapper, shell, &lock, &format!("run{i}"), &release),
                        release,
                    )
                })
                .collect();
            let said: Vec<String> = kids.iter_mut().map(|(c, _)| first_line(c)).collect();
            let winners: Vec<usize> = (0..said.len())
                .filter(|&i| said[i].starts_with("@@ lock ok"))
                .collect();
            assert_eq!(winners.len(), 1, "{shell}: {said:?}");
            assert!(
                said.iter()
                    .all(|l| l.starts_with("@@ lock ok") || l.starts_with("@@ lock held ")),
                "{shell}: {said:?}"
            );
            // Once the winner's connection is gone, the next run takes the host, though the
            // losers' connections live on.
            let (mut winner, release) = kids.remove(winners[0]);
            std::fs::write(&release, "").unwrap();
            winner.wait().unwrap();
            let late_release = dir.join("release-late");
            let mut late = contender(&wrapper, shell, &lock, "late", &late_release);
            let line = first_line(&mut late);
            assert!(line.starts_with("@@ lock ok"), "{shell}: {line}");
            std::fs::write(&late_release, "").unwrap();
            late.wait().unwrap();
            for (mut c, release) in kids {
                std::fs::write(&release, "").unwrap();
                c.wait().unwrap();
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    fn which(name: &str) -> Result<String, ()> {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
            .ok_or(())
    }
}
