//! The lab's stand-ins (systemctl, journalctl, kube-apiserver, kube-controller-manager,
//! kubelet) in a binary of their own. It links no SSH client and so no OpenSSL: lab hosts run
//! `systemctl` several times per onboarded host, and this binary starts in about a third of the
//! time `bootstrapctl` takes (no libssl/libcrypto to load and relocate).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bootstrapctl-build-id") {
        println!("{}", bootstrapctl_lab::BUILD_ID);
        std::process::exit(0);
    }
    let code = bootstrapctl_lab::standin_main(&args).unwrap_or_else(|| {
        eprintln!(
            "bootstrapctl-standin: run as systemctl, journalctl, kube-apiserver, \
             kube-controller-manager or kubelet (argv[0]), inside a lab host"
        );
        2
    });
    std::process::exit(code);
}
