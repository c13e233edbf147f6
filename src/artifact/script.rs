//! The POSIX sh script that installs one artifact on a host, atomically: the bytes go to a
//! temp file in the target directory (from stdin for an upload, through curl or wget for a
//! URL), the host checks their sha256, and only then is the binary renamed into place or the
//! tarball unpacked (into a temp directory beside the target, each member renamed into place,
//! the marker written last). On any failure the temp files go and nothing is installed.

use super::{marker_path, ArtifactOp, Install, Source};
use crate::engine::executor::{random_suffix, run_tag, stale_temps_script, TEMP_PREFIX};
use crate::shell::quote_always as q;

/// The script for `op`; it prints `@@ bytes N` once it holds the N bytes of the artifact, and
/// `@@ stale PATH` for each temp file an interrupted install left in the target directory
/// (removed first: the script runs under the host's lock, so no other run is writing there).
pub fn install_script(op: &ArtifactOp) -> String {
    let dir = op.dir();
    let temp = format!(
        "{}/{TEMP_PREFIX}{}.{}",
        dir.trim_end_matches('/'),
        run_tag(),
        random_suffix()
    );
    let what = format!("{} {} from {}", op.name, op.version, op.source.describe());
    let mut s = format!(
        "set -e\numask 022\nd={}\nt={}\nmkdir -p -- \"$d\"\n\
         trap 'rm -rf -- \"$t\" \"$t.d\" \"$t.l\" \"$t.m\"' EXIT\n{}",
        q(&dir),
        q(&temp),
        stale_temps_script(&[&dir]),
    );
    // A tarball's unpack directory (`$t.d`) of another run: only that exact shape of name.
    s.push_str(&format!(
        "for bsctl_f in \"$d\"/{TEMP_PREFIX}r??????????.*.d; do\n\
         \x20 case $bsctl_f in */{TEMP_PREFIX}{tag}.*) continue ;; esac\n\
         \x20 [ -d \"$bsctl_f\" ] && [ ! -L \"$bsctl_f\" ] || continue\n\
         \x20 rm -rf -- \"$bsctl_f\" && printf '@@ stale %s\\n' \"$bsctl_f\"\n\
         done\n",
        tag = run_tag()
    ));
    match &op.source {
        // Created exclusively, so that no other file of that name is ever written through.
        Source::Upload { .. } => s.push_str("( set -C; cat > \"$t\" )\n"),
        Source::Url { url } => {
            let u = q(url);
            s.push_str(&format!(
                "if command -v curl >/dev/null 2>&1; then\n\
                 \x20 curl -fsSL --retry 2 -o \"$t\" -- {u} || {{ echo \"bootstrapctl: curl could not fetch \"{u} >&2; exit 1; }}\n\
                 elif command -v wget >/dev/null 2>&1; then\n\
                 \x20 wget -q -O \"$t\" -- {u} || {{ echo \"bootstrapctl: wget could not fetch \"{u} >&2; exit 1; }}\n\
                 else\n\
                 \x20 echo \"bootstrapctl: cannot fetch \"{u}\": neither curl nor wget is installed on this host\" >&2; exit 1\n\
                 fi\n"
            ));
        }
    }
    s.push_str(&format!(
        "n=$(wc -c < \"$t\"); printf '@@ bytes %s\\n' $n\n\
         set -- $(sha256sum -- \"$t\"); a=$1\n\
         if [ \"$a\" != {sum} ]; then\n\
         \x20 echo \"bootstrapctl: checksum mismatch for \"{target}\" (\"{what}\"): expected sha256 \"{sum}\", got $a; nothing installed\" >&2\n\
         \x20 exit 1\n\
         fi\n",
        sum = q(&op.sha256),
        target = q(&op.target()),
        what = q(&what),
    ));
    match &op.install {
        Install::Binary { dest, mode } => {
            s.push_str(&format!(
                "chmod {mode:04o} \"$t\"\nsync -- \"$t\"\nmv -f -- \"$t\" {}\n",
                q(dest)
            ));
        }
        Install::Tarball { dir: _, strip } => {
            let strip = if *strip > 0 {
                format!(" --strip-components={strip}")
            } else {
                String::new()
            };
            let marker = marker_path(&dir, &op.name);
            s.push_str(&format!(
                "mkdir -- \"$t.d\"\n\
                 tar -xf \"$t\" -C \"$t.d\" --no-same-owner{strip}\n\
                 ( cd \"$t.d\" && find . ! -type d ) | sed 's|^\\./||' > \"$t.l\"\n\
                 [ -s \"$t.l\" ] || {{ echo \"bootstrapctl: \"{name}\" tarball has no files\" >&2; exit 1; }}\n\
                 while IFS= read -r f; do mkdir -p -- \"$(dirname -- \"$d/$f\")\"; mv -f -- \"$t.d/$f\" \"$d/$f\"; done < \"$t.l\"\n\
                 {{ printf '%s  %s %s\\n' {sum} {name} {version}; cat \"$t.l\"; }} > \"$t.m\"\n\
                 sync -- \"$t.m\"\n\
                 mv -f -- \"$t.m\" {marker}\n",
                sum = q(&op.sha256),
                name = q(&op.name),
                version = q(&op.version),
                marker = q(&marker),
            ));
        }
    }
    s.push_str("sync -- \"$d\" 2>/dev/null || true\n");
    s
}
