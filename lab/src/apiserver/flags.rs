//! kube-apiserver's command line, parsed as the real binary's pflag/cobra parser does:
//! `--flag=value` and `--flag value`; a bool flag takes no separate value (`--x=false`, and a bare
//! `--x` is true); unknown flags and positional arguments are errors, exit 1.
//!
//! Every flag the stand-in accepts is in [`FLAGS`], with what the stand-in does with it.

use std::collections::BTreeMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
}

/// How the stand-in treats a flag.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Use {
    /// Honoured.
    Used,
    /// Accepted (and its value type checked) but without effect in the lab.
    Ignored,
}

/// (name, kind, default, use, what it does here)
pub(crate) const FLAGS: &[(&str, Kind, &str, Use, &str)] = &[
    (
        "advertise-address",
        Kind::Str,
        "",
        Use::Used,
        "shown in the startup line",
    ),
    (
        "bind-address",
        Kind::Str,
        "0.0.0.0",
        Use::Used,
        "address to listen on",
    ),
    ("secure-port", Kind::Int, "6443", Use::Used, "HTTPS port"),
    (
        "tls-cert-file",
        Kind::Str,
        "",
        Use::Used,
        "serving certificate (required: the stand-in does not self-sign)",
    ),
    (
        "tls-private-key-file",
        Kind::Str,
        "",
        Use::Used,
        "serving key",
    ),
    (
        "client-ca-file",
        Kind::Str,
        "",
        Use::Used,
        "x509 client-certificate authentication (CN = user, O = groups)",
    ),
    (
        "authorization-mode",
        Kind::Str,
        "AlwaysAllow",
        Use::Used,
        "comma list of AlwaysAllow, AlwaysDeny, Node, RBAC, in order",
    ),
    (
        "enable-bootstrap-token-auth",
        Kind::Bool,
        "false",
        Use::Used,
        "bootstrap token authenticator",
    ),
    (
        "anonymous-auth",
        Kind::Bool,
        "true",
        Use::Used,
        "requests without credentials are system:anonymous",
    ),
    (
        "etcd-servers",
        Kind::Str,
        "",
        Use::Used,
        "required as upstream; state lives on disk instead",
    ),
    (
        "service-account-issuer",
        Kind::Str,
        "",
        Use::Used,
        "required as upstream; no tokens are issued",
    ),
    (
        "service-account-signing-key-file",
        Kind::Str,
        "",
        Use::Used,
        "required as upstream; must be readable",
    ),
    ("service-account-key-file", Kind::Str, "", Use::Ignored, ""),
    (
        "v",
        Kind::Int,
        "0",
        Use::Used,
        "log verbosity; >= 4 logs every request",
    ),
    ("service-cluster-ip-range", Kind::Str, "", Use::Ignored, ""),
    ("allow-privileged", Kind::Bool, "false", Use::Ignored, ""),
    ("enable-admission-plugins", Kind::Str, "", Use::Ignored, ""),
    ("disable-admission-plugins", Kind::Str, "", Use::Ignored, ""),
    ("runtime-config", Kind::Str, "", Use::Ignored, ""),
    ("api-audiences", Kind::Str, "", Use::Ignored, ""),
    (
        "kubelet-certificate-authority",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "kubelet-client-certificate",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    ("kubelet-client-key", Kind::Str, "", Use::Ignored, ""),
    (
        "kubelet-preferred-address-types",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "requestheader-client-ca-file",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "requestheader-allowed-names",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "requestheader-extra-headers-prefix",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "requestheader-group-headers",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    (
        "requestheader-username-headers",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    ("proxy-client-cert-file", Kind::Str, "", Use::Ignored, ""),
    ("proxy-client-key-file", Kind::Str, "", Use::Ignored, ""),
    (
        "enable-aggregator-routing",
        Kind::Bool,
        "false",
        Use::Ignored,
        "",
    ),
    ("audit-log-path", Kind::Str, "", Use::Ignored, ""),
    ("audit-log-maxage", Kind::Int, "0", Use::Ignored, ""),
    ("audit-log-maxbackup", Kind::Int, "0", Use::Ignored, ""),
    ("audit-log-maxsize", Kind::Int, "0", Use::Ignored, ""),
    ("audit-policy-file", Kind::Str, "", Use::Ignored, ""),
    ("event-ttl", Kind::Str, "1h0m0s", Use::Ignored, ""),
    (
        "encryption-provider-config",
        Kind::Str,
        "",
        Use::Ignored,
        "",
    ),
    ("etcd-cafile", Kind::Str, "", Use::Ignored, ""),
    ("etcd-certfile", Kind::Str, "", Use::Ignored, ""),
    ("etcd-keyfile", Kind::Str, "", Use::Ignored, ""),
    ("service-node-port-range", Kind::Str, "", Use::Ignored, ""),
    ("apiserver-count", Kind::Int, "1", Use::Ignored, ""),
    ("feature-gates", Kind::Str, "", Use::Ignored, ""),
    ("profiling", Kind::Bool, "true", Use::Ignored, ""),
    ("help", Kind::Bool, "false", Use::Used, "print this help"),
];

/// Parsed flags: every known flag has a value (the default when not given).
#[derive(Debug, Clone)]
pub(crate) struct Flags {
    values: BTreeMap<&'static str, String>,
    given: Vec<&'static str>,
}

impl Flags {
    pub(crate) fn str(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }
    pub(crate) fn bool(&self, name: &str) -> bool {
        parse_bool(self.str(name)).unwrap_or(false)
    }
    pub(crate) fn int(&self, name: &str) -> i64 {
        self.str(name).parse().unwrap_or(0)
    }
    pub(crate) fn given(&self) -> &[&'static str] {
        &self.given
    }
}

/// Go's strconv.ParseBool.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parse argv (without argv[0]). The error is the line the real binary prints (without the
/// `Error: ` prefix).
pub(crate) fn parse(args: &[String]) -> Result<Flags, String> {
    let mut values: BTreeMap<&'static str, String> = FLAGS
        .iter()
        .map(|(n, _, d, _, _)| (*n, d.to_string()))
        .collect();
    let mut given = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let body = if let Some(b) = arg.strip_prefix("--") {
            b
        } else if let Some(b) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            // pflag shorthands: kube-apiserver defines only -h.
            if b == "h" {
                values.insert("help", "true".into());
                continue;
            }
            return Err(format!(
                "unknown shorthand flag: '{}' in {arg}",
                b.chars().next().unwrap_or('-')
            ));
        } else {
            positional.push(arg.clone());
            continue;
        };
        if body.is_empty() {
            // "--" ends the flags.
            positional.extend(args[i..].iter().cloned());
            break;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(&(fname, kind, _, _, _)) = FLAGS.iter().find(|f| f.0 == name) else {
            return Err(format!("unknown flag: --{name}"));
        };
        let value = match (kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_string(),
            (_, None) => {
                if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!("flag needs an argument: --{name}"));
                }
            }
        };
        match kind {
            Kind::Bool if parse_bool(&value).is_none() => {
                return Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseBool: parsing {value:?}: invalid syntax"
                ))
            }
            Kind::Int if value.parse::<i64>().is_err() => {
                return Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseInt: parsing {value:?}: invalid syntax"
                ))
            }
            _ => {}
        }
        values.insert(fname, value);
        if !given.contains(&fname) {
            given.push(fname);
        }
    }
    if positional.iter().any(|p| !p.is_empty()) {
        let list: Vec<String> = positional.iter().map(|p| format!("{p:?}")).collect();
        return Err(format!(
            "\"kube-apiserver\" does not take any arguments, got [{}]",
            list.join(" ")
        ));
    }
    Ok(Flags { values, given })
}

