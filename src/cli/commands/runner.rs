//! What every command that runs plays shares: load the playbook, resolve each play's hosts,
//! build the redactor, connections and reporter, run the engine, print diffs and the recap.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::settings::{PlaybookSource, RunSettings};
use crate::content;
use crate::engine::conn::Pool;
use crate::engine::reporter::Reporter;
use crate::engine::result::RunOutcome;
use crate::engine::{self, RunCx};
use crate::error::{exit, CommandError, Error};
use crate::inventory::Inventory;
use crate::playbook::{self, Playbook};
use crate::report::{self, PlainReporter, ProgressReporter, QuietReporter};
use crate::secret::{is_secret_name, process_redactor, Redactor};
use crate::template::Templates;
use crate::vars::parse_extra_vars;

pub fn load_playbook(source: &PlaybookSource) -> Result<(Playbook, PathBuf), Error> {
    load_playbook_with(source, &[])
}

/// [`load_playbook`], with roles also looked for in `roles_path`.
pub fn load_playbook_with(
    source: &PlaybookSource,
    roles_path: &[PathBuf],
) -> Result<(Playbook, PathBuf), Error> {
    match source {
        PlaybookSource::File(p) => Ok((
            playbook::load_with(p, roles_path)?,
            p.parent().map(PathBuf::from).unwrap_or_default(),
        )),
        PlaybookSource::Embedded(name) => {
            let text = content::playbook(name)
                .ok_or_else(|| CommandError::NoShippedPlaybook(name.to_string()))?;
            Ok((
                shipped(text, name)?,
                std::env::current_dir().unwrap_or_default(),
            ))
        }
    }
}

/// Parse playbook text that may import the shipped playbooks.
pub fn shipped(text: &str, name: &str) -> Result<Playbook, Error> {
    playbook::loader::parse_with(
        text,
        &PathBuf::from(format!("<shipped>/playbooks/{name}")),
        &|import: &str, _: &Path| {
            let path = PathBuf::from(format!("<shipped>/playbooks/{import}"));
            content::playbook(import)
                .map(|t| (t.to_string(), path.clone()))
                .ok_or(playbook::PlaybookError::Invalid {
                    path,
                    message: "no such shipped playbook".into(),
                })
        },
    )
    .map_err(Error::from)
}

/// The hosts `--limit` selects, in inventory order; `None` without a limit (every host).
pub fn limited_hosts(
    inventory: &Inventory,
    limit: Option<&str>,
) -> Result<Option<Vec<String>>, Error> {
    let Some(l) = limit else {
        return Ok(None);
    };
    Ok(Some(
        inventory
            .select(l)
            .map_err(CommandError::Limit)?
            .into_iter()
            .map(|h| h.name.clone())
            .collect(),
    ))
}

/// The hosts of each play: its pattern, within `--limit` unless the play is in `unlimited`.
pub fn play_hosts(
    inventory: &Inventory,
    playbook: &Playbook,
    limit: Option<&str>,
    unlimited: &[usize],
) -> Result<Vec<Vec<String>>, Error> {
    let limited = limited_hosts(inventory, limit)?;
    let mut out = Vec::new();
    for (i, play) in playbook.plays.iter().enumerate() {
        let hosts: Vec<String> = match inventory.select(&play.hosts) {
            Ok(h) => h.into_iter().map(|h| h.name.clone()).collect(),
            Err(e) if e.is_no_match() => {
                eprintln!(
                    "warning: play {:?}: {e}; the play is skipped",
                    play.display_name()
                );
                Vec::new()
            }
            Err(source) => {
                return Err(CommandError::PlayHosts {
                    play: play.display_name().to_string(),
                    source,
                }
                .into())
            }
        };
        out.push(match &limited {
            Some(l) if !unlimited.contains(&i) => {
                hosts.into_iter().filter(|h| l.contains(h)).collect()
            }
            _ => hosts,
        });
    }
    Ok(out)
}

