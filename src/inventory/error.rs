//! The inventory's error type: every message names the file and, where known, line:column.

use std::fmt;
use std::path::PathBuf;

/// Errors from loading an inventory, reading a host's connection variables, or selecting hosts.
///
/// `Display` is the complete user-facing message. The formats are:
///
/// ```text
/// reading FILE: IO-ERROR                                  (Read)
/// FILE:LINE:COLUMN: YAML-PARSER-MESSAGE                   (Syntax: invalid YAML, serde_yaml's words)
/// FILE:LINE:COLUMN: group "G": unknown key "K" (expected hosts, vars, children)      (Invalid)
/// FILE:LINE:COLUMN: group "G": host "H": bad range [5:1]: start 5 is greater than end 1
/// FILE:LINE:COLUMN: host "H": variable ansible_port: expected a port number (1-65535), found "abc"
/// FILE: host "H": variable V: MESSAGE                     (Var: from the typed accessors on Host)
/// bad host pattern "P": MESSAGE                           (Pattern)
/// pattern "P" matches no hosts in FILE                    (NoMatch)
/// ```
///
/// `FILE` is the path as given to `Inventory::load`/`Inventory::parse`. When the YAML parser
/// gives no position, `FILE: MESSAGE` is printed instead of `FILE:LINE:COLUMN: MESSAGE`.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The inventory file could not be read.
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML (message from the YAML parser).
    #[error("{place}: {message}")]
    Syntax { place: Place, message: String },
    /// Valid YAML that is not a valid inventory: unknown key, wrong shape, bad range, bad variable.
    #[error("{place}: {message}")]
    Invalid { place: Place, message: String },
    /// A connection variable of a host has the wrong type (found by `Host`'s typed accessors).
    #[error("{}: host {host:?}: variable {var}: {message}", .file.display())]
    Var {
        file: PathBuf,
        host: String,
        var: String,
        message: String,
    },
    /// A vaulted file or value that cannot be decrypted.
    #[error("{}: {source}", .file.display())]
    Vault {
        file: PathBuf,
        #[source]
        source: crate::vault::VaultError,
    },
    /// A file that neither the YAML nor the INI reader accepts.
    #[error("{}: not an inventory in a format Ansible reads:\n  yaml: {yaml}\n  ini: {ini}", .file.display())]
    Format {
        file: PathBuf,
        yaml: String,
        ini: String,
    },
    /// A host pattern that cannot be parsed.
    #[error("bad host pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    /// A host pattern that selects no host at all.
    #[error("pattern {pattern:?} matches no hosts in {}", .file.display())]
    NoMatch { pattern: String, file: PathBuf },
}

/// Where in an inventory file something is: `FILE:LINE:COLUMN`, or `FILE` when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    /// 1-based line and column (column 0: unknown, as in INI errors).
    pub position: Option<(usize, usize)>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, 0)) => write!(f, "{}:{line}", self.file.display()),
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

impl InventoryError {
    /// The pattern was valid but selected nothing (a play on an absent group is skipped).
    pub fn is_no_match(&self) -> bool {
        matches!(self, InventoryError::NoMatch { .. })
    }
}
