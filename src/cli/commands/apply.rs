//! `apply` and `plan`: load inventory and playbook, run the engine, print diffs and recap.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::args::RunArgs;
use crate::cli::settings::{PlaybookSource, RunSettings};
use crate::content;
use crate::engine::conn::Pool;
use crate::engine::{self, RunCx};
use crate::error::{exit, Error};
use crate::playbook::{self, Playbook};
use crate::report::{self, PlainReporter, ProgressReporter, Reporter};
use crate::secret::{is_secret_name, Redactor};
use crate::template::Templates;
use crate::vars::parse_extra_vars;

fn register_secrets(map: &serde_yaml::Mapping, redactor: &Redactor) {
    for (k, v) in map {
        if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
            if is_secret_name(k) && !crate::template::is_template(v) {
                redactor.register(v);
            }
        }
    }
}

pub fn run(args: RunArgs, preview: bool) -> Result<i32, Error> {
    let s = RunSettings::from_args(args, preview)?;
    let inventory = s.load_inventory()?;
    let (playbook, base_dir) = match &s.playbook {
        PlaybookSource::File(p) => (
            playbook::load(p).map_err(|e| Error::Config(e.to_string()))?,
            p.parent().map(PathBuf::from).unwrap_or_default(),
        ),
        PlaybookSource::Embedded(name) => {
            let text = content::playbook(name)
                .ok_or_else(|| Error::Config(format!("no shipped playbook {name}")))?;
            (
                playbook::loader::parse_with(
                    text,
                    &PathBuf::from(format!("<shipped>/playbooks/{name}")),
                    &|import: &str, _: &std::path::Path| {
                        let path = PathBuf::from(format!("<shipped>/playbooks/{import}"));
                        content::playbook(import)
                            .map(|t| (t.to_string(), path.clone()))
                            .ok_or(playbook::PlaybookError::Invalid {
                                path,
                                message: "no such shipped playbook".into(),
                            })
                    },
                )
                .map_err(|e| Error::Config(e.to_string()))?,
                std::env::current_dir().unwrap_or_default(),
            )
        }
    };
    let extra = parse_extra_vars(&s.extra_vars).map_err(Error::Config)?;

    let limited: Option<Vec<String>> = match &s.limit {
        Some(l) => Some(
            inventory
                .select(l)
                .map_err(|e| Error::Config(format!("--limit: {e}")))?
                .into_iter()
                .map(|h| h.name.clone())
                .collect(),
        ),
        None => None,
    };
    let mut play_hosts = Vec::new();
    for play in &playbook.plays {
        let hosts: Vec<String> = match inventory.select(&play.hosts) {
            Ok(h) => h.into_iter().map(|h| h.name.clone()).collect(),
            Err(e) if e.is_no_match() => {
                eprintln!(
                    "warning: play {:?}: {e}; the play is skipped",
                    play.display_name()
                );
                Vec::new()
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "play {:?}: hosts: {e}",
                    play.display_name()
                )))
            }
        };
        play_hosts.push(match &limited {
            Some(l) => hosts.into_iter().filter(|h| l.contains(h)).collect(),
            None => hosts,
        });
    }

    let redactor = Arc::new(Redactor::new());
    for h in inventory.hosts() {
        register_secrets(&h.vars, &redactor);
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
    let reporter: Arc<dyn Reporter> = if std::io::stderr().is_terminal() && s.verbose == 0 {
        Arc::new(ProgressReporter::new(redactor.clone(), tasks_per_host))
    } else {
        Arc::new(PlainReporter::new(redactor.clone(), s.verbose))
    };
    let templates = Templates::new(template_dirs(&playbook, &base_dir));
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

    let mut out = String::new();
    if s.opts.diff {
        out.push_str(&report::diff::render_grouped(&outcome.results));
    }
    out.push_str(&report::recap::render(&outcome.recap));
    if s.opts.check {
        out.push_str("(check mode: nothing was changed)\n");
    }
    print!("{}", redactor.redact(&out));
    if let Some(path) = &s.json_report {
        report::json::write(&outcome, path, &redactor)
            .map_err(|e| Error::Config(format!("writing JSON report {}: {e}", path.display())))?;
    }
    Ok(if outcome.interrupted {
        exit::INTERRUPTED
    } else if outcome.any_failed() {
        exit::HOST_FAILED
    } else if s.opts.check && s.detailed_exitcode && outcome.any_changed() {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    })
}

fn template_dirs(_playbook: &Playbook, base_dir: &std::path::Path) -> Vec<PathBuf> {
    vec![
        base_dir.join("templates"),
        base_dir.to_path_buf(),
        base_dir.join("..").join("templates"),
    ]
}
