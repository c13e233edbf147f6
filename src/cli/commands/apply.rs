//! `apply` and `plan`: load inventory and playbook, run the engine, print diffs and recap.

use crate::cli::args::ApplyArgs;
use crate::cli::commands::{preflight, runner};
use crate::cli::settings::RunSettings;
use crate::error::Error;

pub fn run(args: ApplyArgs, preview: bool) -> Result<i32, Error> {
    let shown = args
        .playbook
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "site.yaml".into());
    let mut s = RunSettings::from_args(args.run, args.playbook, preview)?;
    s.opts.start_at_task = args.start_at_task;
    if args.syntax_check {
        runner::load_playbook_with(&s.playbook, &args.roles_path)?;
        println!("\nplaybook: {shown}");
        return Ok(0);
    }
    let inventory = s.load_inventory()?;
    let (playbook, base_dir) = runner::load_playbook_with(&s.playbook, &args.roles_path)?;
    let mut play_hosts = runner::play_hosts(&inventory, &playbook, s.limit.as_deref(), &[])?;
    if args.list_hosts || args.list_tasks {
        let hosts = args.list_hosts.then_some(play_hosts.as_slice());
        print!(
            "{}",
            crate::playbook::list::render(&playbook, &shown, hosts, args.list_tasks)
        );
        return Ok(0);
    }
    let gate = preflight::gate(&s, &inventory, &mut play_hosts, &args.preflight)?;
    let extra = s.extra_vars.clone();
    let code = runner::execute(&s, inventory, playbook, base_dir, play_hosts, &extra, false)?.code;
    preflight::finish(&s, &gate, code)
}
