//! The command line: clap types (args), resolved settings, one function per subcommand.

pub mod args;
pub mod commands;
pub mod settings;
