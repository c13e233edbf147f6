//! `join`: onboard new workers: the shipped workers plays on the --limit hosts, as a plain
//! `apply` runs them. A limited worker that must join gets a join token made for this run
//! (`--ttl` long) and deleted once the joins are over; one that has joined is left alone.

use crate::cli::args::{PreflightOpts, RunArgs};
use crate::cli::commands::{preflight, runner, token::first_control_plane};
use crate::cli::settings::RunSettings;
use crate::error::Error;

pub fn run(run: RunArgs, ttl: &str, opts: &PreflightOpts) -> Result<i32, Error> {
    if run.limit.is_none() {
        return Err(Error::Usage(
            "join needs --limit: the workers to onboard".into(),
        ));
    }
    let s = RunSettings::from_args(run, None, false)?;
    let inventory = s.load_inventory()?;
    // The join token is made and deleted through it: say so before connecting anywhere.
    first_control_plane(&inventory)?;
    let playbook = runner::shipped(
        "- import_playbook: kernel.yaml\n- import_playbook: workers.yaml\n",
        "join.yaml",
    )?;
    let mut play_hosts = runner::play_hosts(&inventory, &playbook, s.limit.as_deref(), &[])?;
    let gate = preflight::gate(&s, &inventory, &mut play_hosts, opts)?;
    // The user's own -e comes after, and so wins.
    let mut vars = vec![format!(
        "join_token_ttl={}",
        serde_json::to_string(ttl).unwrap_or_default()
    )];
    vars.extend(s.extra_vars.iter().cloned());
    let base = std::env::current_dir().unwrap_or_default();
    let code = runner::execute(&s, inventory, playbook, base, play_hosts, &vars, false)?.code;
    preflight::finish(&s, &gate, code)
}
