//! kube-controller-manager STAND-IN for the lab (the stand-in binary run as
//! `kube-controller-manager`). It parses the real binary's flags (unknown or removed ones exit
//! 1), reaches the API server through `--kubeconfig` like the real one, and runs four
//! controllers: bootstrapsigner, tokencleaner, csrapproving and csrsigning, selected by
//! `--controllers` with the upstream meaning. Every other controller named in `--controllers`
//! is accepted and not run. As upstream's informers do, each group of controllers reacts to a
//! change of what it watches (kube-system Secrets; CSRs) as soon as the API server reports
//! it, in its own thread, and passes again at least every second (token expiry is a clock).

mod controllers;
pub(crate) mod csr;
mod informer;
mod tokens;

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::flagparse;
use super::kube::{self, klog, Api};
use super::pki;
use super::timefmt;

const POLL: Duration = Duration::from_secs(1);

const VALUE_FLAGS: &[&str] = &[
    "kubeconfig",
    "controllers",
    "cluster-signing-cert-file",
    "cluster-signing-key-file",
    "cluster-signing-duration",
    "cluster-signing-kubelet-client-cert-file",
    "cluster-signing-kubelet-client-key-file",
    "cluster-signing-kubelet-serving-cert-file",
    "cluster-signing-kubelet-serving-key-file",
    "cluster-signing-kube-apiserver-client-cert-file",
    "cluster-signing-kube-apiserver-client-key-file",
    "cluster-signing-legacy-unknown-cert-file",
    "cluster-signing-legacy-unknown-key-file",
    "root-ca-file",
    "cluster-name",
    "cluster-cidr",
    "service-cluster-ip-range",
    "service-account-private-key-file",
    "bind-address",
    "secure-port",
    "authentication-kubeconfig",
    "authorization-kubeconfig",
    "client-ca-file",
    "requestheader-client-ca-file",
    "requestheader-allowed-names",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-username-headers",
    "tls-cert-file",
    "tls-private-key-file",
    "v",
    "vmodule",
    "master",
    "node-cidr-mask-size",
    "node-monitor-grace-period",
    "node-monitor-period",
    "pod-eviction-timeout",
    "feature-gates",
    "kube-api-qps",
    "kube-api-burst",
    "kube-api-content-type",
    "concurrent-service-syncs",
    "concurrent-deployment-syncs",
    "terminated-pod-gc-threshold",
    "cloud-provider",
    "cloud-config",
    "leader-elect-lease-duration",
    "leader-elect-renew-deadline",
    "leader-elect-retry-period",
    "leader-elect-resource-lock",
    "horizontal-pod-autoscaler-sync-period",
    "logging-format",
    "flex-volume-plugin-dir",
    "pv-recycler-pod-template-filepath-hostpath",
    "allocate-node-cidrs-mask-size",
    "config",
];
const BOOL_FLAGS: &[&str] = &[
    "help",
    "h",
    "use-service-account-credentials",
    "leader-elect",
    "allocate-node-cidrs",
    "configure-cloud-routes",
    "profiling",
    "contention-profiling",
    "enable-hostpath-provisioner",
    "enable-dynamic-provisioning",
    "enable-garbage-collector",
    "version",
];

const HELP: &str = "kube-controller-manager (bootstrapctl lab STAND-IN, not the real Kubernetes binary)

Runs the controllers the TLS bootstrap flow needs, on every change of the Secrets or CSRs
they watch and at least every second:
  bootstrapsigner  (off by default) signs kube-public/cluster-info with every signing token
  tokencleaner     (off by default) deletes expired bootstrap-token Secrets
  csrapproving     approves kubelet client CSRs whose requester may create
                   certificatesigningrequests/nodeclient (or /selfnodeclient for renewals)
  csrsigning       signs approved kubelet client CSRs (needs both --cluster-signing-* files)
Other controllers are accepted in --controllers and not run.

Usage:
  kube-controller-manager [flags]

Flags honoured:
      --kubeconfig string                   kubeconfig to reach the API server
      --controllers strings                 '*' enables the on-by-default ones; 'foo' enables foo;
                                            '-foo' disables foo (default [*])
      --cluster-signing-cert-file string    PEM CA certificate used to sign cluster-scoped certificates
      --cluster-signing-key-file string     PEM private key of it
      --cluster-signing-duration duration   max validity of signed certificates (default 8760h0m0s)
      --root-ca-file string                 accepted (the stand-in publishes no root CA)
  Other upstream flags are accepted and ignored; removed ones are unknown flags.
";

fn usage_error(msg: &str) -> i32 {
    eprintln!("Error: {msg}");
    eprintln!("Run 'kube-controller-manager --help' for usage (bootstrapctl lab stand-in).");
    1
}