/// `--help` text: what this is, then the flag table.
pub(crate) fn help() -> String {
    let mut s = String::from(
        "kube-apiserver (bootstrapctl lab stand-in)\n\n\
         This is NOT the real kube-apiserver. It is bootstrapctl's lab stand-in, which follows the\n\
         documented behaviour of the real component for what the lab needs: HTTPS, x509 client\n\
         certificates, bootstrap tokens, RBAC/Node authorization and a few core, RBAC and\n\
         certificates.k8s.io resources. State lives on disk under /var/lib/bootstrapctl-lab/apiserver\n\
         (or $BOOTSTRAPCTL_LAB_APISERVER_STATE), not in etcd.\n\nUsage:\n  kube-apiserver [flags]\n\nFlags:\n",
    );
    for (name, kind, default, use_, what) in FLAGS {
        let ty = match kind {
            Kind::Str => "string",
            Kind::Bool => "",
            Kind::Int => "int",
        };
        let note = match use_ {
            Use::Used => what.to_string(),
            Use::Ignored => "accepted, no effect in the lab".to_string(),
        };
        let def = if default.is_empty() || *default == "false" {
            String::new()
        } else {
            format!(" (default {default})")
        };
        s.push_str(&format!("      --{name} {ty}\n            {note}{def}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Flags, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms_and_errors() {
        let f = p(&[
            "--secure-port",
            "7443",
            "--anonymous-auth=false",
            "--enable-bootstrap-token-auth",
            "--authorization-mode=Node,RBAC",
        ])
        .unwrap();
        assert_eq!(f.int("secure-port"), 7443);
        assert!(!f.bool("anonymous-auth"));
        assert!(f.bool("enable-bootstrap-token-auth"));
        assert_eq!(f.str("authorization-mode"), "Node,RBAC");
        assert_eq!(f.str("bind-address"), "0.0.0.0");
        assert_eq!(p(&["--x=1"]).unwrap_err(), "unknown flag: --x");
        assert_eq!(
            p(&["--secure-port"]).unwrap_err(),
            "flag needs an argument: --secure-port"
        );
        assert_eq!(
            p(&["--anonymous-auth", "false"]).unwrap_err(),
            "\"kube-apiserver\" does not take any arguments, got [\"false\"]"
        );
        assert_eq!(
            p(&["--anonymous-auth=nope"]).unwrap_err(),
            "invalid argument \"nope\" for \"--anonymous-auth\" flag: strconv.ParseBool: parsing \"nope\": invalid syntax"
        );
        assert!(p(&["--secure-port=abc"])
            .unwrap_err()
            .contains("strconv.ParseInt"));
    }
}
