//! Top-level errors and exit codes, in one place.

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// A host failed or was unreachable.
    pub const HOST_FAILED: i32 = 1;
    /// Usage or configuration error: nothing was run.
    pub const USAGE: i32 = 2;
    /// `--check --detailed-exitcode` with changes pending.
    pub const CHANGES_PENDING: i32 = 3;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    /// Bad inventory, playbook, pattern, variables: the message names file:line:column.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Lab(String),
}

impl Error {
    pub fn code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) => exit::USAGE,
            Error::Lab(_) => exit::HOST_FAILED,
        }
    }
}