struct Config {
    kubeconfig: String,
    controllers: Vec<String>,
    signer: Option<(String, String)>,
    duration: Duration,
}

fn configure(args: &[String]) -> Result<Option<Config>, String> {
    let f = flagparse::parse(args, &|n| flagparse::kind_in(n, VALUE_FLAGS, BOOL_FLAGS))?;
    if f.answered_help_or_version(HELP) {
        return Ok(None);
    }
    if let Some(a) = f.args.first() {
        return Err(format!(
            "unknown command \"{a}\" for \"kube-controller-manager\""
        ));
    }
    for b in BOOL_FLAGS {
        f.bool(b)?;
    }
    let controllers = controllers::parse(f.all("controllers"))?;
    let duration = match f.last("cluster-signing-duration") {
        None => Duration::from_secs(8760 * 3600),
        Some(d) => timefmt::parse_duration(d)
            .ok_or_else(|| format!("invalid argument \"{d}\" for \"--cluster-signing-duration\" flag: time: invalid duration \"{d}\""))?,
    };
    // The kubelet-client-specific pair wins over the generic one, as upstream.
    let pair = |c: &str, k: &str| match (f.last(c), f.last(k)) {
        (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => {
            Some((c.to_string(), k.to_string()))
        }
        _ => None,
    };
    let signer = pair(
        "cluster-signing-kubelet-client-cert-file",
        "cluster-signing-kubelet-client-key-file",
    )
    .or_else(|| pair("cluster-signing-cert-file", "cluster-signing-key-file"));
    let kubeconfig = f.last("kubeconfig").unwrap_or("").to_string();
    if kubeconfig.is_empty() {
        return Err(
            "--kubeconfig is required by the lab stand-in (it has no in-cluster config)".into(),
        );
    }
    Ok(Some(Config {
        kubeconfig,
        controllers,
        signer,
        duration,
    }))
}

pub(crate) fn kcm_main(args: &[String]) -> i32 {
    let cfg = match configure(args) {
        Ok(Some(c)) => c,
        Ok(None) => return 0,
        Err(e) => return usage_error(&e),
    };
    klog('I', "controllermanager.go:190", "\"Starting\" version=\"bootstrapctl lab STAND-IN for kube-controller-manager: runs bootstrapsigner, tokencleaner, csrapproving, csrsigning on changes and every 1s\"");
    let kc = match kube::load_kubeconfig(Path::new(&cfg.kubeconfig)) {
        Ok(k) => k,
        Err(e) => {
            klog(
                'E',
                "run.go:72",
                &format!("\"command failed\" err=\"invalid configuration: {e}\""),
            );
            return 1;
        }
    };
    let client = match kube::Client::new(
        &kc,
        "kube-controller-manager/v1.32.0 (bootstrapctl-lab-stand-in)",
    ) {
        Ok(c) => c,
        Err(e) => {
            klog('E', "run.go:72", &format!("\"command failed\" err=\"{e}\""));
            return 1;
        }
    };
    let on = |n: &str| controllers::enabled(n, &cfg.controllers);
    let mut signer = None;
    for name in controllers::IMPLEMENTED {
        if !on(name) {
            klog(
                'I',
                "controllermanager.go:641",
                &format!("\"Warning: controller is disabled\" controller=\"{name}\""),
            );
        }
    }
    if on("csrsigning") {
        match &cfg.signer {
            None => klog(
                'I',
                "certificates.go:56",
                "\"Skipping CSR signer controller because no csr cert/key was specified\"",
            ),
            Some((c, k)) => {
                let loaded = std::fs::read_to_string(c)
                    .map_err(|e| format!("{c}: {e}"))
                    .and_then(|cp| {
                        std::fs::read_to_string(k)
                            .map_err(|e| format!("{k}: {e}"))
                            .map(|kp| (cp, kp))
                    })
                    .and_then(|(cp, kp)| pki::Ca::from_pem(&cp, &kp).map_err(|e| e.to_string()));
                match loaded {
                    Ok(ca) => {
                        signer = Some(csr::Signer {
                            ca,
                            duration: cfg.duration,
                        });
                    }
                    Err(e) => {
                        klog('E', "run.go:72", &format!("\"command failed\" err=\"error starting controllers: failed to start kubernetes.io/kube-apiserver-client-kubelet certificate controller: error reading CA cert file: {e}\""));
                        return 1;
                    }
                }
            }
        }
    }
    for name in controllers::IMPLEMENTED {
        if on(name) && (*name != "csrsigning" || signer.is_some()) {
            klog(
                'I',
                "controllermanager.go:653",
                &format!("\"Started controller\" controller=\"{name}\""),
            );
        }
    }
    let token_controllers = on("tokencleaner") || on("bootstrapsigner");
    let csrs = on("csrapproving") || signer.is_some();
    let client = &client;
    let signer = signer.as_ref();
    let informer = informer::Informer::default();
    std::thread::scope(|scope| {
        if token_controllers {
            scope.spawn(move || {
                control_loop(client, tokens::SECRETS, |api| {
                    let now = timefmt::unix(SystemTime::now());
                    let mut errs = Vec::new();
                    if on("tokencleaner") {
                        if let Err(e) = tokens::tokencleaner(api, now) {
                            errs.push(format!("tokencleaner: {e}"));
                        }
                    }
                    if on("bootstrapsigner") {
                        if let Err(e) = tokens::bootstrapsigner(api, now) {
                            errs.push(format!("bootstrapsigner: {e}"));
                        }
                    }
                    errs
                })
            });
        }
        if csrs {
            let informer = &informer;
            scope.spawn(move || informer.run(client, csr::CSRS));
            scope.spawn(move || {
                let cached = informer::Cached {
                    inner: client,
                    informer,
                    path: csr::CSRS,
                };
                cached_loop(&cached, informer, |api| {
                    let mut errs = Vec::new();
                    if on("csrapproving") {
                        if let Err(e) = csr::approve(api) {
                            errs.push(format!("csrapproving: {e}"));
                        }
                    }
                    if let Some(s) = signer {
                        if let Err(e) = csr::sign(api, s) {
                            errs.push(format!("csrsigning: {e}"));
                        }
                    }
                    errs
                })
            });
        }
    });
    // No controller to run: idle as the real binary does.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Passes of `pass` (which returns its errors): one now, then one after each change of the
/// list at `watched` and at least every [`POLL`]. The resourceVersion is taken before a pass,
/// so that a change made during it (the pass's own writes too) wakes the next one at once.
fn control_loop(api: &dyn Api, watched: &str, pass: impl Fn(&dyn Api) -> Vec<String>) -> ! {
    let mut last_err = String::new();
    loop {
        let rv = api.resource_version(watched).unwrap_or_default();
        log_errors(&mut last_err, pass(api));
        if rv.is_empty() {
            std::thread::sleep(POLL);
        } else {
            api.wait_change(watched, &rv, POLL);
        }
    }
}

/// As [`control_loop`], for controllers whose list `informer` caches (`api` reads it): a pass
/// now, then one after each change of the cache and at least every [`POLL`].
fn cached_loop(
    api: &dyn Api,
    informer: &informer::Informer,
    pass: impl Fn(&dyn Api) -> Vec<String>,
) -> ! {
    let mut last_err = String::new();
    loop {
        let seen = informer.generation();
        log_errors(&mut last_err, pass(api));
        informer.wait(seen, POLL);
    }
}

/// The same failure every pass is logged once, until it changes.
fn log_errors(last_err: &mut String, errs: Vec<String>) {
    let joined = errs.join("; ");
    if joined != *last_err && !joined.is_empty() {
        klog(
            'E',
            "controller.go:120",
            &format!("\"Unhandled Error\" err=\"{joined}\""),
        );
    }
    *last_err = joined;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_as_the_real_binary() {
        let c = configure(&a("--kubeconfig=/k --cluster-name=kubernetes --root-ca-file=/ca --service-account-private-key-file=/sa --use-service-account-credentials=true --v=2")).unwrap().unwrap();
        assert_eq!(c.kubeconfig, "/k");
        assert!(c.signer.is_none());
        assert_eq!(c.duration, Duration::from_secs(8760 * 3600));
        assert!(controllers::enabled("csrapproving", &c.controllers));
        assert!(!controllers::enabled("bootstrapsigner", &c.controllers));
        let c = configure(&a("--kubeconfig /k --controllers=*,bootstrapsigner,tokencleaner --cluster-signing-cert-file=/c --cluster-signing-key-file=/k2 --cluster-signing-duration=24h")).unwrap().unwrap();
        assert_eq!(c.signer, Some(("/c".into(), "/k2".into())));
        assert_eq!(c.duration, Duration::from_secs(86400));
        assert!(controllers::enabled("tokencleaner", &c.controllers));
        assert_eq!(
            configure(&a("--kubeconfig=/k --port=0")).err().unwrap(),
            "unknown flag: --port"
        );
        assert_eq!(
            configure(&a(
                "--kubeconfig=/k --experimental-cluster-signing-duration=1h"
            ))
            .err()
            .unwrap(),
            "unknown flag: --experimental-cluster-signing-duration"
        );
        assert!(configure(&a("--kubeconfig=/k --controllers=*,nope")).is_err());
        assert!(configure(&a("--kubeconfig=/k --cluster-signing-duration=1y")).is_err());
        assert!(configure(&a("--help")).unwrap().is_none());
    }
}
