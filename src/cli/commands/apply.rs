//! `apply` and `plan`: load inventory and playbook, run the engine, print diffs and recap.

use crate::cli::args::ApplyArgs;
use crate::cli::commands::runner;
use crate::cli::settings::RunSettings;
use crate::error::Error;

pub fn run(args: ApplyArgs, preview: bool) -> Result<i32, Error> {
    let s = RunSettings::from_args(args.run, args.playbook, preview)?;
    let inventory = s.load_inventory()?;
    let (playbook, base_dir) = runner::load_playbook_with(&s.playbook, &args.roles_path)?;
    let play_hosts = runner::play_hosts(&inventory, &playbook, s.limit.as_deref(), &[])?;
    let extra = s.extra_vars.clone();
    Ok(runner::execute(&s, inventory, playbook, base_dir, play_hosts, &extra, false)?.code)
}
