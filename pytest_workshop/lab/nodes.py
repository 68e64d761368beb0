"""Lab "machines": one network + pid + mount + uts namespace each, with its own dockerd.

Layout:
- a switch: bridge ``br0`` inside netns ``<prefix>-sw`` (never a bridge in the host's namespace:
  the host's FORWARD policy and bridge-nf-call-iptables would drop node-to-node traffic);
- node i: netns ``<prefix>-n<i>`` with ``eth0`` = ``<segment>.(10+i)``, its veth peer on the switch,
  no default route (nothing can leave); a pid namespace whose pid 1 is docker-init (tini), so
  SIGKILL to that one process crashes the whole "machine"; a private mount namespace where
  /etc/docker, /var/lib/docker, /run/docker and /run/containerd are the node's own directories
  (dockerd 20.10 hard-codes them);
- a client netns ``<prefix>-cl`` (``<segment>.2``) from which the forwarder reaches the nodes the
  way a laptop on the lab network would.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.errors import LabError
from pytest_workshop.lab import process
from pytest_workshop.lab.process import ProcessRecord

DOCKER_INIT = "/usr/bin/docker-init"
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
NODE_BINDS = {
    "etc-docker": "/etc/docker",
    "var-lib-docker": "/var/lib/docker",
    "run-docker": "/run/docker",
    "run-containerd": "/run/containerd",
    # the machine's own named network namespaces (the DevStack machine's ovnmeta-<network>):
    # on the host's /run/netns they would outlive the machine as dangling entries
    "run-netns": "/run/netns",
    # the machine's own lab.env (machine_env.py) and etcd data, as each attendee VM has its own
    "etc-workshop": "/etc/workshop",
    "var-lib-etcd": "/var/lib/etcd",
}


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str  # also the node's hostname and Swarm node name
    prefix: str
    address: str  # on the lab segment
    dir: str
    bip: str  # the node engine's docker0, only inside the node's netns
    pool: str  # the node engine's local networks, only inside the node's netns
    tcp_port: int | None = None  # the engine also listens on tcp://0.0.0.0:<port> in the node's netns
    tls_dir: str = ""  # certificates (lab/certs.py): the engine also listens with TLS on TLS_PORT

    @property
    def netns(self) -> str:
        return f"{self.prefix}-n{self.index}"

    @property
    def switch_port(self) -> str:
        return f"n{self.index}"

    @property
    def cgroup(self) -> str:
        return f"{self.prefix}-n{self.index}"

    @property
    def socket(self) -> str:
        return f"{self.dir}/docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> str:
        return f"{self.dir}/dockerd.log"

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def node_specs(state_dir: Path, prefix: str, count: int, segment: str) -> list[NodeSpec]:
    net = ipaddress.ip_network(segment)
    if net.num_addresses < 16 + count:
        raise LabError(f"segment {segment} is too small for {count} nodes", hint="use a /24")
    return [
        NodeSpec(
            index=i,
            name=f"node{i}",
            prefix=prefix,
            address=str(net.network_address + 10 + i),
            dir=str(state_dir / "nodes" / f"node{i}"),
            bip=f"10.{110 + i}.0.1/24",
            pool=f"10.{110 + i}.0.0/16",
        )
        for i in range(1, count + 1)
    ]


def client_address(segment: str) -> str:
    return str(ipaddress.ip_network(segment).network_address + 2)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and r.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed: {r.stderr.strip()}", hint="the lab needs root and iproute2")
    return r


def host_routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10
    )
    nets = []
    for r in json.loads(out.stdout or "[]"):
        dst = r.get("dst", "")
        if not dst or dst == "default":
            continue
        if True:
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


# --- the segment --------------------------------------------------------------------------------


def create_switch(prefix: str) -> str:
    sw = f"{prefix}-sw"
    if netns_exists(sw):
        raise LabError(
            f"network namespace {sw} already exists (another lab?)",
            hint="run `workshop lab down`, or use another --prefix",
        )
    _ip("netns", "add", sw)
    _ip("-n", sw, "link", "set", "lo", "up")
    _ip("-n", sw, "link", "add", "br0", "type", "bridge")
    _ip("-n", sw, "link", "set", "br0", "up")
    return sw


def attach(prefix: str, netns: str, port: str, address: str, segment: str) -> None:
    """A netns with eth0 on the switch. The veth is created directly in both namespaces:
    nothing ever appears in the host's namespace."""
    if netns_exists(netns):
        raise LabError(f"network namespace {netns} already exists (another lab?)", hint="run `workshop lab down` first")
    sw = f"{prefix}-sw"
    _ip("netns", "add", netns)
    _ip("link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", port, "netns", sw)
    _ip("-n", sw, "link", "set", port, "master", "br0", "up")
    plen = ipaddress.ip_network(segment).prefixlen
    _ip("-n", netns, "addr", "add", f"{address}/{plen}", "dev", "eth0")
    _ip("-n", netns, "link", "set", "eth0", "up")
    _ip("-n", netns, "link", "set", "lo", "up")


