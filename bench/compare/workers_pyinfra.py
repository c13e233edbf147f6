"""The benchmark's worker workload as a pyinfra deploy: the same steps as bootstrapctl's
playbooks/workers.yaml (bootstrap_token, api_server and ca_data given with --data), rendering
the same templates. Run by bench/fleet.py --compare."""
import json
import os

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

# bench/fleet.py gives copies of the shipped templates that pyinfra's Jinja2 can render.
TEMPLATES = os.environ.get("BSCTL_BENCH_TEMPLATES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "templates")
KUBELET_DIR = "/var/lib/kubelet"
VARS = dict(
    kubelet_bin=host.data.get("kubelet_bin", "/usr/local/bin/kubelet"),
    kubelet_dir=KUBELET_DIR,
    cluster_dns="10.32.0.10",
    cluster_domain="cluster.local",
    container_runtime_endpoint="unix:///run/containerd/containerd.sock",
    pod_infra_image="registry.k8s.io/pause:3.10",
    bootstrap_token=host.data.bootstrap_token,
    api_server=host.data.api_server,
    ca_data=host.data.ca_data,
    inventory_hostname=host.name,
    **json.loads(os.environ.get("BSCTL_BENCH_VARS", "{}")),
)

if int(host.get_fact(Command, "wc -l < /proc/swaps")) > 1:
    server.shell(name="Swap off now", commands=["swapoff -a"])
files.replace(
    name="Swap off in /etc/fstab",
    path="/etc/fstab",
    text=r"^([^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]].*)$",
    replace=r"# \1",
)
files.directory(name="kubelet state directory", path=KUBELET_DIR, mode="700")
files.directory(name="containerd configuration directory", path="/etc/containerd", mode="755")
files.template(
    name="containerd configuration",
    src=os.path.join(TEMPLATES, "containerd-config.toml.j2"),
    dest="/etc/containerd/config.toml",
    mode="644",
    **VARS,
)
kubeconfig = files.template(
    name="bootstrap-kubeconfig",
    src=os.path.join(TEMPLATES, "bootstrap-kubeconfig.j2"),
    dest=f"{KUBELET_DIR}/bootstrap-kubeconfig",
    mode="600",
    **VARS,
)
config = files.template(
    name="KubeletConfiguration",
    src=os.path.join(TEMPLATES, "kubelet-config.yaml.j2"),
    dest=f"{KUBELET_DIR}/kubelet-config.yaml",
    mode="644",
    **VARS,
)
unit = files.template(
    name="kubelet unit",
    src=os.path.join(TEMPLATES, "kubelet.service.j2"),
    dest="/etc/systemd/system/kubelet.service",
    mode="644",
    **VARS,
)
systemd.service(
    name="kubelet enabled and started",
    service="kubelet.service",
    running=True,
    enabled=True,
    daemon_reload=True,
)
systemd.service(
    name="restart kubelet",
    service="kubelet.service",
    restarted=True,
    daemon_reload=True,
    _if=any_changed(kubeconfig, config, unit),
)
