//! `join`: onboard new workers with a token made for this run only: create it on the first
//! control-plane host, run the shipped workers plays on the --limit hosts (which verify the
//! join), then delete the token, whatever happened to the workers.

use crate::cli::args::RunArgs;
use crate::cli::commands::{runner, token::first_control_plane};
use crate::cli::settings::RunSettings;
use crate::error::{CommandError, Error};
use crate::k8s::token::BootstrapToken;

pub fn run(run: RunArgs, ttl: &str) -> Result<i32, Error> {
    if run.limit.is_none() {
        return Err(Error::Usage(
            "join needs --limit: the workers to onboard".into(),
        ));
    }
    let s = RunSettings::from_args(run, None, false)?;
    let inventory = s.load_inventory()?;
    let cp = first_control_plane(&inventory)?;
    let token = BootstrapToken::generate().map_err(CommandError::Token)?;
    let kubectl = "kubectl: \"{{ kubectl | default('kubectl') }}\"\n        kubeconfig: \"{{ admin_kubeconfig | default('/etc/kubernetes/admin.kubeconfig') }}\"";
    let text = format!(
        "- name: a bootstrap token for this join only\n  hosts: {cp}\n  gather_facts: false\n  become: true\n  tasks:\n    - bootstrap_token:\n        token: \"{{{{ bootstrap_token }}}}\"\n        ttl: {}\n        groups: [system:bootstrappers:worker]\n        description: bootstrapctl join (deleted at the end of the run)\n        {kubectl}\n\
         - import_playbook: workers.yaml\n\
         - name: delete this join's token\n  hosts: {cp}\n  gather_facts: false\n  become: true\n  tasks:\n    - kube_object:\n        state: absent\n        {kubectl}\n        definition: {{apiVersion: v1, kind: Secret, metadata: {{name: {}, namespace: kube-system}}}}\n",
        serde_json::to_string(ttl).unwrap_or_default(),
        token.secret_name()
    );
    let playbook = runner::shipped(&text, "join.yaml")?;
    let last = playbook.plays.len() - 1;
    let play_hosts = runner::play_hosts(&inventory, &playbook, s.limit.as_deref(), &[0, last])?;
    let mut vars = s.extra_vars.clone();
    vars.push(format!("bootstrap_token={}", token.full()));
    let base = std::env::current_dir().unwrap_or_default();
    Ok(runner::execute(&s, inventory, playbook, base, play_hosts, &vars, false)?.code)
}