def delete_netns(name: str) -> bool:
    if not netns_exists(name):
        return False
    _ip("netns", "del", name, check=False)
    return True


# --- the machine --------------------------------------------------------------------------------


def _init_script(spec: NodeSpec) -> str:
    cgroups = "\n".join(
        f"mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}" for c in CGROUP_CONTROLLERS
    )
    binds = "\n".join(
        f"mkdir -p {target} && mount --bind {spec.dir}/{src} {target}" for src, target in NODE_BINDS.items()
    )
    # A machine-id of its own, as each VM has (systemd's, D-Bus's; the readiness suite tells clones
    # apart by it). `ip netns exec` remounts /sys, which drops the cgroup mounts dockerd needs ("Devices cgroup
    # isn't mounted"); re-create them. rprivate: nothing mounted here propagates to the host.
    return f"""set -e
mount --make-rprivate /
hostname {spec.name}
mount -t tmpfs cgroup_root /sys/fs/cgroup
{cgroups}
mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
{binds}
mount --bind {spec.dir}/machine-id /etc/machine-id
exec {DOCKER_INIT} -- sleep infinity
"""


def _child_of(pid: int, timeout: float = 5.0) -> int:
    def first_child() -> int:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return int(children[0]) if children else 0

    return process.wait_started(
        f"process {pid} started no child", first_child, timeout, "read the node's init.log", 0.005
    )


def boot(spec: NodeSpec) -> ProcessRecord:
    """Start the node's pid 1. Run-state from a previous life is wiped, as a reboot would."""
    for sub in NODE_BINDS:
        Path(spec.dir, sub).mkdir(parents=True, exist_ok=True)
    for sub in ("run-docker", "run-containerd", "run-netns"):
        shutil.rmtree(Path(spec.dir, sub), ignore_errors=True)
        Path(spec.dir, sub).mkdir()
    machine_id = Path(spec.dir, "machine-id")
    if not machine_id.is_file():
        machine_id.write_text(secrets.token_hex(16) + "\n")
    script = Path(spec.dir, "init.sh")
    script.write_text(_init_script(spec))
    # its own PID, UTS and mount namespaces, in its network namespace (no word holds a space)
    argv = [*f"ip netns exec {spec.netns} unshare --pid --fork --mount-proc --uts --mount sh".split(), str(script)]
    with open(Path(spec.dir, "init.log"), "ab") as log:
        launcher = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    init_pid = _child_of(launcher.pid)
    # The init execs docker-init once its mounts are done; wait for that so callers can nsenter.
    gone = False

    def runs_docker_init() -> bool:
        nonlocal gone
        try:
            return Path(f"/proc/{init_pid}/cmdline").read_bytes().startswith(DOCKER_INIT.encode())
        except OSError:
            gone = True  # the init died: waiting longer cannot help
            return False

    def init_gone() -> str | None:
        return "its init is gone" if gone else None

    process.wait_started(
        f"{spec.name} did not boot", runs_docker_init, 10, f"read {spec.dir}/init.log", abort=init_gone
    )
    return ProcessRecord(
        f"{spec.name}-init",
        init_pid,
        (DOCKER_INIT, "--", "sleep", "infinity"),
        process.start_ticks(init_pid),
        str(Path(spec.dir, "init.log")),
    )


def nsenter(
    init: ProcessRecord,
    argv: list[str],
    log: Path,
    name: str,
    uid: int | None = None,
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start argv inside a node (all its namespaces) as a child of the node's init.

    `setsid -f` detaches it at once, so nsenter exits and the daemon is re-parented to the
    node's pid 1 (tini, which reaps). A waiting nsenter would linger in the host's namespace:
    it stops itself when its child is SIGSTOPped and then never reaps it.
    """
    if not process.is_ours(init):
        raise LabError(f"{name}: the node is not running", hint="boot it first")
    ns = _pid_ns(init.pid)
    before = set(node_pids(init, ns))
    ids = ["-S", str(uid), "-G", str(uid)] if uid is not None else []
    cmd = ["nsenter", "-t", str(init.pid), "-n", "-m", "-u", "-p", *ids, "--", "setsid", "-f", *argv]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        launcher = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=15, env=env
        )
    if launcher.returncode != 0:
        raise LabError(
            f"{name}: could not start inside the node (nsenter exited {launcher.returncode})", hint=f"read {log}"
        )
    want = [a.encode() for a in argv]
    # a daemon may retitle itself at once (sshd: "sshd: /usr/sbin/sshd -D [listener] ..."): then
    # it is known by its executable, as process.is_ours knows it
    binary = shutil.which(argv[0]) or argv[0]
    executable = os.path.realpath(binary)

    def started() -> int:
        for pid in set(node_pids(init, ns)) - before:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if cmdline == want or (exe == executable and cmdline[:1] != want[:1] and b" " in (cmdline[:1] or [b""])[0]):
                return pid
        return 0

    pid = process.wait_started(f"{name}: started inside the node but not found running", started, 5, f"read {log}")
    return ProcessRecord(name, pid, tuple(argv), process.start_ticks(pid), str(log))


def run_inside(
    init: ProcessRecord, argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot command inside a node (all its namespaces) and wait for it, bounded.

    `timeout` (coreutils) runs inside too, so a command that overruns is killed there rather than
    left behind in the node when the waiting nsenter gives up."""
    cmd = ["nsenter", "-t", str(init.pid), "-n", "-m", "-u", "-p", "--", "timeout", "-k", "2", f"{timeout:g}", *argv]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout + 5, env=env)


