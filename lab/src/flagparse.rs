//! Command-line flags the way the Kubernetes components (spf13/pflag) read them: `--name=value`,
//! `--name value`, bare `--name` for booleans (`--name=false` too), repeated flags keep every
//! value, an unknown flag is an error naming it.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Value,
}

/// The Kubernetes version the component stand-ins report.
pub(crate) const VERSION: &str = "v1.32.0-bootstrapctl-lab-stand-in";

#[derive(Debug, Default, Clone)]
pub(crate) struct Flags {
    pub(crate) values: BTreeMap<String, Vec<String>>,
    pub(crate) args: Vec<String>,
}

impl Flags {
    pub(crate) fn last(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }
    pub(crate) fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }
    pub(crate) fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    /// `--help`/`-h` prints `help`, `--version` the stand-ins' version; true when either did, and
    /// the component should exit 0 without starting.
    pub(crate) fn answered_help_or_version(&self, help: &str) -> bool {
        if self.has("help") || self.has("h") {
            print!("{help}");
            return true;
        }
        if self.has("version") {
            println!("Kubernetes {VERSION}");
            return true;
        }
        false
    }
    /// A boolean flag: Some(true/false) when given, Err for a value that is not a Go bool.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.last(name) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| format!("invalid argument \"{v}\" for \"--{name}\" flag: strconv.ParseBool: parsing \"{v}\": invalid syntax")),
        }
    }
}

/// Go's strconv.ParseBool.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The kind of `name` given a binary's value-taking and boolean flag tables.
pub(crate) fn kind_in(name: &str, value_flags: &[&str], bool_flags: &[&str]) -> Option<Kind> {
    if value_flags.contains(&name) {
        Some(Kind::Value)
    } else if bool_flags.contains(&name) {
        Some(Kind::Bool)
    } else {
        None
    }
}

/// Parses `args` against `known` (name without dashes → kind). Errors as pflag words them.
pub(crate) fn parse(
    args: &[String],
    known: &dyn Fn(&str) -> Option<Kind>,
) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            f.args.extend(it.by_ref().cloned());
            break;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| {
            a.strip_prefix('-')
                .filter(|b| b.len() == 1 || b.contains('='))
        }) else {
            f.args.push(a.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let single = !a.starts_with("--");
        let Some(kind) = known(name) else {
            return Err(if single {
                format!("unknown shorthand flag: '{name}' in {a}")
            } else {
                format!("unknown flag: --{name}")
            });
        };
        let value = match (kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Value, None) => it
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
        };
        f.values.entry(name.to_string()).or_default().push(value);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(n: &str) -> Option<Kind> {
        match n {
            "v" | "kubeconfig" | "controllers" => Some(Kind::Value),
            "leader-elect" | "h" | "help" => Some(Kind::Bool),
            _ => None,
        }
    }

    #[test]
    fn pflag_forms() {
        let a = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let f = parse(
            &a("--v=2 --kubeconfig /k --leader-elect --controllers=*,a --controllers b -h"),
            &known,
        )
        .unwrap();
        assert_eq!(f.last("v"), Some("2"));
        assert_eq!(f.last("kubeconfig"), Some("/k"));
        assert_eq!(f.bool("leader-elect"), Ok(Some(true)));
        assert_eq!(f.all("controllers"), ["*,a", "b"]);
        assert!(f.has("h"));
        assert_eq!(
            parse(&a("--port=0"), &known).unwrap_err(),
            "unknown flag: --port"
        );
        assert_eq!(
            parse(&a("--kubeconfig"), &known).unwrap_err(),
            "flag needs an argument: --kubeconfig"
        );
        let f = parse(&a("--leader-elect=maybe"), &known).unwrap();
        assert!(f.bool("leader-elect").is_err());
    }
}
