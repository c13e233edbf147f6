#!/usr/bin/env python3
"""Fleet benchmark: bootstrapctl against N lab hosts, as ratios to an OpenSSH floor.

Brings a lab of N workers up, then measures, several times each (medians; the floor is
measured right before every workload run, on the same hosts):
  floor   N `ssh -o ControlMaster=no -o KexAlgorithms=curve25519-sha256 HOST true` at once
  noop    apply of the worker workload on hosts where everything is in place
  check   `apply --check --diff` on fresh hosts
  first   first apply on fresh hosts
and prints a table of medians, ratios to the floor, SSH round trips per host on the first
apply and on the no-op run (the most any host made, from the JSON report), bootstrapctl's
own CPU (utime + stime) per host on the first apply and the no-op (constant across N when
its cost is linear in N; load disturbs it far less than wall time), its peak RSS, and the
lab's own `lab up` and `lab down` times (medians), after checking that
`lab down` left no process of the lab alive and no lab mount anywhere. With `--site N`, the shipped site
playbook on 1 control plane + N workers (stand-in kubelets): its first apply (every Node
Ready) and its no-op re-run, against the floor of the same N + 1 hosts. Run as root from the
repo root:

    cargo build --release && python3 bench/fleet.py --hosts 50 200 500 --runs 5 --site 100

(`--binary` when CARGO_TARGET_DIR is set; `--subnet-base B` puts the labs on 127.B.x.x,
127.B+1.x.x, ...). bootstrapctl gets one fork per host, all at once, as Ansible and pyinfra
do; `--forks default` runs it with its default `--forks` (50) instead, as a user runs it.

Only 127.x loopback addresses are touched; every loop is bounded.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The worker workload's variables, for every tool: the token, CA and API server given (no
# cluster), and a kubelet binary the lab's systemctl only keeps state for, so no kubelet
# stand-in process competes for the CPU.
EXTRA = {"bootstrap_token": "abcdef.0123456789abcdef", "api_server": "https://127.0.0.1:6443",
         "ca_data": "Y2EK", "kubelet_bin": "/usr/local/bin/kubelet-bench"}


class Ran(tuple):
    """(seconds, peak RSS in KiB), and `.cpu`: the process's utime + stime in seconds."""
    cpu = 0.0


def run(cmd, check=True, quiet=True, env=None):
    """Run cmd; return Ran((seconds, peak RSS in KiB of that process tree's largest member)),
    with its CPU seconds in `.cpu`."""
    start = time.monotonic()
    out = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=out if quiet else None, stderr=subprocess.STDOUT, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.monotonic() - start
    out.seek(0)
    text = out.read().decode(errors="replace")
    # The failures first (a recap of many hosts would push them out of the tail).
    failures = [l for l in text.splitlines() if "fail" in l.lower() and "failed=0" not in l]
    err = "\n".join(failures[:20]) + "\n...\n" + text[-2000:]
    out.close()
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{err}")
    ran = Ran((elapsed, usage.ru_maxrss))
    ran.cpu = usage.ru_utime + usage.ru_stime
    return ran


# bootstrapctl's --forks: "n" for one per host (as the peers get), or "default" for its own.
FORKS = "n"


def forks_args(hosts):
    return ["--forks", str(hosts)] if FORKS == "n" else []


