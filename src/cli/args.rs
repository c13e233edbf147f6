//! clap definitions only; validation and defaults live in `settings`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bootstrapctl",
    version,
    about = "Onboard Kubernetes worker nodes with TLS bootstrapping, Ansible-style, over SSH"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring hosts to the state a playbook describes.
    Apply(ApplyArgs),
    /// Preview: `apply --check --diff`. Changes nothing on any host.
    Plan(ApplyArgs),
    /// Onboard new workers: a short-lived token for this run only, the workers play on the
    /// --limit hosts, join verification, then the token is deleted.
    Join {
        #[command(flatten)]
        run: RunArgs,
        /// Life of the run's token.
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[command(flatten)]
        preflight: PreflightOpts,
    },
    /// kubeadm's join checks on the workers, plus fleet-wide ones (duplicate product_uuid,
    /// MAC, hostname; kubelet version and clock skew against the control plane), as one
    /// table. Exit 1 when a check not ignored failed.
    Preflight {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        preflight: PreflightOpts,
    },
    /// Take nodes out of the cluster (cordon and delete the Node, stop and disable kubelet,
    /// remove its certificates and kubeconfigs), as kubeadm reset + kubectl delete node do;
    /// the next apply joins them again. The shipped reset.yaml on the --limit hosts.
    Reset {
        #[command(flatten)]
        run: RunArgs,
        /// Also reset hosts of the control_plane group.
        #[arg(long)]
        allow_control_plane: bool,
    },
    /// Write the shipped playbooks, templates and an example inventory to DIR to customise
    /// (then `apply -i DIR/inventory.yaml DIR/site.yaml`).
    Init {
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Inspect an inventory.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// A local fleet of real OpenSSH hosts in namespaces on 127.x addresses (Linux, root).
    #[cfg(feature = "lab")]
    #[command(subcommand)]
    Lab(LabCommand),
    /// Bootstrap tokens: generate one, or check one offline with the API server's rules.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Token discovery as kubeadm does it.
    #[command(subcommand)]
    Discovery(DiscoveryCommand),
    /// Certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Artifact bundles for air-gapped fleets.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Check every file of a bundle directory against the sha256 its manifest.yaml gives:
    /// one line per artifact, exit 0 when all match, 1 otherwise.
    Verify { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DiscoveryCommand {
    /// Verify cluster-info (its JWS for the token and its CA against the pins); print the
    /// verified API server on success (exit 0), the reason on failure (exit 1).
    Verify {
        #[arg(long)]
        token: String,
        /// The ConfigMap as `kubectl get -o yaml` or `-o json` prints it.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "server",
            required_unless_present = "server"
        )]
        cluster_info: Option<PathBuf>,
        /// Fetch cluster-info anonymously from this API server, as kubeadm does.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        #[arg(long = "ca-cert-hash", value_name = "sha256:HEX")]
        ca_cert_hash: Vec<String>,
        #[arg(long)]
        unsafe_skip_ca_verification: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// `sha256:<hex>` of each certificate's DER SubjectPublicKeyInfo (kubeadm's CA pin).
    CaHash { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token (OS CSPRNG).
    Generate,
    /// Check a token and its extra groups and expiration offline, as the API server would.
    /// Exit 0 when valid, 1 with the reason when not.
    Validate {
        token: String,
        /// Extra groups (comma separated), each system:bootstrappers:...
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Expiration, RFC 3339 (e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        expiration: Option<String>,
    },
    /// Create a token on the cluster (through the first control-plane host); printed once.
    Create {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[arg(long, value_delimiter = ',', default_value = "authentication,signing")]
        usages: Vec<String>,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "system:bootstrappers:kubeadm:default-node-token"
        )]
        groups: Vec<String>,
        #[arg(long, default_value = "created by bootstrapctl token create")]
        description: String,
        /// Also print a `kubeadm join` command line using the token and the CA pin.
        #[arg(long)]
        print_join_command: bool,
    },
    /// List the cluster's bootstrap tokens (secrets redacted), as kubeadm does.
    List {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Delete tokens by id (or full token).
    Delete {
        #[command(flatten)]
        run: RunArgs,
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct PreflightOpts {
    /// apply/join: run the preflight on the targeted workers first and leave out of the run
    /// every one that must join and has an error.
    #[arg(long)]
    pub preflight: bool,
    /// Preflight errors to show as ignored, not fail on: check names (comma separated, any
    /// case) or `all`, as kubeadm's flag.
    #[arg(long, value_delimiter = ',', value_name = "NAME,NAME|all")]
    pub ignore_preflight_errors: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub preflight: PreflightOpts,
    /// Playbook file; default: the shipped site playbook.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
    /// Where roles are looked for after roles/ beside the playbook (colon separated).
    #[arg(
        long,
        value_name = "DIRS",
        value_delimiter = ':',
        env = "ANSIBLE_ROLES_PATH"
    )]
    pub roles_path: Vec<PathBuf>,
    /// Load the playbook (roles, imports, every task's arguments), report errors, run nothing.
    #[arg(long)]
    pub syntax_check: bool,
    /// List each play's tasks; run nothing.
    #[arg(long)]
    pub list_tasks: bool,
    /// List each play's hosts; run nothing.
    #[arg(long)]
    pub list_hosts: bool,
    /// Start at the first task of this name (earlier tasks are skipped).
    #[arg(long, value_name = "NAME")]
    pub start_at_task: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Inventory file or directory (YAML or INI); may be given several times.
    #[arg(short, long, value_name = "FILE", required = true)]
    pub inventory: Vec<PathBuf>,
    /// Vault password file (an executable one is run); may be given several times.
    #[arg(long, value_name = "FILE")]
    pub vault_password_file: Vec<PathBuf>,
    /// Prompt for the vault password.
    #[arg(long)]
    pub ask_vault_pass: bool,
    /// Change nothing; report what would change.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show the changes as diffs (secrets redacted).
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Limit to hosts matching this pattern (names, groups, globs, !exclude, &intersect, a,b).
    #[arg(short, long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Hosts worked on at once.
    #[arg(short, long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// Hosts an artifact is uploaded to at once (a bound of its own, below --forks).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub upload_forks: usize,
    /// Only run tasks with these tags (comma separated).
    #[arg(short, long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Extra variables: key=value, or @file.yaml. Highest precedence.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// known_hosts file to check host keys against (default ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record keys of hosts not yet in known_hosts (never replaces a changed key).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// SSH user when the inventory gives none.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Private key when the inventory gives none.
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Seconds to wait for a connection and SSH handshake.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub connect_timeout: u64,
    /// OpenSSH client config to read (default ~/.ssh/config; `none` reads none).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Retries after a connection failure that came fast (refused, reset, unreachable),
    /// waiting 0.5 s, 1 s, 2 s, ... Never after a timeout (it already waited) nor for
    /// authentication or host-key failures.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub connect_retries: u32,
    /// Prompt (no echo) for the sudo password used by `become`; else
    /// $BOOTSTRAPCTL_BECOME_PASSWORD if set.
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
    /// Seconds a single remote command may run.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// With --check: exit 3 when changes are pending.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Write a JSON report: `--output json FILE` (`preflight`: `--output json` prints it).
    #[arg(long, num_args = 1..=2, value_names = ["FORMAT", "FILE"])]
    pub output: Vec<String>,
    /// More output: -v shows ok and skipped tasks, -vv each task start.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// List matched hosts with their groups and address, or (`--output json`) the inventory
    /// as `ansible-inventory --list` prints it.
    List {
        #[command(flatten)]
        source: InventorySource,
        #[arg(short, long, value_name = "PATTERN")]
        limit: Option<String>,
        /// `json`: the shape of `ansible-inventory --list` (vault values redacted).
        #[arg(long, value_name = "FORMAT")]
        output: Option<String>,
    },
    /// The group tree, as `ansible-inventory --graph [GROUP]`.
    Graph {
        #[command(flatten)]
        source: InventorySource,
        #[arg(default_value = "all")]
        group: String,
    },
    /// One host's variables as JSON, as `ansible-inventory --host NAME`.
    Host {
        #[command(flatten)]
        source: InventorySource,
        name: String,
    },
}

/// Where an inventory comes from, as Ansible's `-i`, `--playbook-dir` and vault options.
#[derive(Debug, Args)]
pub struct InventorySource {
    /// Inventory file or directory (YAML or INI); may be given several times.
    #[arg(short, long, value_name = "FILE", required = true)]
    pub inventory: Vec<PathBuf>,
    /// Also read group_vars/ and host_vars/ beside the playbook in this directory.
    #[arg(long, value_name = "DIR")]
    pub playbook_dir: Option<PathBuf>,
    /// Vault password file (an executable one is run); may be given several times.
    #[arg(long, value_name = "FILE")]
    pub vault_password_file: Vec<PathBuf>,
    /// Prompt for the vault password.
    #[arg(long)]
    pub ask_vault_pass: bool,
}

#[cfg(feature = "lab")]
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start the lab hosts.
    Up {
        #[arg(long, default_value_t = 3)]
        workers: usize,
        #[arg(long, default_value_t = 0)]
        control_planes: usize,
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2222)]
        port: u16,
        /// Hosts get addresses 127.SUBNET.x.y; give labs that run at once different subnets.
        #[arg(long, default_value_t = 10)]
        subnet: u8,
        /// Workers as fresh machines: no kubelet, no runtime, empty /usr/local and /opt (for
        /// the install path: the `binaries` of playbooks/binaries.yaml).
        #[arg(long)]
        bare: bool,
        /// Give these hosts one and the same product_uuid, as cloned VMs have (for trying the
        /// preflight's fleet-wide checks).
        #[arg(long, value_delimiter = ',', value_name = "HOST,HOST")]
        same_product_uuid: Vec<String>,
        /// Real etcd, kube-apiserver, kube-controller-manager, containerd and kubelet (on the
        /// first worker) instead of the stand-ins: the directory `scripts/real-k8s path` prints.
        #[arg(long, value_name = "DIR")]
        real_components: Option<PathBuf>,
    },
    /// Stop exactly the processes the lab started.
    Down {
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
    /// List lab hosts and whether they answer.
    Status {
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
    /// Reboot a host's services: stop its units, start the enabled ones again.
    Reboot {
        host: String,
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
}
