//! Pure text editors (no I/O) for command-line flags in systemd units and static pod manifests, and for swap in fstab.
//!
//! Editors work on the text and change only the bytes an edit needs, so that a diff shown to the
//! operator is exactly the intended change and re-running is a no-op. Both flag editors share the
//! argv-level planning in this module; each then applies the plan textually and re-parses its
//! own output to prove the result means what the plan says.

pub mod fstab;
pub mod manifest;
pub mod unit;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub use fstab::{active_swap_entries, comment_out_swap, parse_proc_swaps};
#[cfg(test)]
pub use manifest::{edit_manifest_flags, manifest_args};
#[cfg(test)]
pub use unit::{edit_unit_flags, unit_exec_start_args};

/// One change to a command line. `name` includes its leading dashes, e.g. `--enable-bootstrap-token-auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagEdit {
    /// Make the flag present with exactly this value (one occurrence; duplicates are dropped).
    Set { name: String, value: String },
    /// Remove every occurrence of the flag (and its value when written as a separate word).
    Remove { name: String },
    /// Make each of `members` one of the comma-separated members of a list flag
    /// (`--controllers`, `--enable-admission-plugins`, `--authorization-mode`), keeping the
    /// members already there; see [`ensure_members`] for where new members go.
    Members { name: String, members: Vec<String> },
}

impl FlagEdit {
    #[cfg(test)]
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        FlagEdit::Set {
            name: name.into(),
            value: value.into(),
        }
    }
    #[cfg(test)]
    pub fn remove(name: impl Into<String>) -> Self {
        FlagEdit::Remove { name: name.into() }
    }
    pub fn name(&self) -> &str {
        match self {
            FlagEdit::Set { name, .. }
            | FlagEdit::Remove { name }
            | FlagEdit::Members { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("ExecStart not found in [Service] section")]
    ExecStartNotFound,
    #[error("several ExecStart= lines in [Service] section (lines {}); refusing to guess which one to edit", join_lines(.0))]
    MultipleExecStart(Vec<usize>),
    #[error("ExecStart (line {line}): {reason}")]
    ExecStartSyntax { line: usize, reason: String },
    #[error("invalid flag name {0:?}: it must start with '-' and contain no '=', whitespace, quotes or control characters")]
    InvalidFlagName(String),
    #[error("flag {flag}: value contains a newline; it would break the {target}")]
    ValueHasNewline { flag: String, target: &'static str },
    #[error("flag {flag}: value contains control character {ch:?}; it would break the {target}")]
    ValueHasControl {
        flag: String,
        ch: char,
        target: &'static str,
    },
    #[error("flag {flag}: member {member:?} {reason}")]
    InvalidMember {
        flag: String,
        member: String,
        reason: &'static str,
    },
    #[error("manifest is not valid YAML: {0}")]
    ManifestYaml(String),
    #[error("manifest: {0}")]
    ManifestLayout(String),
    #[error("container {0:?} not found in manifest (containers: {1})")]
    ContainerNotFound(String, String),
    #[error("manifest has several containers ({0}); name the one to edit")]
    AmbiguousContainer(String),
    /// The editor's own re-parse disagreed with its plan: a bug, reported instead of writing a broken file.
    #[error("internal error, refusing to write a possibly broken file: {0}")]
    Internal(String),
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the file kind is called in errors, so the user knows which file the value would break.
pub(crate) const UNIT_TARGET: &str = "unit file";
pub(crate) const MANIFEST_TARGET: &str = "manifest";

pub(crate) fn validate_edit(edit: &FlagEdit, target: &'static str) -> Result<(), FlagError> {
    let name = edit.name();
    let bad_name = !name.starts_with('-')
        || name.trim_start_matches('-').is_empty()
        || name.chars().any(|c| {
            c == '=' || c == '"' || c == '\'' || c == '\\' || c.is_whitespace() || c.is_control()
        });
    if bad_name {
        return Err(FlagError::InvalidFlagName(name.to_string()));
    }
    let values: Vec<&String> = match edit {
        FlagEdit::Set { value, .. } => vec![value],
        FlagEdit::Remove { .. } => vec![],
        FlagEdit::Members { members, .. } => {
            validate_members(name, members)?;
            members.iter().collect()
        }
    };
    for value in values {
        if value.contains('\n') || value.contains('\r') {
            return Err(FlagError::ValueHasNewline {
                flag: name.to_string(),
                target,
            });
        }
        if let Some(ch) = value.chars().find(|c| c.is_control()) {
            return Err(FlagError::ValueHasControl {
                flag: name.to_string(),
                ch,
                target,
            });
        }
    }
    Ok(())
}

/// Members must be single, non-contradictory items: an empty one or one with a comma would
/// not read back as itself, and asking for both `x` and `-x` can never converge.
pub fn validate_members(flag: &str, members: &[String]) -> Result<(), FlagError> {
    let bad = |member: &String, reason| FlagError::InvalidMember {
        flag: flag.to_string(),
        member: member.clone(),
        reason,
    };
    for m in members {
        if m.is_empty() || m == "-" {
            return Err(bad(m, "is empty"));
        }
        if m.contains(',') {
            return Err(bad(m, "contains a comma; give each member on its own"));
        }
        if members.contains(&opposite(m)) {
            return Err(bad(m, "is wanted together with its negation"));
        }
    }
    Ok(())
}

/// The member that cancels `m` in kube-controller-manager's `--controllers` syntax
/// (`-name` disables `name`); other list flags have no such members, so this never matches there.
fn opposite(m: &str) -> String {
    match m.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None => format!("-{m}"),
    }
}

/// `current` with every member of `wanted` present and none of their negations.
///
/// Existing members never move (order matters for `--authorization-mode`, where the first
/// authorizer with an opinion wins, so the operator's order is kept). A negated member
/// (`-bootstrapsigner` when `bootstrapsigner` is wanted, or the reverse) is replaced where it
/// stands and any further copies dropped. A missing member is inserted right before the
/// earliest-placed member that follows it in `wanted` and is already there, else appended: so
/// `[RBAC]` + `Node, RBAC` gives `Node,RBAC`, and `*,-ttl` + `*, bootstrapsigner, tokencleaner`
/// gives `*,-ttl,bootstrapsigner,tokencleaner`.
pub fn ensure_members(current: &[String], wanted: &[String]) -> Vec<String> {
    let mut out = current.to_vec();
    for (k, m) in wanted.iter().enumerate() {
        let neg = opposite(m);
        if out.contains(m) {
            out.retain(|x| *x != neg);
            continue;
        }
        if let Some(pos) = out.iter().position(|x| *x == neg) {
            out[pos] = m.clone();
            out.retain(|x| *x != neg);
            continue;
        }
        let at = wanted[k + 1..]
            .iter()
            .filter_map(|w| out.iter().position(|x| x == w))
            .min()
            .unwrap_or(out.len());
        out.insert(at, m.clone());
    }
    out
}

fn split_members(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .filter(move |_| !value.is_empty())
        .map(str::to_string)
}

/// A single textual step. Indices refer to the argv the plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Replace { idx: usize, word: String },
    Delete { idx: usize },
    Append { word: String },
}

/// Where `name` occurs in `argv[first..]`: (index of the flag word, index of a separate value word).
///
/// `--name value` is recognised only when the next word does not start with '-': Go's pflag
/// cannot tell either, and treating `--bool-flag --next` as a value would eat the next flag.
///
/// A list flag always takes a value, so with `takes_value` the next word is its value whatever
/// it starts with (pflag reads `--controllers -ttl` so: `-ttl` is a member, not a flag).
fn occurrences(
    argv: &[String],
    first: usize,
    name: &str,
    takes_value: bool,
) -> Vec<(usize, Option<usize>)> {
    let mut out = Vec::new();
    let mut i = first;
    while i < argv.len() {
        let w = &argv[i];
        if w == name {
            let value = argv
                .get(i + 1)
                .filter(|next| takes_value || !next.starts_with('-'))
                .map(|_| i + 1);
            out.push((i, value));
            i += if value.is_some() { 2 } else { 1 };
            continue;
        }
        if w.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('='))
        {
            out.push((i, None));
        }
        i += 1;
    }
    out
}