TLS_PORT = 2376  # Docker's conventional port for TLS


def dockerd_argv(spec: NodeSpec) -> list[str]:
    # --tls=false says it on purpose: without it dockerd 20.10 sleeps 15 s at start-up to warn
    tcp = ["--host", f"tcp://0.0.0.0:{spec.tcp_port}", "--tls=false"] if spec.tcp_port else []
    if spec.tls_dir:
        d = spec.tls_dir
        tcp = [
            "--host",
            f"tcp://0.0.0.0:{TLS_PORT}",
            "--tlsverify",
            f"--tlscacert={d}/ca.pem",
            f"--tlscert={d}/server-cert.pem",
            f"--tlskey={d}/server-key.pem",
        ]
    # fmt: skip below: flag and value side by side, as dockerd's documentation writes them
    return [
        "dockerd",
        "--host", spec.host, *tcp,
        "--pidfile", f"{spec.dir}/dockerd.pid",
        "--bip", spec.bip,
        "--default-address-pool", f"base={spec.pool},size=24",
        "--cgroup-parent", f"/{spec.cgroup}",
        "--log-level", "warn",
    ]  # fmt: skip


def start_dockerd(spec: NodeSpec, init: ProcessRecord) -> ProcessRecord:
    Path(spec.dir, "dockerd.pid").unlink(missing_ok=True)  # "pid file found, ensure docker is not running"
    return nsenter(init, dockerd_argv(spec), Path(spec.log), f"{spec.name}-dockerd")


def power_off(spec: NodeSpec, init: ProcessRecord | None) -> list[str]:
    """For `down`: crash the machine if it runs, else thaw what may be left frozen; what was done."""
    if init and crash(spec, init):
        return [f"stopped {spec.name} (pid {init.pid} and everything in it)"]
    thaw(spec)
    return []


def crash(spec: NodeSpec, init: ProcessRecord) -> bool:
    """Power loss: SIGKILL pid 1 of the node's pid namespace; the kernel kills everything in it."""
    thaw(spec)  # frozen processes cannot die
    ns = _pid_ns(init.pid)
    if not process.kill(init):
        return False
    wait_until(lambda: not node_pids(init, ns), 10, step=0.02)
    return True


# --- freezing (a hung machine) -------------------------------------------------------------------


def _freezer(spec: NodeSpec) -> Path:
    return Path("/sys/fs/cgroup/freezer") / spec.cgroup


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def node_pids(init: ProcessRecord, ns: str | None = None) -> list[int]:
    ns = ns or _pid_ns(init.pid)
    if ns is None:
        return []
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _pid_ns(int(p.name)) == ns]


def freeze(spec: NodeSpec, init: ProcessRecord) -> None:
    """Hang the whole node (daemons and containers). SIGSTOP would not do: nsenter stops too."""
    cg = _freezer(spec)
    cg.mkdir(exist_ok=True)
    for pid in node_pids(init):
        with contextlib.suppress(OSError):
            (cg / "cgroup.procs").write_text(str(pid))
    (cg / "freezer.state").write_text("FROZEN")


def thaw(spec: NodeSpec) -> None:
    state = _freezer(spec) / "freezer.state"
    if state.exists():
        state.write_text("THAWED")


def is_frozen(spec: NodeSpec) -> bool:
    state = _freezer(spec) / "freezer.state"
    return state.exists() and state.read_text().strip() != "THAWED"


def remove_cgroups(spec: NodeSpec) -> list[str]:
    """dockerd leaves /<cgroup>/<container> directories in every hierarchy; remove them deepest first."""
    removed = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / spec.cgroup
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
            removed.append(str(top))
    return removed


# --- partitions (cable pulled) -------------------------------------------------------------------


def partition(spec: NodeSpec) -> None:
    _ip("-n", f"{spec.prefix}-sw", "link", "set", spec.switch_port, "down")


def heal(spec: NodeSpec) -> None:
    _ip("-n", f"{spec.prefix}-sw", "link", "set", spec.switch_port, "up")


def is_partitioned(spec: NodeSpec) -> bool:
    r = _ip("-n", f"{spec.prefix}-sw", "-o", "link", "show", spec.switch_port, check=False)
    return r.returncode == 0 and "state DOWN" in r.stdout and ",UP" not in r.stdout.split(">")[0]
