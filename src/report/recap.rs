//! The recap table printed at the end of a run, one row per host.

use std::collections::BTreeMap;

use crate::engine::result::HostRecap;

pub fn render(recap: &BTreeMap<String, HostRecap>) -> String {
    let width = recap.keys().map(String::len).max().unwrap_or(4).max(4);
    let mut out = String::from("PLAY RECAP\n");
    for (host, r) in recap {
        out.push_str(&format!(
            "{host:<width$} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}\n",
            r.ok, r.changed, r.unreachable, r.failed, r.skipped, r.rescued, r.ignored
        ));
    }
    out
}
