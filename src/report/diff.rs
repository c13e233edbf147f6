//! Diff rendering with `similar`: unified diffs for content, one line per attribute change;
//! identical diffs on many hosts are printed once, with the list of hosts.

use std::collections::BTreeMap;

use similar::TextDiff;

use crate::engine::result::{TaskResult, TaskStatus};
use crate::plan::DiffItem;

pub fn render_item(d: &DiffItem) -> String {
    if d.secret {
        return format!("~ {}: content changed (secret, not shown)\n", d.subject);
    }
    let multiline = d.before.contains('\n') || d.after.contains('\n');
    if !multiline {
        let before = if d.before.is_empty() {
            "(none)"
        } else {
            &d.before
        };
        return format!("~ {}: {} -> {}\n", d.subject, before, d.after);
    }
    let before_name = if d.before.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("{} (before)", d.subject)
    };
    TextDiff::from_lines(&d.before, &d.after)
        .unified_diff()
        .context_radius(3)
        .header(&before_name, &format!("{} (after)", d.subject))
        .to_string()
}

/// All diffs of a run, grouped by (task, identical diff text), in first-seen order.
pub fn render_grouped(results: &[TaskResult]) -> String {
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in results {
        if r.diffs.is_empty() || !matches!(r.status, TaskStatus::Changed | TaskStatus::Failed) {
            continue;
        }
        let text: String = r.diffs.iter().map(render_item).collect();
        let key = (r.task.clone(), text.clone());
        match index.get(&key) {
            Some(&i) => groups[i].2.push(r.host.clone()),
            None => {
                index.insert(key, groups.len());
                groups.push((r.task.clone(), text, vec![r.host.clone()]));
            }
        }
    }
    let mut out = String::new();
    for (task, text, hosts) in groups {
        out.push_str(&format!("DIFF [{task}] on {}\n", host_list(&hosts)));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub fn host_list(hosts: &[String]) -> String {
    const SHOWN: usize = 8;
    if hosts.len() <= SHOWN {
        hosts.join(", ")
    } else {
        format!(
            "{} (+{} more: {} hosts)",
            hosts[..SHOWN].join(", "),
            hosts.len() - SHOWN,
            hosts.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_and_attribute_lines() {
        let d = DiffItem {
            subject: "/etc/a".into(),
            before: "x\ny\n".into(),
            after: "x\nz\n".into(),
            secret: false,
        };
        assert_eq!(
            render_item(&d),
            "--- /etc/a (before)\n+++ /etc/a (after)\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"
        );
        let m = DiffItem {
            subject: "/etc/a (mode)".into(),
            before: "0644".into(),
            after: "0600".into(),
            secret: false,
        };
        assert_eq!(render_item(&m), "~ /etc/a (mode): 0644 -> 0600\n");
    }
}
