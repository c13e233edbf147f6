//! `--controllers` with the upstream meaning: a list of `*` (every controller that is on by
//! default), `name` (on) and `-name` (off); the first entry naming a controller decides; without
//! `*` only the named ones run. bootstrapsigner and tokencleaner are off by default.

/// Controller names the real kube-controller-manager knows (its `--controllers` help), so that
/// a valid list for the real binary is valid here too. The stand-in runs only four of them.
pub(crate) const KNOWN: &[&str] = &[
    "attachdetach",
    "bootstrapsigner",
    "cloud-node-lifecycle",
    "clusterrole-aggregation",
    "cronjob",
    "csrapproving",
    "csrcleaner",
    "csrsigning",
    "daemonset",
    "deployment",
    "disruption",
    "endpoint",
    "endpointslice",
    "endpointslicemirroring",
    "ephemeral-volume",
    "garbagecollector",
    "horizontalpodautoscaling",
    "job",
    "legacy-serviceaccount-token-cleaner",
    "namespace",
    "nodeipam",
    "nodelifecycle",
    "persistentvolume-binder",
    "persistentvolume-expander",
    "podgc",
    "pv-protection",
    "pvc-protection",
    "replicaset",
    "replicationcontroller",
    "resourcequota",
    "root-ca-cert-publisher",
    "route",
    "service",
    "serviceaccount",
    "serviceaccount-token",
    "statefulset",
    "tokencleaner",
    "ttl",
    "ttl-after-finished",
];

/// Current upstream names (1.28+) accepted as aliases of the short ones the stand-in runs.
const ALIASES: &[(&str, &str)] = &[
    ("bootstrap-signer-controller", "bootstrapsigner"),
    ("token-cleaner-controller", "tokencleaner"),
    (
        "certificatesigningrequest-approving-controller",
        "csrapproving",
    ),
    ("certificatesigningrequest-signing-controller", "csrsigning"),
    ("certificatesigningrequest-cleaner-controller", "csrcleaner"),
];

pub(crate) const DISABLED_BY_DEFAULT: &[&str] = &["bootstrapsigner", "tokencleaner"];

/// The four controllers this stand-in implements.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "bootstrapsigner",
    "tokencleaner",
    "csrapproving",
    "csrsigning",
];

fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name, |(_, c)| c)
}

/// Splits and validates the flag values (pflag string slice: comma separated, repeatable).
pub(crate) fn parse(values: &[String]) -> Result<Vec<String>, String> {
    let list: Vec<String> = if values.is_empty() {
        vec!["*".to_string()]
    } else {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .collect()
    };
    let mut bad = Vec::new();
    let mut out = Vec::new();
    for c in list {
        if c == "*" {
            out.push(c);
            continue;
        }
        let (neg, name) = match c.strip_prefix('-') {
            Some(n) => ("-", n),
            None => ("", c.as_str()),
        };
        let name = canonical(name);
        if KNOWN.contains(&name) {
            out.push(format!("{neg}{name}"));
        } else {
            bad.push(format!("{c:?} is not in the list of known controllers"));
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(format!("[{}]", bad.join(", ")))
    }
}

/// Whether `name` runs under `list` (as parsed above).
pub(crate) fn enabled(name: &str, list: &[String]) -> bool {
    let mut star = false;
    for c in list {
        if c == name {
            return true;
        }
        if c.strip_prefix('-') == Some(name) {
            return false;
        }
        star |= c == "*";
    }
    star && !DISABLED_BY_DEFAULT.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_table() {
        // (flag values, controller, expected)
        let table: &[(&[&str], &str, bool)] = &[
            (&[], "csrapproving", true),
            (&[], "csrsigning", true),
            (&[], "bootstrapsigner", false),
            (&[], "tokencleaner", false),
            (&["*"], "bootstrapsigner", false),
            (&["*,bootstrapsigner,tokencleaner"], "bootstrapsigner", true),
            (&["*,bootstrapsigner,tokencleaner"], "tokencleaner", true),
            (&["*,bootstrapsigner,tokencleaner"], "csrsigning", true),
            (&["*", "bootstrapsigner"], "bootstrapsigner", true),
            (&["*,-csrapproving"], "csrapproving", false),
            (&["*,-csrapproving"], "csrsigning", true),
            (&["bootstrapsigner"], "csrsigning", false),
            (&["bootstrapsigner"], "bootstrapsigner", true),
            (
                &["-bootstrapsigner,bootstrapsigner"],
                "bootstrapsigner",
                false,
            ),
            (
                &["bootstrapsigner,-bootstrapsigner"],
                "bootstrapsigner",
                true,
            ),
            (&["*,bootstrap-signer-controller"], "bootstrapsigner", true),
            (&["-*"], "csrsigning", false),
        ];
        for (vals, name, want) in table {
            let vals: Vec<String> = vals.iter().map(|s| s.to_string()).collect();
            match parse(&vals) {
                Ok(list) => assert_eq!(enabled(name, &list), *want, "{vals:?} {name}"),
                Err(e) => {
                    assert!(vals == ["-*"], "{vals:?}: {e}");
                }
            }
        }
        assert_eq!(
            parse(&["*,foo".to_string()]).unwrap_err(),
            "[\"foo\" is not in the list of known controllers]"
        );
    }
}