class Lab:
    def __init__(self, binary, n, subnet, control_planes=0):
        self.binary, self.n, self.subnet = binary, n, subnet
        self.control_planes = control_planes
        self.dir = tempfile.mkdtemp(prefix=f"bsctl-bench-{n}-")
        self.up_times, self.down_times, self.leftovers = [], [], []

    def up(self):
        t, _ = run([self.binary, "lab", "up", "--workers", str(self.n), "--dir", self.dir,
             "--control-planes", str(self.control_planes), "--subnet", str(self.subnet)])
        with open(os.path.join(self.dir, "inventory.yaml")) as f:
            self.addresses = [l.split(":", 1)[1].strip() for l in f
                              if l.strip().startswith("ansible_host:")]
        assert len(self.addresses) == self.n + self.control_planes, self.addresses
        self.up_times.append(t)

    def down(self):
        state = os.path.join(self.dir, "lab.json")
        hosts = []
        if os.path.exists(state):
            with open(state) as f:
                hosts = json.load(f)["hosts"]
        pins = pin_namespaces(hosts)
        try:
            t, _ = run([self.binary, "lab", "down", "--dir", self.dir], check=False)
            if hosts:
                self.down_times.append(t)
                self.leftovers += leftovers(pins, self.dir)
        finally:
            for fd in pins.values():
                os.close(fd)

    def fresh(self):
        self.down()
        self.up()

    def floor(self):
        """N OpenSSH clients started at once, one per host; wall time until all exit."""
        cmds = [self.ssh(a, "true") for a in self.addresses]
        start = time.monotonic()
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for c in cmds]
        for p in procs:
            if p.wait() != 0:
                sys.exit("floor ssh failed: " + p.stderr.read().decode())
        return time.monotonic() - start

    def ssh(self, address, command):
        """The OpenSSH client command that runs `command` on the lab host at `address`."""
        return ["ssh", "-o", "ControlMaster=no", "-o", "KexAlgorithms=curve25519-sha256",
                "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.dir}/known_hosts",
                "-o", "StrictHostKeyChecking=yes", "-i", f"{self.dir}/id_ed25519",
                "-p", "2222", f"root@{address}", command]

    def apply(self, *extra, report=None):
        cmd = [self.binary, "apply", "-i", os.path.join(self.dir, "inventory.yaml"),
               *forks_args(self.n), *extra]
        for k, v in EXTRA.items():
            cmd += ["-e", f"{k}={v}"]
        if report:
            cmd += ["--output", "json", report]
        return run(cmd)

    def site(self, report):
        """The shipped site playbook as a user runs it: no variables given."""
        return run([self.binary, "apply", "-i", os.path.join(self.dir, "inventory.yaml"),
                    *forks_args(self.n + self.control_planes), "--output", "json", report])


def pin_namespaces(hosts):
    """The hosts' mount namespaces, held open ({inode: fd}) while their sshd still runs in
    them: a namespace's number goes to a new one once it is gone (other labs make them all
    the time), so only a held namespace can be looked for after `lab down` without taking
    another lab's processes for leftovers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < len(hosts) + 256 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, len(hosts) + 256), hard))
    pins = {}
    for h in hosts:
        ns = h.get("mnt_ns")
        if not ns or ns in pins:
            continue
        try:
            fd = os.open(f"/proc/{h['pid']}/ns/mnt", os.O_RDONLY)
        except OSError:
            continue
        if os.fstat(fd).st_ino == ns:
            pins[ns] = fd
        else:
            os.close(fd)
    return pins


def leftovers(namespaces, lab_dir):
    """What a `lab down` left behind: live processes in a host's mount namespace (held open
    by the caller), and mounts of the lab's host dirs seen from here (there should be none:
    they live in the hosts' namespaces only)."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = int(os.readlink(f"/proc/{pid}/ns/mnt")[5:-1])
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        comm, state = stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2]
        if ns in namespaces and state not in "ZX":
            left.append(f"process {pid} ({comm}, {state}) in a lab host's namespace")
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {l.split()[4]}" for l in f if lab_dir in l]
    return left


def recap(report):
    with open(report) as f:
        rep = json.load(f)["recap"]
    return (sum(h["changed"] for h in rep.values()), max(h["round_trips"] for h in rep.values()))


