//! `preflight`: the fleet-wide join checks on the targeted workers, printed as one table and a
//! summary (or JSON); and `gate`, the same checks as the first step of `apply`/`join
//! --preflight`, which leaves the workers that must join and have errors out of the run.

use std::path::Path;

use crate::cli::args::{PreflightOpts, RunArgs};
use crate::cli::settings::RunSettings;
use crate::engine::conn::Pool;
use crate::error::{exit, CommandError, Error};
use crate::inventory::Inventory;
use crate::preflight::{self, render, Report};

/// The workers a preflight looks at: the `workers` group within `--limit`.
fn targets(inventory: &Inventory, limit: Option<&str>) -> Result<Vec<String>, Error> {
    let workers = inventory.group_hosts("workers");
    let limited = super::runner::limited_hosts(inventory, limit)?;
    Ok(workers
        .into_iter()
        .filter(|w| limited.as_ref().is_none_or(|l| l.contains(w)))
        .collect())
}

fn check(
    s: &RunSettings,
    inventory: &Inventory,
    targets: &[String],
    opts: &PreflightOpts,
) -> Result<Report, Error> {
    let mut specs = Vec::new();
    for h in inventory.hosts() {
        specs.push((h.name.clone(), s.connect_spec(inventory, h)?));
    }
    let pool = Pool::new(specs);
    let cp = inventory.group_hosts("control_plane").into_iter().next();
    Ok(preflight::run(
        &preflight::Params {
            pool: &pool,
            inventory,
            targets,
            control_plane: cp.as_deref(),
            timeout: s.opts.command_timeout,
            ignore: &opts.ignore_preflight_errors,
        },
        s.opts.forks,
    ))
}

pub fn run(mut args: RunArgs, opts: &PreflightOpts) -> Result<i32, Error> {
    // `--output json` prints the report; `--output json FILE` writes it.
    let output = std::mem::take(&mut args.output);
    let json_to: Option<Option<String>> = match output.as_slice() {
        [] => None,
        [f] if f == "json" => Some(None),
        [f, file] if f == "json" => Some(Some(file.clone())),
        [f, ..] => return Err(crate::error::SettingsError::OutputFormat(f.clone()).into()),
    };
    let s = RunSettings::from_args(args, None, true)?;
    let inventory = s.load_inventory()?;
    let targets = targets(&inventory, s.limit.as_deref())?;
    let report = check(&s, &inventory, &targets, opts)?;
    let redactor = crate::secret::process_redactor();
    match &json_to {
        Some(None) => println!(
            "{}",
            redactor
                .redact(&serde_json::to_string_pretty(&render::json(&report)).unwrap_or_default())
        ),
        other => {
            print!("{}", redactor.redact(&render::table(&report)));
            print!("{}", redactor.redact(&render::summary(&report)));
            if let Some(Some(file)) = other {
                write_json(Path::new(file), &render::json(&report))?;
            }
        }
    }
    Ok(if report.failing().is_empty() {
        exit::OK
    } else {
        exit::HOST_FAILED
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), Error> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
    )
    .map_err(|source| {
        CommandError::JsonReport {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// What the preflight step of a run decided.
pub struct Gate {
    pub report: Option<Report>,
    /// Hosts left out of the run, with the failed checks.
    pub left_out: Vec<(String, Vec<String>)>,
}

/// The first step of `apply`/`join --preflight`: the checks on the targeted workers; a worker
/// that must join and has an error not ignored is removed from every play of the run (it is
/// changed in nothing), the others go on under the plays' failure policy. Joined workers are
/// never left out: the join checks are not theirs.
pub fn gate(
    s: &RunSettings,
    inventory: &Inventory,
    play_hosts: &mut [Vec<String>],
    opts: &PreflightOpts,
) -> Result<Gate, Error> {
    if !opts.preflight {
        return Ok(Gate {
            report: None,
            left_out: Vec::new(),
        });
    }
    let in_run: Vec<String> = targets(inventory, s.limit.as_deref())?
        .into_iter()
        .filter(|w| play_hosts.iter().any(|p| p.contains(w)))
        .collect();
    let report = check(s, inventory, &in_run, opts)?;
    let left_out: Vec<(String, Vec<String>)> = report
        .failing()
        .into_iter()
        .filter(|(h, _)| report.hosts.iter().any(|r| &r.host == h && !r.joined))
        .collect();
    for hosts in play_hosts.iter_mut() {
        hosts.retain(|h| !left_out.iter().any(|(l, _)| l == h));
    }
    let redactor = crate::secret::process_redactor();
    print!("{}", redactor.redact(&render::summary(&report)));
    for (h, checks) in &left_out {
        println!("preflight: {h} left out of the run: {}", checks.join(", "));
    }
    Ok(Gate {
        report: Some(report),
        left_out,
    })
}

/// After the run: the preflight in the JSON report, and exit 1 when a host was left out.
pub fn finish(s: &RunSettings, gate: &Gate, code: i32) -> Result<i32, Error> {
    let Some(report) = &gate.report else {
        return Ok(code);
    };
    if let Some(path) = &s.json_report {
        let mut v: serde_json::Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let mut p = render::json(report);
        p["left_out"] = serde_json::json!(gate
            .left_out
            .iter()
            .map(|(h, c)| serde_json::json!({"host": h, "checks": c}))
            .collect::<Vec<_>>());
        v["preflight"] = p;
        write_json(path, &v)?;
    }
    Ok(if gate.left_out.is_empty() || code != exit::OK {
        code
    } else {
        exit::HOST_FAILED
    })
}
