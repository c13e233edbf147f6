//! One function per subcommand: load → engine → outcome. Each returns the exit code.

pub mod apply;
pub mod bundle;
pub mod discovery;
pub mod init;
pub mod inventory;
pub mod join;
pub mod lab;
pub mod preflight;
pub mod reset;
pub mod runner;
pub mod token;