def machine_cpu():
    """CPU seconds the whole machine has spent busy so far (/proc/stat: all but idle and
    iowait): the client, sshd, every lab host's processes and the stand-ins together."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def site_bench(binary, n, runs, subnet):
    """First site apply (to every Node Ready) on fresh hosts, then no-op re-runs."""
    lab = Lab(binary, n, subnet, control_planes=1)
    floor, first, noop, first_cpu = [], [], [], []
    rss = 0
    try:
        lab.up()
        lab.floor()
        report = os.path.join(lab.dir, "site.json")
        for i in range(runs):
            if i:
                lab.fresh()
            floor.append(lab.floor())
            cpu = machine_cpu()
            t, r = lab.site(report)
            first_cpu.append(machine_cpu() - cpu)
            first.append(t)
            rss = max(rss, r)
        for _ in range(runs):
            floor.append(lab.floor())
            t, r = lab.site(report)
            noop.append(t)
            rss = max(rss, r)
        changed, trips = recap(report)
        return {"floor": median(floor), "first": median(first), "noop": median(noop),
                "first_cpu": median(first_cpu)}, \
            trips, changed, rss
    finally:
        lab.down()
        shutil.rmtree(lab.dir, ignore_errors=True)


def median(xs):
    return statistics.median(xs)


def bench(binary, n, runs, subnet):
    lab = Lab(binary, n, subnet)
    rows = {}
    rss = 0
    try:
        lab.up()
        lab.floor()  # warm caches (sshd binary, keys) before measuring
        # The floor is measured right before every workload run, on the same lab, so that a
        # slow or fast spell of the machine shows in both (their medians give the ratios).
        floor, first, check, noop = [], [], [], []
        cpu_first, cpu_noop = [], []
        first_trips = 0
        first_report = os.path.join(lab.dir, "first.json")
        for _ in range(runs):
            lab.fresh()
            floor.append(lab.floor())
            t, r = lab.apply("--check", "--diff")
            check.append(t)
            rss = max(rss, r)
            lab.fresh()
            floor.append(lab.floor())
            ran = lab.apply(report=first_report)
            t, r = ran
            first.append(t)
            cpu_first.append(ran.cpu)
            rss = max(rss, r)
            first_trips = max(first_trips, recap(first_report)[1])
        report = os.path.join(lab.dir, "noop.json")
        for _ in range(runs):
            floor.append(lab.floor())
            ran = lab.apply(report=report)
            t, r = ran
            noop.append(t)
            cpu_noop.append(ran.cpu)
            rss = max(rss, r)
        with open(report) as f:
            rep = json.load(f)
        changed = sum(h["changed"] for h in rep["recap"].values())
        trips = max(h["round_trips"] for h in rep["recap"].values())
        rows = {"floor": median(floor), "noop": median(noop), "check": median(check),
                "first": median(first), "first_trips": first_trips,
                "cpu_first": median(cpu_first) / n * 1000, "cpu_noop": median(cpu_noop) / n * 1000}
        return rows, trips, changed, rss
    finally:
        lab.down()
        rows.update(up=median(lab.up_times) if lab.up_times else 0,
                    down=median(lab.down_times) if lab.down_times else 0,
                    leftovers=lab.leftovers)
        shutil.rmtree(lab.dir, ignore_errors=True)


VENV = os.path.join(ROOT, "bench", ".venv")
COMPARE = os.path.join(ROOT, "bench", "compare")
# bootstrapctl's templates call its kubernetes_profile() (src/k8s/versions.rs), which Ansible
# and pyinfra do not have: for them the templates are copied with the current profile's row
# given as a variable, and the variables bootstrapctl's join play sets given too.
CURRENT_PROFILE = {"since": "1.27", "container_runtime_flag": False,
                   "runtime_endpoint_in_config": True, "pod_infra_flag": False,
                   "dockershim": False}
PEER_VARS = {"kube_profile": CURRENT_PROFILE, "kubelet_cgroup_driver": "systemd"}


def peer_templates(into):
    """The shipped templates with kubernetes_profile(...) replaced by the kube_profile variable,
    and without the filters only Ansible and bootstrapctl have."""
    src = os.path.join(ROOT, "templates")
    os.makedirs(into, exist_ok=True)
    call = re.compile(r"kubernetes_profile\([^)]*\)\)?")
    for name in os.listdir(src):
        with open(os.path.join(src, name)) as f:
            text = f.read()
        text = re.sub(r"kubernetes_profile\(kubernetes_version \| default\(''\)\)", "kube_profile", text)
        # Ansible's `bool` and `to_json` filters, which pyinfra's Jinja2 lacks (the bench's
        # values are booleans already; `tojson` is Jinja2's own).
        text = re.sub(r"\s*\|\s*bool\b", "", text).replace("| to_json", "| tojson")
        if call.search(text):
            sys.exit(f"bench: {name} calls kubernetes_profile in a form peer_templates does not know")
        with open(os.path.join(into, name), "w") as f:
            f.write(text)
    return into


# The peers' versions, pinned so that runs on different days compare the same tools.
PEERS = ["ansible-core==2.18.19", "pyinfra==3.10.0"]


def venv_tools():
    """ansible-playbook and pyinfra in bench/.venv, installed from PyPI at the pinned versions
    on first use (and again when the pins change)."""
    bin_dir = os.path.join(VENV, "bin")
    marker = os.path.join(VENV, "peers.txt")
    pinned = "\n".join(PEERS) + "\n"
    have = open(marker).read() if os.path.exists(marker) else ""
    if have != pinned or not os.path.exists(os.path.join(bin_dir, "pyinfra")):
        if not os.path.exists(os.path.join(bin_dir, "pip")):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(bin_dir, "pip"), "install", "-q", *PEERS], check=True)
        with open(marker, "w") as f:
            f.write(pinned)
    return os.path.join(bin_dir, "ansible-playbook"), os.path.join(bin_dir, "pyinfra")


def pyinfra_inventory(lab):
    path = os.path.join(lab.dir, "pyinfra_inventory.py")
    hosts = [(f"worker-{i + 1:02d}", {
        "ssh_hostname": a, "ssh_port": 2222, "ssh_user": "root",
        "ssh_key": os.path.join(lab.dir, "id_ed25519"),
        "ssh_known_hosts_file": os.path.join(lab.dir, "known_hosts"),
        "ssh_strict_host_key_checking": "yes"}) for i, a in enumerate(lab.addresses)]
    with open(path, "w") as f:
        f.write(f"workers = {hosts!r}\n")
    return path


def compare(binary, n, runs, subnet):
    """Medians of first apply and no-op for the floor, bootstrapctl, Ansible and pyinfra."""
    ansible, pyinfra = venv_tools()
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(COMPARE, "ansible.cfg"))
    lab = Lab(binary, n, subnet)
    templates = peer_templates(lab.dir + ".templates")
    extra_json = json.dumps(dict(EXTRA, templates=templates, **PEER_VARS))
    env = dict(env, BSCTL_BENCH_TEMPLATES=templates, BSCTL_BENCH_VARS=json.dumps(PEER_VARS))
    tools = {
        "bootstrapctl": lambda: lab.apply(),
        "ansible": lambda: run([ansible, "-i", os.path.join(lab.dir, "inventory.yaml"),
                                "--forks", str(n), "-e", extra_json,
                                os.path.join(COMPARE, "workers.ansible.yaml")], env=env),
        "pyinfra": lambda: run([pyinfra, "-y", "--parallel", str(n)]
                               + [a for k, v in EXTRA.items() for a in ("--data", f"{k}={v}")]
                               + [pyinfra_inventory(lab),
                                  os.path.join(COMPARE, "workers_pyinfra.py")], env=env),
    }
    times = {(t, w): [] for t in tools for w in ("first", "noop")}
    floor = []
    try:
        lab.up()
        lab.floor()
        for _ in range(runs):
            for name, apply in tools.items():
                lab.fresh()
                floor.append(lab.floor())
                times[(name, "first")].append(apply()[0])
                times[(name, "noop")].append(apply()[0])
        return median(floor), {k: median(v) for k, v in times.items()}
    finally:
        lab.down()
        shutil.rmtree(lab.dir, ignore_errors=True)
        shutil.rmtree(templates, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, nargs="*", default=[50, 200, 500])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/bootstrapctl"))
    ap.add_argument("--site", type=int, nargs="*", default=[], metavar="N",
                    help="the shipped site playbook on 1 control plane + N workers")
    ap.add_argument("--compare", type=int, nargs="*", metavar="N",
                    help="also run Ansible and pyinfra on N hosts (installed into bench/.venv)")
    ap.add_argument("--compare-runs", type=int, default=3,
                    help="runs per figure of the side-by-side comparison (Ansible is slow)")
    ap.add_argument("--subnet-base", type=int, default=56,
                    help="lab subnets: --hosts labs on BASE+i, --site on BASE+8+i, --compare on "
                    "BASE+16+i (127.SUBNET.x.y; benchmarks that run at once need apart bases)")
    ap.add_argument("--forks", choices=["n", "default"], default="n",
                    help="bootstrapctl's --forks: n, one per host, all at once, as the peers "
                    "get; or its default (50), as a user runs it")
    a = ap.parse_args()
    global FORKS
    FORKS = a.forks
    lists = [a.hosts, a.site, a.compare or []]
    if any(len(l) > 8 for l in lists) or a.subnet_base + 24 > 256:
        sys.exit("at most 8 sizes per kind, and --subnet-base + 24 must stay within 127.x")
    if os.geteuid() != 0:
        sys.exit("run as root: the lab starts sshd in namespaces")
    if not os.path.exists(a.binary):
        sys.exit(f"{a.binary} missing: run `cargo build --release` first")
    if not os.path.exists(os.path.join(os.path.dirname(a.binary), "bootstrapctl-standin")):
        # The lab then runs the full binary as each host's systemctl, sysctl and modprobe:
        # the hosts' processes cost more, and the first-apply figures with them.
        print("warning: no bootstrapctl-standin beside the binary: the hosts run the full "
              "binary as their stand-ins", file=sys.stderr)
    print(f"machine: {os.cpu_count()} cores; runs per figure: {a.runs}; medians in seconds; "
          "load average %.1f %.1f %.1f" % os.getloadavg())
    print("bootstrapctl --forks: " + ("one per host" if FORKS == "n" else "its default"))
    if a.hosts:
        print("cpu first / no-op: bootstrapctl's utime + stime per host, in ms")
        print(f"{'N':>5} {'floor':>7} {'no-op':>7} {'ratio':>6} {'check':>7} {'ratio':>6} "
              f"{'first':>7} {'ratio':>6} {'trips first':>11} {'trips no-op':>11} "
              f"{'cpu first':>9} {'cpu no-op':>9} {'RSS MiB':>8} {'lab up':>7} {'down':>5} "
              f"{'load':>5}")
    for i, n in enumerate(a.hosts):
        rows, trips, changed, rss = bench(a.binary, n, a.runs, a.subnet_base + i)
        f = rows["floor"]
        print(f"{n:>5} {f:7.2f} {rows['noop']:7.2f} {rows['noop']/f:6.2f} "
              f"{rows['check']:7.2f} {rows['check']/f:6.2f} {rows['first']:7.2f} "
              f"{rows['first']/f:6.2f} {rows['first_trips']:>11} {trips:>11} "
              f"{rows['cpu_first']:9.1f} {rows['cpu_noop']:9.1f} {rss/1024:8.1f} "
              f"{rows['up']:7.2f} {rows['down']:5.2f} {os.getloadavg()[0]:5.1f}"
              + ("" if changed == 0 else f"  (no-op run changed {changed}!)")
              + ("" if not rows["leftovers"] else
                 f"  (lab down left {len(rows['leftovers'])}: {rows['leftovers'][:3]})"))
        sys.stdout.flush()
    for i, n in enumerate(a.site):
        if i == 0:
            print(f"\nshipped site playbook, 1 control plane + N workers ({a.runs} runs; medians "
                  "in seconds; floor of the same N + 1 hosts):")
            print(f"{'N':>5} {'floor':>7} {'first (Ready)':>14} {'ratio':>6} {'no-op':>7} "
                  f"{'ratio':>6} {'trips/host':>10} {'RSS MiB':>8} {'CPU s first':>11}")
        rows, trips, changed, rss = site_bench(a.binary, n, a.runs, a.subnet_base + 8 + i)
        f = rows["floor"]
        print(f"{n:>5} {f:7.2f} {rows['first']:14.2f} {rows['first']/f:6.2f} {rows['noop']:7.2f} "
              f"{rows['noop']/f:6.2f} {trips:>10} {rss/1024:8.1f} {rows['first_cpu']:11.1f}"
              + ("" if changed == 0 else f"  (no-op run changed {changed}!)"))
        sys.stdout.flush()
    for i, n in enumerate(a.compare or []):
        if i == 0:
            print(f"\nside by side (same lab and workload; {a.compare_runs} runs; medians in seconds, "
                  "ratio to the floor):")
            print(f"{'N':>5} {'floor':>7} {'tool':>13} {'first':>7} {'ratio':>6} {'no-op':>7} "
                  f"{'ratio':>6}")
        f, t = compare(a.binary, n, a.compare_runs, a.subnet_base + 16 + i)
        for tool in ("bootstrapctl", "ansible", "pyinfra"):
            first, noop = t[(tool, "first")], t[(tool, "noop")]
            print(f"{n:>5} {f:7.2f} {tool:>13} {first:7.2f} {first/f:6.2f} {noop:7.2f} "
                  f"{noop/f:6.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
