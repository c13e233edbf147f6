//! The kube-apiserver **stand-in** of the lab. It is not the real kube-apiserver: it follows
//! the real component's documented behaviour for what TLS bootstrapping needs, and says so in
//! its startup log line and `--help`.
//!
//! Runs when the bootstrapctl binary is invoked as `kube-apiserver` (argv[0] basename).
//!
//! - `flags`: the real binary's flags (pflag rules), each used or accepted-and-ignored.
//! - `http`: blocking HTTPS/1.1 over rustls, client certificates optional.
//! - `authn`: x509 client certs, bootstrap tokens (upstream rules), anonymous.
//! - `authz`: AlwaysAllow / AlwaysDeny / Node (subset) / RBAC, in `--authorization-mode` order.
//! - `policy`: the bootstrap ClusterRoles and bindings, reconciled at start.
//! - `resources`: what is served, discovery, OpenAPI index, Tables, validation.
//! - `api`: routing and the verbs; `patch`: merge, strategic, JSON and apply patches.
//! - `store`: objects on disk (the etcd stand-in), resourceVersions, watch events.

mod api;
mod authn;
mod authz;
mod flags;
pub(crate) mod http;
mod patch;
mod policy;
mod proto;
mod resources;
mod store;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use api::{Mode, Server};

/// Default state directory; `BOOTSTRAPCTL_LAB_APISERVER_STATE` overrides it.
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/bootstrapctl-lab/apiserver";
pub(crate) const STATE_ENV: &str = "BOOTSTRAPCTL_LAB_APISERVER_STATE";

/// Entry point (`args` without argv[0]); returns the exit code. Serves until killed.
pub(crate) fn main(args: &[String]) -> i32 {
    let dir = std::env::var_os(STATE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    run(args, dir)
}

/// `main` with an explicit state directory.
pub(crate) fn run(args: &[String], dir: PathBuf) -> i32 {
    match prepare(args, dir) {
        Ok(Prepared::Help) => {
            print!("{}", flags::help());
            0
        }
        Ok(Prepared::Serve(listener, tls, server, url)) => {
            eprintln!(
                "I{} kube-apiserver (bootstrapctl lab stand-in): serving on {url}; this is not the real kube-apiserver",
                api::klog_time()
            );
            http::serve(listener, tls, Arc::new(move |req| server.handle(req)));
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

enum Prepared {
    Help,
    Serve(TcpListener, Arc<rustls::ServerConfig>, Arc<Server>, String),
}

fn read(flag: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("--{flag}: open {path}: {e}"))
}

fn prepare(args: &[String], dir: PathBuf) -> Result<Prepared, String> {
    let f = flags::parse(args)?;
    if f.bool("help") {
        return Ok(Prepared::Help);
    }
    // Validation as the real binary does it, errors aggregated.
    let mut errs = Vec::new();
    if f.str("etcd-servers").is_empty() {
        errs.push("--etcd-servers must be specified".to_string());
    }
    if f.str("service-account-issuer").is_empty() {
        errs.push("service-account-issuer is a required flag".to_string());
    }
    if f.str("service-account-signing-key-file").is_empty()
        || f.str("service-account-issuer").is_empty()
    {
        errs.push(
            "--service-account-signing-key-file and --service-account-issuer are required flags"
                .to_string(),
        );
    }
    let mut modes = Vec::new();
    for m in f
        .str("authorization-mode")
        .split(',')
        .filter(|m| !m.is_empty())
    {
        modes.push(match m {
            "AlwaysAllow" => Mode::AlwaysAllow,
            "AlwaysDeny" => Mode::AlwaysDeny,
            "Node" => Mode::Node,
            "RBAC" => Mode::Rbac,
            other => {
                errs.push(format!("authorization-mode {other:?} is not a valid mode"));
                continue;
            }
        });
    }
    if modes.is_empty() {
        errs.push("at least one authorization-mode must be passed".to_string());
    }
    if f.str("tls-cert-file").is_empty() || f.str("tls-private-key-file").is_empty() {
        errs.push("--tls-cert-file and --tls-private-key-file are required by the lab stand-in (it does not generate a self-signed serving certificate)".to_string());
    }
    let port = f.int("secure-port");
    if !(1..=65535).contains(&port) {
        errs.push(format!(
            "--secure-port {port} must be between 1 and 65535, inclusive. It cannot be turned off with 0"
        ));
    }
    let bind: IpAddr = f.str("bind-address").parse().map_err(|_| {
        format!(
            "invalid argument {:?} for \"--bind-address\" flag: failed to parse IP",
            f.str("bind-address")
        )
    })?;
    match errs.len() {
        0 => {}
        1 => return Err(errs.remove(0)),
        _ => return Err(format!("[{}]", errs.join(", "))),
    }
    read(
        "service-account-signing-key-file",
        f.str("service-account-signing-key-file"),
    )?;
    let cert = read("tls-cert-file", f.str("tls-cert-file"))?;
    let key = read("tls-private-key-file", f.str("tls-private-key-file"))?;
    let client_ca = match f.str("client-ca-file") {
        "" => None,
        p => Some(read("client-ca-file", p)?),
    };
    let tls = http::tls_config(&cert, &key, client_ca.as_deref())?;
    let store = store::Store::open(Some(&dir))?;
    policy::reconcile(&store);
    let addr = SocketAddr::new(bind, port as u16);
    let listener = TcpListener::bind(addr).map_err(|e| {
        format!("failed to create listener: failed to listen on {addr}: listen tcp {addr}: {e}")
    })?;
    let advertise = match f.str("advertise-address") {
        "" if bind.is_unspecified() => "127.0.0.1".to_string(),
        "" => bind.to_string(),
        a => a.to_string(),
    };
    let host = if advertise.contains(':') {
        format!("[{advertise}]")
    } else {
        advertise.clone()
    };
    let url = format!("https://{addr}");
    if f.int("v") >= 1 {
        eprintln!(
            "I{} stand-in: state in {} (--etcd-servers={} is not contacted); authorization modes {:?}; bootstrap tokens {}; anonymous {}",
            api::klog_time(),
            dir.display(),
            f.str("etcd-servers"),
            modes,
            f.bool("enable-bootstrap-token-auth"),
            f.bool("anonymous-auth")
        );
    }
    if f.int("v") >= 1 {
        let ignored: Vec<&str> = f
            .given()
            .iter()
            .copied()
            .filter(|n| {
                flags::FLAGS
                    .iter()
                    .any(|x| x.0 == *n && x.3 == flags::Use::Ignored)
            })
            .collect();
        if !ignored.is_empty() {
            eprintln!(
                "I{} stand-in: accepted without effect in the lab: --{}",
                api::klog_time(),
                ignored.join(", --")
            );
        }
    }
    let server = Server {
        store: Arc::new(store),
        modes,
        bootstrap_tokens: f.bool("enable-bootstrap-token-auth"),
        anonymous: f.bool("anonymous-auth"),
        verbosity: f.int("v"),
        advertise: format!("{host}:{port}"),
    };
    Ok(Prepared::Serve(listener, tls, Arc::new(server), url))
}
