"""What a lab machine is, read through its Docker engine, for the readiness suite (lab0).

A short container in the machine's own namespaces (host network, PID and UTS; its root at
``/host``, read-only) prints the facts: hostname, machine-id, free memory and disk, the etcd
binaries and their versions, who listens on the workshop's ports, the machine's addresses. Then
listeners on the ports still free and senders on every other machine show which ports pass
between the machines. An engine that answers is the way in, as the workshop itself uses it: no
SSH. The containers run the reference app's image (its python, built offline like the test
image) and carry the run's labels, so a run killed half-way leaves nothing the sweep misses.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.errors import CheckFailed


@dataclass(frozen=True)
class WorkshopPort:
    proto: str  # "tcp" or "udp"
    port: int
    use: str
    owners: tuple[str, ...]  # processes that hold it legitimately ("" : the kernel's, a VXLAN socket)
    component: str = "swarm"  # whose port it is

    def __str__(self) -> str:
        return f"{self.proto.upper()} {self.port} ({self.use})"


WORKSHOP_PORTS = (
    WorkshopPort("tcp", 2377, "Swarm's cluster management", ("dockerd",)),
    WorkshopPort("tcp", 7946, "Swarm's gossip", ("dockerd",)),
    WorkshopPort("udp", 7946, "Swarm's gossip", ("dockerd",)),
    WorkshopPort("udp", 4789, "overlay networks' VXLAN", ("", "dockerd")),
    WorkshopPort("tcp", 2379, "etcd's clients", ("etcd",), "etcd"),
    WorkshopPort("tcp", 2380, "etcd's peers", ("etcd",), "etcd"),
)

FACTS = r"""
import json, os, re, socket, subprocess, sys
root_dir = sys.argv[1]
def run(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except Exception:
        return ""
facts = {"hostname": socket.gethostname()}
try:
    facts["machine_id"] = open("/host/etc/machine-id").read().strip()
except OSError:
    facts["machine_id"] = ""
meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
facts["mem_available_kib"] = int(meminfo["MemAvailable"].split()[0])
st = os.statvfs("/host" + root_dir)
facts["disk_free_kib"] = st.f_bavail * st.f_frsize // 1024
facts["binaries"] = {}
for name, arg in (("etcd", "--version"), ("etcdctl", "version")):
    path = run("chroot", "/host", "/bin/sh", "-c", "command -v " + name).strip()
    found = re.search(r"(\d+\.\d+\.\d+)", run("chroot", "/host", path, arg)) if path else None
    facts["binaries"][name] = {"path": path, "version": found.group(1) if found else ""}
sockets = {}
for proto in ("tcp", "tcp6", "udp", "udp6"):
    for line in open("/proc/net/" + proto).read().splitlines()[1:]:
        f = line.split()
        if f[3] != ("0A" if proto.startswith("tcp") else "07"):
            continue  # TCP: listening only; UDP: unconnected only
        sockets.setdefault(f[9], set()).add((proto[:3], int(f[1].rsplit(":", 1)[1], 16)))
owners = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            if link.startswith("socket:[") and link[8:-1] in sockets:
                owners[link[8:-1]] = open("/proc/%s/comm" % pid).read().strip() + " (pid %s)" % pid
    except OSError:
        pass
facts["listening"] = sorted({(p, port, owners.get(inode, "")) for inode, held in sockets.items() for p, port in held})
facts["addresses"] = re.findall(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", run("ip", "-o", "-4", "addr", "show", "scope", "global"))
print(json.dumps(facts))
"""

# listen PORTS SECONDS: bind each free port (tcp:N, udp:N); a line "heard SPEC WORDS" per hello
# send NAME SECONDS TARGETS: say hello to each target (tcp:ADDR:PORT, udp:ADDR:PORT) at once; the outcomes
PROBE = r"""
import json, select, socket, sys, threading, time
role, end = sys.argv[1], time.monotonic() + float(sys.argv[3])
if role == "listen":
    socks = {}
    for spec in sys.argv[2].split(","):
        proto, port = spec.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", int(port)))
        except OSError as e:
            print("unbound", spec, e.strerror, flush=True)
            continue
        if proto == "tcp":
            s.listen(16)
        socks[s] = spec
    print("ready", flush=True)
    while time.monotonic() < end:
        for s in select.select(list(socks), [], [], 0.2)[0]:
            try:
                if socks[s].startswith("tcp"):
                    conn, _ = s.accept()
                    conn.settimeout(1)
                    data = conn.recv(200)
                    conn.close()
                else:
                    data = s.recvfrom(200)[0]
            except OSError:
                continue
            print("heard", socks[s], data.decode(errors="replace").strip(), flush=True)
else:
    name, outcome = sys.argv[2], {}
    def hello(target):
        proto, addr, port = target.split(":")
        words = ("from=" + name).encode()
        try:
            if proto == "tcp":
                with socket.create_connection((addr, int(port)), timeout=2) as s:
                    s.sendall(words + b"\n")
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    for _ in range(3):
                        s.sendto(words, (addr, int(port)))
                        time.sleep(0.1)
            outcome[target] = "sent"
        except socket.timeout:
            outcome[target] = "timed out"
        except OSError as e:
            outcome[target] = e.strerror or str(e)
    threads = [threading.Thread(target=hello, args=(t,)) for t in sys.argv[4].split(",")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    print(json.dumps(outcome), flush=True)
"""

NAME_LABEL = "pytest-workshop.names"  # the prefix of the run's names (docker ps), carried as a label too
LISTEN_S = 60.0  # at the most: the listeners are stopped once every sender has finished


@dataclass
class Survey:
    """Every machine of a lab, as its engine answered: those that did, those that did not (host ->
    why), the guide's images each lacked when the survey began, and each clock's offset."""

    machines: list[Machine]
    unreachable: dict[str, str]
    images_missing: dict[str, list[str]]  # machine's host -> the images it lacked
    clock_offsets: dict[str, float]  # machine's host -> its clock minus this machine's, seconds
    _paths: list[PortPath] | None = None
    probe_image: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def label_of(self, host: str) -> str:
        return next((m.label for m in self.machines if m.host == host), host)

    def paths(self) -> list[PortPath]:
        if self._paths is None:
            self._paths = probe_paths(self.machines, self.probe_image, self.labels)
        return self._paths


def survey(engines: dict[str, Any], unreachable: dict[str, str], images: list[str], labels: dict[str, str]) -> Survey:
    """Read every machine (``engines``: host -> client): ``docker info``, its clock against this
    machine's, which of the guide's ``images`` it lacks; then the facts, from the reference app's
    image (built offline where it is missing: the facts need its python)."""
    from pytest_workshop.components.app_image import APP_IMAGE, ensure_app_image
    from pytest_workshop.components.docker import image_exists

    machines, missing, offsets = [], {}, {}
    for host, client in engines.items():
        before = time.time()
        info = client.info()
        after = time.time()
        machine = Machine(host, client, info)
        machines.append(machine)
        offsets[machine.host] = engine_time(str(info.get("SystemTime", ""))) - (before + after) / 2
        missing[machine.host] = [ref for ref in images if not image_exists(client, ref)]
    with concurrent.futures.ThreadPoolExecutor(max(1, len(machines))) as pool:
        list(pool.map(lambda m: ensure_app_image(m.client), machines))
    for m in machines:  # two machines with one hostname (cloned VMs) stay apart in every message
        if sum(other.name == m.name for other in machines) > 1:
            m.label = f"{m.name} at {m.host}"
    read_all(machines, APP_IMAGE, labels)
    return Survey(machines, unreachable, missing, offsets, probe_image=APP_IMAGE, labels=labels)


def engine_time(stamp: str) -> float:
    """An engine's SystemTime ("2026-12-04T04:33:35.025717306Z", or with an offset) as epoch seconds."""
    import datetime
    import re

    found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", stamp)
    if found is None:
        return float("nan")
    zone = "+00:00" if found.group(3) in (None, "Z") else found.group(3)
    fraction = float(found.group(2) or 0)
    return datetime.datetime.fromisoformat(found.group(1) + zone).timestamp() + fraction


@dataclass
class Machine:
    """One lab machine: its engine's host, its client, what ``docker info`` says and the facts."""

    host: str
    client: Any
    info: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what messages call it: its name, or with its host where names repeat

    @property
    def name(self) -> str:
        return str(self.info.get("Name") or self.host)

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def held(self, port: WorkshopPort) -> list[str]:
        """Who listens on ``port`` here ("" for the kernel)."""
        return [
            owner
            for proto, number, owner in self.facts.get("listening", [])
            if (proto, number) == (port.proto, port.port)
        ]

    def address_for(self, other: Machine) -> str | None:
        """The address ``other`` reaches this machine at: one in a network they share, else its first."""
        mine = [ipaddress.ip_interface(a) for a in self.facts.get("addresses", [])]
        theirs = [ipaddress.ip_interface(a).network for a in other.facts.get("addresses", [])]
        shared = [a for a in mine if any(a.ip in net for net in theirs)]
        chosen = shared or mine
        return str(chosen[0].ip) if chosen else None


def _run(client: Any, image: str, argv: list[str], labels: dict[str, str], seconds: float) -> Any:
    from pytest_workshop.components.docker import bounded

    return bounded(client, seconds + 10).containers.run(
        image,
        ["python3", "-c", *argv],
        detach=True,
        name=f"{labels.get(NAME_LABEL, 'workshop-')}ready-{secrets.token_hex(3)}",
        labels=labels,
        network_mode="host",
        pid_mode="host",
        uts_mode="host",
        cap_add=["SYS_PTRACE"],  # another process's sockets: /proc/PID/fd
        volumes={"/": {"bind": "/host", "mode": "ro"}},
    )


def _finish(container: Any, seconds: float, what: str, machine: str) -> str:
    try:
        status = container.wait(timeout=seconds)
        out = str(container.logs().decode(errors="replace"))
    finally:
        container.remove(force=True)
    if status.get("StatusCode") != 0:
        raise CheckFailed(
            f"{machine}: the {what} container exited {status.get('StatusCode')}: {' '.join(out.split())[-300:]}",
            hint="the machine's engine must run a privileged container of the lab's images (`docker run --privileged`)",
        )
    return out


def read_facts(machine: Machine, image: str, labels: dict[str, str], seconds: float = 20) -> dict[str, Any]:
    root = str(machine.info.get("DockerRootDir") or "/var/lib/docker")
    container = _run(machine.client, image, [FACTS, root], labels, seconds)
    out = _finish(container, seconds, "facts", machine.label)
    machine.facts = json.loads(out.strip().splitlines()[-1])
    machine.facts["listening"] = [tuple(x) for x in machine.facts["listening"]]
    return machine.facts


def read_all(machines: list[Machine], image: str, labels: dict[str, str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max(1, len(machines))) as pool:
        list(pool.map(lambda m: read_facts(m, image, labels), machines))


@dataclass(frozen=True)
class PortPath:
    """One port from one machine to another, and how it went."""

    source: str
    target: str
    port: WorkshopPort
    outcome: str  # "passes", or what happened ("timed out", "Connection refused", "no datagram arrived")

    @property
    def passes(self) -> bool:
        return self.outcome == "passes"


def probe_paths(machines: list[Machine], image: str, labels: dict[str, str]) -> list[PortPath]:
    """Every workshop port from every machine to every other: a listener where the port is free
    (TCP and UDP), the port's own service where it holds it (TCP only: a UDP service does not
    answer a stranger's datagram, so that path is not probed and not listed)."""
    if len(machines) < 2:
        return []
    listeners = {}
    for m in machines:
        free = [p for p in WORKSHOP_PORTS if not m.held(p)]
        if free:
            specs = ",".join(f"{p.proto}:{p.port}" for p in free)
            listeners[m.host] = _run(m.client, image, [PROBE, "listen", specs, str(LISTEN_S)], labels, LISTEN_S)
    for m in machines:
        if m.host in listeners:
            _wait_ready(listeners[m.host], m.label)
    sent = _send_all(machines, image, labels)
    time.sleep(0.3)  # the last datagrams on their way
    heard = {host: _heard(c) for host, c in listeners.items()}
    return [_outcome(src, dst, port, sent, heard) for src, dst, port in _pairs(machines)]


def _heard(container: Any) -> dict[str, set[str]]:
    """What a listener heard, by port ("udp:4789" -> {"from=HOST", ...}); it is stopped and removed."""
    try:
        container.kill()
        lines = container.logs().decode(errors="replace").splitlines()
    finally:
        container.remove(force=True)
    heard: dict[str, set[str]] = {}
    for line in lines:
        words = line.split(maxsplit=2)
        if len(words) == 3 and words[0] == "heard":
            heard.setdefault(words[1], set()).add(words[2])
    return heard


def _pairs(machines: list[Machine]) -> list[tuple[Machine, Machine, WorkshopPort]]:
    return [
        (src, dst, port)
        for dst in machines
        for src in machines
        if src is not dst
        for port in WORKSHOP_PORTS
        if port.proto == "tcp" or not dst.held(port)
    ]


def _wait_ready(container: Any, machine: str) -> None:
    from pytest_workshop.components.waiting import wait_for

    def ready() -> bool:
        container.reload()
        return b"ready" in container.logs() or container.status == "exited"

    wait_for(f"{machine}: the port listener did not start", ready, 10, hint="read the machine's engine log")


def _send_all(machines: list[Machine], image: str, labels: dict[str, str]) -> dict[tuple[str, str], str]:
    """(source host, "proto:address:port") -> what the sender saw."""

    def send(src: Machine) -> dict[tuple[str, str], str]:
        targets = [f"{p.proto}:{dst.address_for(src)}:{p.port}" for s, dst, p in _pairs(machines) if s is src]
        container = _run(src.client, image, [PROBE, "send", src.host, "0", ",".join(targets)], labels, 30)
        out = json.loads(_finish(container, 60, "sender", src.label).strip().splitlines()[-1])
        return {(src.host, target): outcome for target, outcome in out.items()}

    found: dict[tuple[str, str], str] = {}
    with concurrent.futures.ThreadPoolExecutor(len(machines)) as pool:
        for part in pool.map(send, machines):
            found.update(part)
    return found


def _outcome(
    src: Machine,
    dst: Machine,
    port: WorkshopPort,
    sent: dict[tuple[str, str], str],
    heard: dict[str, dict[str, set[str]]],
) -> PortPath:
    target = f"{port.proto}:{dst.address_for(src)}:{port.port}"
    said = sent.get((src.host, target), "not tried")
    if said != "sent":
        return PortPath(src.label, dst.label, port, said)
    if port.proto == "udp" and f"from={src.host}" not in heard.get(dst.host, {}).get(f"udp:{port.port}", set()):
        return PortPath(src.label, dst.label, port, "no datagram arrived")
    return PortPath(src.label, dst.label, port, "passes")
