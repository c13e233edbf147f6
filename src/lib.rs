//! bootstrapctl: onboard Kubernetes worker nodes with TLS bootstrapping, Ansible-style, over SSH.
//!
//! The flow of one run: `cli` parses and resolves settings → `inventory` and `playbook` load →
//! `engine` runs plays over hosts in parallel; per host it connects once (`transport`), reads
//! what the tasks need in one batch (`hoststate`), and for each task a `modules` planner returns
//! `plan::Planned` (NoChange or ops + diffs), which the executor applies (or, in `--check`,
//! simulates on the host's view) → `report` prints progress, diffs, recap and JSON, all through
//! the `secret::Redactor`.

pub mod cli;
pub mod content;
pub mod engine;
pub mod error;
pub mod flags;
pub mod hoststate;
pub mod inventory;
pub mod lab;
pub mod modules;
pub mod pki;
pub mod plan;
pub mod playbook;
pub mod report;
pub mod secret;
pub mod template;
pub mod transport;
pub mod vars;

use clap::Parser;

use cli::args::{Cli, Command, InventoryCommand, LabCommand};
use cli::commands;

/// Entry point: returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    // The lab bind-mounts this binary as `systemctl` inside each host.
    if args.first().is_some_and(|a| lab::invoked_as_systemctl(a)) {
        return lab::systemctl_main(&args[1..]);
    }
    if args
        .first()
        .is_some_and(|a| lab::apiserver::invoked_as_kube_apiserver(a))
    {
        return lab::apiserver::main(&args[1..]);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                error::exit::USAGE
            } else {
                0
            };
        }
    };
    let result = match cli.command {
        Command::Apply(a) => commands::apply::run(a, false),
        Command::Plan(a) => commands::apply::run(a, true),
        Command::Inventory(InventoryCommand::List { inventory, limit }) => {
            commands::inventory::list(&inventory, limit.as_deref())
        }
        Command::Lab(LabCommand::Up {
            workers,
            control_planes,
            dir,
            port,
            subnet,
        }) => commands::lab::up(&dir, workers, control_planes, port, subnet),
        Command::Lab(LabCommand::Down { dir }) => commands::lab::down(&dir),
        Command::Lab(LabCommand::Status { dir }) => commands::lab::status(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}
