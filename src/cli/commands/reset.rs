//! `reset`: take the --limit hosts out of the cluster by running the shipped `reset.yaml` on
//! them (so `--check --diff` preview it like any playbook). Control-plane hosts are refused
//! unless asked for explicitly: resetting one by a too-wide pattern would be hard to undo.

use crate::cli::args::RunArgs;
use crate::cli::commands::runner;
use crate::cli::settings::{PlaybookSource, RunSettings};
use crate::error::{CommandError, Error};

pub fn run(run: RunArgs, allow_control_plane: bool) -> Result<i32, Error> {
    let Some(limit) = run.limit.clone() else {
        return Err(Error::Usage(
            "reset needs --limit: the hosts to take out of the cluster".into(),
        ));
    };
    let s = RunSettings::from_args(run, None, false)?;
    let inventory = s.load_inventory()?;
    let control_planes = inventory.group_hosts("control_plane");
    let refused: Vec<String> = inventory
        .select(&limit)
        .map_err(CommandError::Limit)?
        .into_iter()
        .map(|h| h.name.clone())
        .filter(|h| control_planes.contains(h))
        .collect();
    if !refused.is_empty() && !allow_control_plane {
        return Err(CommandError::ResetControlPlane { hosts: refused }.into());
    }
    let (playbook, base_dir) = runner::load_playbook(&PlaybookSource::Embedded("reset.yaml"))?;
    let play_hosts = runner::play_hosts(&inventory, &playbook, Some(&limit), &[])?;
    let extra = s.extra_vars.clone();
    Ok(runner::execute(&s, inventory, playbook, base_dir, play_hosts, &extra, false)?.code)
}
