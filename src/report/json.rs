//! The `--output json FILE` report: per host and task, status, changed, diff, duration.
//!
//! Written as it is serialised, one task result at a time, into a temporary file beside the
//! report that is renamed over it once complete: a fleet's report is tens of megabytes, and
//! building it whole (as a tree, then as text) would hold it in memory two or three times
//! over at the very end of the run. Secrets are redacted in each string of the report
//! before it is escaped as JSON, so a secret with a quote, a backslash or a newline in it is
//! found too.

use std::io::Write as _;
use std::path::Path;

use serde::ser::{Error as _, SerializeSeq as _, SerializeStruct as _};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::engine::result::{RunOutcome, TaskResult};
use crate::secret::{Redactor, REDACTED};

pub fn write(outcome: &RunOutcome, path: &Path, redactor: &Redactor) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let written = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut w, &Report { outcome, redactor })
            .map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    match written {
        Ok(()) => std::fs::rename(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The outcome as the report shows it: the fields of `RunOutcome`, each passed through
/// `redacted`, with the keys of every object in sorted order (as `serde_json::Value` keeps
/// them, so the report reads as it always has).
struct Report<'a> {
    outcome: &'a RunOutcome,
    redactor: &'a Redactor,
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.outcome;
        let r = self.redactor;
        let results = Results {
            results: &o.results,
            redactor: r,
        };
        let mut st = s.serialize_struct("RunOutcome", 5)?;
        st.serialize_field("check", &o.check)?;
        st.serialize_field("interrupted", &o.interrupted)?;
        st.serialize_field("recap", &redacted(&o.recap, r).map_err(S::Error::custom)?)?;
        st.serialize_field("results", &results)?;
        st.serialize_field(
            "stopped",
            &redacted(&o.stopped, r).map_err(S::Error::custom)?,
        )?;
        st.end()
    }
}

/// The task results, each made JSON, its secret diffs hidden and its strings redacted just
/// before it is written, and dropped before the next.
struct Results<'a> {
    results: &'a [TaskResult],
    redactor: &'a Redactor,
}

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.results.len()))?;
        for t in self.results {
            let mut v = serde_json::to_value(t).map_err(S::Error::custom)?;
            // Hidden first: the content they replace need not be redacted.
            hide_secret_diffs(&mut v);
            redact_strings(&mut v, self.redactor);
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// `value` as JSON with every string in it, keys too, redacted.
fn redacted<T: Serialize>(value: &T, redactor: &Redactor) -> serde_json::Result<Value> {
    let mut v = serde_json::to_value(value)?;
    redact_strings(&mut v, redactor);
    Ok(v)
}

fn redact_strings(v: &mut Value, redactor: &Redactor) {
    match v {
        Value::String(s) => *s = redactor.redact(s),
        Value::Array(items) => items.iter_mut().for_each(|i| redact_strings(i, redactor)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut item) in entries {
                redact_strings(&mut item, redactor);
                map.insert(redactor.redact(&k), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A diff of content that holds a secret says only that it changed.
fn hide_secret_diffs(result: &mut Value) {
    let Some(diffs) = result.get_mut("diffs").and_then(|d| d.as_array_mut()) else {
        return;
    };
    for d in diffs.iter_mut() {
        if d.get("secret").and_then(|s| s.as_bool()) == Some(true) {
            d["before"] = Value::from(REDACTED);
            d["after"] = Value::from(REDACTED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::result::TaskStatus;
    use crate::plan::DiffItem;
    use std::time::Duration;

    fn outcome(msg: &str, diffs: Vec<DiffItem>) -> RunOutcome {
        RunOutcome {
            check: false,
            results: vec![TaskResult {
                play: "p".into(),
                host: "w1".into(),
                task: "t".into(),
                status: TaskStatus::Failed,
                changed: false,
                msg: msg.into(),
                diffs,
                duration: Duration::from_millis(1500),
                no_log: false,
                handler: false,
                ignored: false,
                rescued: false,
            }],
            recap: [("w1".to_string(), Default::default())].into(),
            interrupted: false,
            stopped: vec![],
            registered: Default::default(),
        }
    }

    fn report(o: &RunOutcome, r: &Redactor) -> (String, Value) {
        let dir = tempfile_dir();
        let path = dir.join("report.json");
        write(o, &path, r).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!dir.join("report.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
        let v = serde_json::from_str(&text).unwrap();
        (text, v)
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bsctl-json-report-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_secret_that_json_escapes_is_redacted_too() {
        let r = Redactor::new();
        let secret = "line one \"quoted\"\nline two \\ end";
        r.register(secret);
        let (text, v) = report(&outcome(&format!("failed: {secret}!"), vec![]), &r);
        assert!(!text.contains("quoted"), "{text}");
        assert_eq!(v["results"][0]["msg"], "failed: <redacted>!");
    }

    #[test]
    fn the_report_has_the_outcome_in_its_fields_and_hides_secret_diffs() {
        let r = Redactor::new();
        r.register("s3cr3t-value");
        let diffs = vec![
            DiffItem {
                subject: "/etc/a".into(),
                before: "x\n".into(),
                after: "y s3cr3t-value\n".into(),
                secret: false,
            },
            DiffItem {
                subject: "/var/lib/kubelet/bootstrap-kubeconfig".into(),
                before: String::new(),
                after: "token: abc".into(),
                secret: true,
            },
        ];
        let (text, v) = report(&outcome("ok", diffs), &r);
        assert!(text.ends_with("}\n"));
        let at = |k: &str| text.find(&format!("\n  \"{k}\": ")).expect(k);
        let order = ["check", "interrupted", "recap", "results", "stopped"].map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let res = &v["results"][0];
        assert_eq!(res["host"], "w1");
        assert_eq!(
            res["status"],
            serde_json::to_value(TaskStatus::Failed).unwrap()
        );
        assert_eq!(res["duration"], 1.5);
        assert_eq!(res["diffs"][0]["after"], "y <redacted>\n");
        assert_eq!(res["diffs"][1]["before"], "<redacted>");
        assert_eq!(res["diffs"][1]["after"], "<redacted>");
        assert_eq!(v["recap"]["w1"]["changed"], 0);
    }

    #[test]
    fn a_report_that_cannot_be_written_leaves_the_old_one_in_place() {
        let dir = tempfile_dir();
        let path = dir.join("report.json");
        std::fs::write(&path, "old\n").unwrap();
        // The temporary file's place is taken by a directory: creating it fails.
        std::fs::create_dir_all(dir.join("report.json.tmp")).unwrap();
        assert!(write(&outcome("ok", vec![]), &path, &Redactor::new()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
