//! The `--output json FILE` report: per host and task, status, changed, diff, duration.

use std::path::Path;

use crate::engine::result::RunOutcome;
use crate::secret::Redactor;

pub fn write(outcome: &RunOutcome, path: &Path, redactor: &Redactor) -> std::io::Result<()> {
    let mut value = serde_json::to_value(outcome).map_err(std::io::Error::other)?;
    if let Some(results) = value.get_mut("results").and_then(|r| r.as_array_mut()) {
        for r in results.iter_mut() {
            if let Some(diffs) = r.get_mut("diffs").and_then(|d| d.as_array_mut()) {
                for d in diffs.iter_mut() {
                    if d.get("secret").and_then(|s| s.as_bool()) == Some(true) {
                        d["before"] = serde_json::Value::from("<redacted>");
                        d["after"] = serde_json::Value::from("<redacted>");
                    }
                }
            }
        }
    }
    let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
    let text = redactor.redact(&text);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}
