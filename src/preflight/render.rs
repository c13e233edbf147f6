//! The preflight table as text (one row per host and check, then the summary) and as JSON.

use super::checks::Status;
use super::Report;

fn word(status: Status, ignored: bool) -> &'static str {
    match (status, ignored) {
        (Status::Error, true) => "ignored",
        (Status::Ok, _) => "ok",
        (Status::Skipped, _) => "skipped",
        (Status::Warning, _) => "warning",
        (Status::Error, false) => "error",
    }
}

pub fn table(r: &Report) -> String {
    let mut rows = vec![(
        "HOST".to_string(),
        "CHECK".to_string(),
        "STATUS".to_string(),
        "REASON".to_string(),
    )];
    for h in &r.hosts {
        for c in &h.checks {
            rows.push((
                h.host.clone(),
                c.name.clone(),
                word(c.status, c.ignored).to_string(),
                c.reason.clone(),
            ));
        }
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (a, b, c, d) in rows {
        out.push_str(format!("{a:w0$}  {b:w1$}  {c:w2$}  {d}").trim_end());
        out.push('\n');
    }
    out
}

pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    let joined = r.hosts.iter().filter(|h| h.joined).count();
    out.push_str(&format!(
        "preflight: {} host(s) ({joined} joined), {} error(s), {} ignored, {} warning(s)\n",
        r.hosts.len(),
        r.count(Status::Error),
        r.ignored(),
        r.count(Status::Warning),
    ));
    for (host, names) in r.failing() {
        out.push_str(&format!("  {host}: {}\n", names.join(", ")));
    }
    if !r.failing().is_empty() {
        out.push_str("(--ignore-preflight-errors=NAME,NAME or =all turns errors into warnings)\n");
    }
    out
}

pub fn json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "hosts": r.hosts,
        "control_plane": r.control_plane,
        "notes": r.notes,
        "summary": {
            "hosts": r.hosts.len(),
            "errors": r.count(Status::Error),
            "ignored": r.ignored(),
            "warnings": r.count(Status::Warning),
            "failing": r.failing().into_iter().map(|(h, n)| serde_json::json!({"host": h, "checks": n})).collect::<Vec<_>>(),
        },
    })
}