fn register_secrets(map: &serde_yaml::Mapping, redactor: &Redactor) {
    for (k, v) in map {
        if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
            if is_secret_name(k) && !crate::template::is_template(v) {
                redactor.register(v);
            }
        }
    }
}

pub struct Finished {
    pub outcome: RunOutcome,
    pub code: i32,
}

/// Run `playbook` with the settings; prints progress, diffs and the recap.
pub fn execute(
    s: &RunSettings,
    inventory: Inventory,
    playbook: Playbook,
    base_dir: PathBuf,
    play_hosts: Vec<Vec<String>>,
    extra_vars: &[String],
    quiet: bool,
) -> Result<Finished, Error> {
    let extra = parse_extra_vars(extra_vars).map_err(CommandError::ExtraVars)?;
    // The process's redactor, so that an error printed at the top after this is redacted too.
    let redactor = process_redactor();
    for h in inventory.hosts() {
        register_secrets(&h.vars, &redactor);
    }
    for secret in inventory.secrets() {
        redactor.register(secret);
    }
    for play in &playbook.plays {
        register_secrets(&play.vars, &redactor);
    }
    for (k, v) in &extra {
        if let Some(v) = v.as_str().filter(|_| is_secret_name(k)) {
            redactor.register(v);
        }
    }
    for secret in s.secrets() {
        redactor.register(&secret);
    }
    let mut specs = Vec::new();
    for h in inventory.hosts() {
        specs.push((h.name.clone(), s.connect_spec(&inventory, h)?));
    }
    let pool = Pool::new(specs);
    let tasks_per_host = playbook
        .plays
        .iter()
        .map(|p| p.tasks.len())
        .max()
        .unwrap_or(1);
    let reporter: Arc<dyn Reporter> = if quiet && s.verbose == 0 {
        Arc::new(QuietReporter::new(redactor.clone()))
    } else if std::io::stderr().is_terminal() && s.verbose == 0 {
        Arc::new(ProgressReporter::new(redactor.clone(), tasks_per_host))
    } else {
        Arc::new(PlainReporter::new(redactor.clone(), s.verbose))
    };
    let templates = Templates::new(vec![
        base_dir.join("templates"),
        base_dir.clone(),
        base_dir.join("..").join("templates"),
    ]);
    let shared = engine::shared_vars(&inventory, extra);
    let cx = Arc::new(RunCx::new(
        playbook,
        inventory,
        templates,
        shared,
        pool,
        s.opts.clone(),
        redactor.clone(),
        reporter.clone(),
        base_dir,
        play_hosts,
    ));
    let outcome = engine::run(cx);
    reporter.finish();

    let quiet_ok = quiet && !outcome.any_failed() && s.verbose == 0;
    let mut out = String::new();
    if quiet_ok {
        // The command prints its own answer.
    } else if s.opts.diff {
        out.push_str(&report::diff::render_grouped(&outcome.results));
    }
    if !quiet_ok {
        out.push_str(&report::recap::render(&outcome.recap));
        for note in &outcome.stopped {
            out.push_str(&format!("stopped: {note}\n"));
        }
    }
    if s.opts.check {
        out.push_str("(check mode: nothing was changed)\n");
    }
    print!("{}", redactor.redact(&out));
    if let Some(path) = &s.json_report {
        report::json::write(&outcome, path, &redactor).map_err(|source| {
            CommandError::JsonReport {
                path: path.clone(),
                source,
            }
        })?;
    }
    let code = if outcome.interrupted {
        exit::INTERRUPTED
    } else if outcome.any_failed() {
        exit::HOST_FAILED
    } else if s.opts.check && s.detailed_exitcode && outcome.any_changed() {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    };
    Ok(Finished { outcome, code })
}

/// A registered value of a host after the run, e.g. `registered(&f, "cp-1", "token")`.
pub fn registered<'a>(f: &'a Finished, host: &str, name: &str) -> Option<&'a minijinja::Value> {
    f.outcome
        .registered
        .get(host)
        .and_then(|m: &BTreeMap<String, minijinja::Value>| m.get(name))
}