/// The ops for one edit, ordered so they can be applied one by one against a re-parsed text:
/// replacements and deletions from the highest index down (lower indices stay valid), appends last.
pub(crate) fn plan(argv: &[String], first: usize, edit: &FlagEdit) -> Vec<Op> {
    let takes_value = matches!(edit, FlagEdit::Members { .. });
    let occ = occurrences(argv, first, edit.name(), takes_value);
    let mut ops = match edit {
        FlagEdit::Set { name, value } => set_ops(argv, &occ, name, value),
        FlagEdit::Members { name, members } => {
            // pflag's string slices append on every occurrence, so the effective list is
            // all occurrences' members in order; it is written back as one occurrence.
            let current: Vec<String> = occ
                .iter()
                .flat_map(|&(i, v)| {
                    let value = match v {
                        Some(v) => argv[v].as_str(),
                        None => argv[i]
                            .strip_prefix(name.as_str())
                            .and_then(|r| r.strip_prefix('='))
                            .unwrap_or(""),
                    };
                    split_members(value).collect::<Vec<_>>()
                })
                .collect();
            let value = ensure_members(&current, members).join(",");
            set_ops(argv, &occ, name, &value)
        }
        FlagEdit::Remove { .. } => {
            let mut ops = Vec::new();
            for &(i, v) in occ.iter().rev() {
                if let Some(v) = v {
                    ops.push(Op::Delete { idx: v });
                }
                ops.push(Op::Delete { idx: i });
            }
            ops
        }
    };
    // Replace targets the first occurrence, which is below every delete; keep descending order.
    ops.sort_by_key(|op| match op {
        Op::Replace { idx, .. } | Op::Delete { idx } => std::cmp::Reverse(*idx),
        Op::Append { .. } => std::cmp::Reverse(0),
    });
    ops
}

/// The ops that leave exactly one occurrence of `name`, with `value`.
fn set_ops(argv: &[String], occ: &[(usize, Option<usize>)], name: &str, value: &str) -> Vec<Op> {
    let Some(&(idx, sep)) = occ.first() else {
        return vec![Op::Append {
            word: format!("{name}={value}"),
        }];
    };
    let mut ops = Vec::new();
    // Duplicates go, so the effective value cannot depend on pflag's last-wins rule.
    for &(i, v) in occ[1..].iter().rev() {
        if let Some(v) = v {
            ops.push(Op::Delete { idx: v });
        }
        ops.push(Op::Delete { idx: i });
    }
    match sep {
        Some(v) if argv[v] != value => ops.push(Op::Replace {
            idx: v,
            word: value.to_string(),
        }),
        Some(_) => {}
        None => {
            let word = format!("{name}={value}");
            if argv[idx] != word {
                ops.push(Op::Replace { idx, word });
            }
        }
    }
    ops
}

/// The argv after `op`, used to check each textual step against its intent.
pub(crate) fn apply_op(argv: &mut Vec<String>, op: &Op) {
    match op {
        Op::Replace { idx, word } => argv[*idx] = word.clone(),
        Op::Delete { idx } => {
            argv.remove(*idx);
        }
        Op::Append { word } => argv.push(word.clone()),
    }
}
