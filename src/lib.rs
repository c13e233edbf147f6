//! bootstrapctl: onboard Kubernetes worker nodes with TLS bootstrapping, Ansible-style, over SSH.
//!
//! The flow of one run: `cli` parses and resolves settings → `inventory` and `playbook` load →
//! `engine` runs plays over hosts in parallel; per host it connects once (`transport`), reads
//! what the tasks need in one batch (`hoststate`), and for each task a `modules` planner returns
//! `plan::Planned` (NoChange or ops + diffs), which the executor applies (or, in `--check`,
//! simulates on the host's view) → `report` prints progress, diffs, recap and JSON, all through
//! the `secret::Redactor`. `--check` is exact by construction: the host view is a snapshot
//! plus an overlay of planned changes, and `engine::realise` is the one place where check
//! and apply part.
//!
//! Dependencies point one way: cli → engine → modules → plan/hoststate; engine → transport;
//! report → engine (the `Reporter` trait is the engine's); quoting through `shell`. The lab is
//! another crate of the workspace (`bootstrapctl-lab`), reached through its API only, behind
//! the default `lab` feature.
//!
//! The public surface is what the binary and the integration tests need, nothing more:
//! [`run`] (the whole CLI), [`transport`] (the SSH client, which the tests drive against real
//! sshd and ssh-agent processes) and [`vault`] (Ansible Vault, for tests that decrypt what the
//! real `ansible-vault` wrote). Everything else is private to the crate, so the compiler
//! reports any item nothing uses.

mod artifact;
mod cli;
mod content;
mod engine;
mod error;
mod flags;
mod hoststate;
mod inventory;
mod k8s;
mod malloc_tunables;
mod modules;
mod pki;
mod plan;
mod playbook;
mod preflight;
mod report;
mod secret;
mod shell;
mod template;
mod thread_stack;
pub mod transport;
mod vars;
pub mod vault;
mod yaml11;

use clap::Parser;

use cli::args::{Cli, Command, DiscoveryCommand, PkiCommand, TokenCommand};
use cli::commands;

/// Command-line tools die quietly on a closed pipe (`bootstrapctl ... | head`) instead of
/// panicking in println!: SIGPIPE back to its default. Only for short-lived commands that write
/// to stdout: a server keeps Rust's SIG_IGN, since rustls writes with writev(2), which raises
/// SIGPIPE when a client has gone (send(2) with MSG_NOSIGNAL would not), and that would kill it.
/// Call before any thread starts.
pub fn die_quietly_on_closed_pipe() {
    // SAFETY: changes a signal disposition while the process is still single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Entry point: returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    // The lab bind-mounts a stand-in binary (this one when the slimmer bootstrapctl-standin
    // is not beside it) as systemctl, journalctl and the kube-* components in each host.
    #[cfg(feature = "lab")]
    if let Some(code) = bootstrapctl_lab::standin_main(&args) {
        return code;
    }
    die_quietly_on_closed_pipe();
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
    // The commands that run a thread per host; still one thread here.
    if matches!(
        cli.command,
        Command::Apply(_)
            | Command::Plan(_)
            | Command::Join { .. }
            | Command::Reset { .. }
            | Command::Preflight { .. }
    ) {
        malloc_tunables::exec_with_tcache_off();
    }
    let result = match cli.command {
        Command::Apply(a) => commands::apply::run(a, false),
        Command::Plan(a) => commands::apply::run(a, true),
        Command::Join {
            run,
            ttl,
            preflight,
        } => commands::join::run(run, &ttl, &preflight),
        Command::Preflight { run, preflight } => commands::preflight::run(run, &preflight),
        Command::Reset {
            run,
            allow_control_plane,
        } => commands::reset::run(run, allow_control_plane),
        Command::Init { dir, force } => commands::init::run(&dir, force),
        Command::Inventory(command) => commands::inventory::run(command),
        #[cfg(feature = "lab")]
        Command::Lab(lab) => commands::lab::run(lab),
        Command::Discovery(DiscoveryCommand::Verify {
            token,
            cluster_info,
            server,
            ca_cert_hash,
            unsafe_skip_ca_verification,
        }) => commands::discovery::verify(
            &token,
            cluster_info.as_deref(),
            server.as_deref(),
            &ca_cert_hash,
            unsafe_skip_ca_verification,
        ),
        Command::Pki(PkiCommand::CaHash { file }) => commands::discovery::ca_hash(&file),
        Command::Bundle(cli::args::BundleCommand::Verify { dir }) => commands::bundle::verify(&dir),
        Command::Token(TokenCommand::Generate) => commands::token::generate(),
        Command::Token(TokenCommand::Create {
            run,
            ttl,
            usages,
            groups,
            description,
            print_join_command,
        }) => commands::token::create(
            run,
            &ttl,
            &usages,
            &groups,
            &description,
            print_join_command,
        ),
        Command::Token(TokenCommand::List { run }) => commands::token::list(run),
        Command::Token(TokenCommand::Delete { run, ids }) => commands::token::delete(run, &ids),
        Command::Token(TokenCommand::Validate {
            token,
            groups,
            expiration,
        }) => commands::token::validate(&token, &groups, expiration.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // The one place an error is printed: its whole cause chain, through the redactor
            // that holds every secret the run has registered so far.
            eprint!("{}", e.render(&secret::process_redactor()));
            e.code()
        }
    }
}
