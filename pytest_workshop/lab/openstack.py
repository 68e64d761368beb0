"""The embedded lab's OpenStack: a DevStack-like machine for lab4.

One more lab machine, ``devstack`` (netns ``<prefix>-n0``, booted like the Swarm nodes: own pid,
mount and uts namespaces, pid 1 docker-init), on the lab switch but not in the Swarm. Inside it:

- MariaDB (Neutron's database; ``neutron-db-manage`` fails on SQLite), Keystone (uwsgi, SQLite),
  the Neutron API (uwsgi ``neutron.wsgi.api``, ML2/OVN, no RPC);
- OVS with the userspace ``netdev`` datapath (the kernel has no openvswitch module) and OVN
  (NB/SB databases, northd, ovn-controller whose chassis is the machine's hostname);
- kuryr-libnetwork, and the machine's own dockerd, which finds kuryr through
  ``/etc/docker/plugins/kuryr.spec`` (the machine's own /etc/docker). This dockerd keeps the
  default exec-root: kuryr rejects any other SandboxKey.

Everything listens on the machine's loopback only. Keystone and Neutron are reachable from the
host through a forwarder on 127.0.0.1 with the *same* port numbers, so the catalogue's URLs work
both inside the machine (Neutron, kuryr) and from where pytest runs.

All configuration, databases, logs and sockets live under ``<lab dir>/openstack``; nothing is
written to the host's /etc. Passwords are random per lab, kept in files readable by root only.
The services run from their own virtualenv (``scripts/install`` creates it from
``scripts/openstack-requirements.txt``), so their pins never constrain the plugin's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import string
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import LabError
from pytest_workshop.lab import nodes
from pytest_workshop.lab.process import ProcessRecord

VENV = Path(os.environ.get("WORKSHOP_OPENSTACK_VENV", "/opt/pytest-workshop/openstack"))
REGION = "RegionOne"
HOSTNAME = "devstack"
KURYR_PORT = 23750  # inside the machine only; Docker reaches it through kuryr.spec
OVN_NB_PORT, OVN_SB_PORT = 6641, 6642  # inside the machine only
DOCKER_ENGINE_PORT = 2375  # inside the machine only, as devstack-plugin-container configures dockerd

# binary -> Debian package
REQUIRED = {
    "/usr/sbin/mariadbd": "mariadb-server",
    "/usr/sbin/ovs-vswitchd": "openvswitch-switch",
    "/usr/bin/ovn-northd": "ovn-central",
    "/usr/bin/ovn-controller": "ovn-host",
}
VENV_PROGRAMS = ("uwsgi", "keystone-manage", "neutron-db-manage", "kuryr-server", "neutron-ovn-agent")

# Start order; `down` and a crash stop them all at once (they share the machine's pid namespace).
SERVICES = (
    "ovsdb-server",
    "ovs-vswitchd",
    "ovn-nb",
    "ovn-sb",
    "ovn-northd",
    "ovn-controller",
    "mariadb",
    "keystone",
    "neutron-api",
    "kuryr",
    "ovn-agent",
)


def missing() -> list[str]:
    """What `scripts/install` has not installed yet, each with the way to install it."""
    found = [f"{path} (apt-get install {pkg})" for path, pkg in REQUIRED.items() if not Path(path).exists()]
    absent = [p for p in VENV_PROGRAMS if not (VENV / "bin" / p).exists()]
    if absent:
        found.append(f"{', '.join(absent)} in {VENV} (the OpenStack virtualenv: run scripts/install)")
    return found


@dataclass(frozen=True)
class OpenStackSpec:
    dir: str  # <lab dir>/openstack
    keystone_port: int
    neutron_port: int
    venv: str = str(VENV)

    def path(self, *parts: str) -> Path:
        return Path(self.dir, *parts)

    @property
    def keystone_url(self) -> str:
        return f"http://127.0.0.1:{self.keystone_port}/v3"

    @property
    def neutron_url(self) -> str:
        return f"http://127.0.0.1:{self.neutron_port}/"

    @property
    def clouds_yaml(self) -> Path:
        return self.path("clouds.yaml")

    @property
    def db_socket(self) -> Path:
        return self.path("run", "mysqld.sock")

    def bin(self, program: str) -> str:
        return f"{self.venv}/bin/{program}"

    def env(self) -> dict[str, str]:
        """The environment every OpenStack process runs with (also kuryr's `ovs-vsctl` calls)."""
        run = self.path("run")
        return {
            "PATH": f"{self.venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir),
            "LANG": "C.UTF-8",
            "OVS_RUNDIR": str(run / "ovs"),
            "OVS_DBDIR": str(self.path("ovs")),
            "OVS_LOGDIR": str(self.path("logs")),
            "OVN_RUNDIR": str(run / "ovn"),
            "OVN_DBDIR": str(self.path("ovn")),
            "OVN_LOGDIR": str(self.path("logs")),
            "OS_KEYSTONE_CONFIG_DIR": str(self.path("etc")),
            "OS_KEYSTONE_CONFIG_FILES": "keystone.conf",
            "OS_NEUTRON_CONFIG_DIR": str(self.path("etc")),
            "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def machine_spec(state_dir: Path, prefix: str, segment: str) -> nodes.NodeSpec:
    """The DevStack machine: node index 0 on the lab segment (Swarm nodes are 1..N)."""
    import ipaddress

    net = ipaddress.ip_network(segment)
    return nodes.NodeSpec(
        index=0,
        name=HOSTNAME,
        prefix=prefix,
        address=str(net.network_address + 10),
        dir=str(state_dir / "nodes" / HOSTNAME),
        bip="10.110.0.1/24",
        pool="10.110.0.0/16",
        # DevStack's container plugin has dockerd listen on TCP as well (DOCKER_ENGINE_PORT);
        # here that is the machine's own network namespace only
        tcp_port=DOCKER_ENGINE_PORT,
    )


def new_passwords() -> dict[str, str]:
    return {who: secrets.token_urlsafe(18) for who in ("admin", "demo", "service", "database")}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_passwords(spec: OpenStackSpec) -> dict[str, str]:
    data: dict[str, str] = json.loads(spec.path("passwords.json").read_text())
    return data


# --- configuration files --------------------------------------------------------------------------


TEMPLATES = Path(__file__).parent / "templates"
# the service configs, written from templates/ (root-only: they hold the lab's passwords)
CONFIG_FILES = (
    "my.cnf",
    "keystone.conf",
    "keystone-uwsgi.ini",
    "neutron-uwsgi.ini",
    "neutron.conf",
    "ml2_conf.ini",
    "kuryr.conf",
    "ovn_agent.ini",
)


def _render(name: str, values: dict[str, str]) -> str:
    return string.Template((TEMPLATES / name).read_text()).substitute(values)


def write_configs(spec: OpenStackSpec, machine: nodes.NodeSpec, pw: dict[str, str]) -> None:
    for sub in ("etc", "logs", "run/ovs", "run/ovn", "ovs", "ovn", "mysql", "keystone", "neutron/lock"):
        spec.path(sub).mkdir(parents=True, exist_ok=True)
    _write_private(spec.path("passwords.json"), json.dumps(pw))
    values = {
        "dir": str(spec.dir),
        "venv": str(spec.venv),
        "db_socket": str(spec.db_socket),
        "keystone_port": str(spec.keystone_port),
        "neutron_port": str(spec.neutron_port),
        "keystone_url": spec.keystone_url,
        "ovn_nb_port": str(OVN_NB_PORT),
        "ovn_sb_port": str(OVN_SB_PORT),
        "kuryr_port": str(KURYR_PORT),
        "region": REGION,
        "database_password": pw["database"],
        "service_password": pw["service"],
    }
    values["uwsgi_common"] = _render("uwsgi-common.ini", values).rstrip("\n")
    values["service_auth"] = _render("service-auth.conf", values).rstrip("\n")
    for name in CONFIG_FILES:
        _write_private(spec.path("etc", name), _render(name, values))
    # Docker's legacy plugin discovery; /etc/docker is the machine's own (nodes.NODE_BINDS).
    plugins = Path(machine.dir, "etc-docker", "plugins")
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "kuryr.spec").write_text(f"http://127.0.0.1:{KURYR_PORT}\n")
    _write_private(spec.clouds_yaml, clouds_yaml(spec, pw))


def clouds_yaml(spec: OpenStackSpec, pw: dict[str, str]) -> str:
    """As DevStack writes /etc/openstack/clouds.yaml: `devstack` is the demo user, `devstack-admin` the admin."""
    import yaml

    def cloud(user: str, project: str, password: str) -> dict[str, Any]:
        auth = {
            "auth_url": spec.keystone_url,
            "username": user,
            "password": password,
            "project_name": project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        }
        return {"auth": auth, "region_name": REGION, "identity_api_version": 3, "interface": "public"}

    clouds = {"devstack": cloud("demo", "demo", pw["demo"]), "devstack-admin": cloud("admin", "admin", pw["admin"])}
    return "# written by `workshop lab up`; passwords are random per lab\n" + yaml.safe_dump(
        {"clouds": clouds}, sort_keys=False
    )


# --- processes ------------------------------------------------------------------------------------


def service_argv(spec: OpenStackSpec, name: str) -> list[str]:
    """Each daemon in the foreground (no --detach): its pid is the one `setsid -f` started."""
    d, run, logs = spec.dir, f"{spec.dir}/run", f"{spec.dir}/logs"
    if name == "ovsdb-server":
        return [
            "/usr/sbin/ovsdb-server",
            f"{d}/ovs/conf.db",
            f"--remote=punix:{run}/ovs/db.sock",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            f"--unixctl={run}/ovs/ovsdb-server.ctl",
            f"--log-file={logs}/ovsdb-server.log",
        ]
    if name == "ovs-vswitchd":
        return [
            "/usr/sbin/ovs-vswitchd",
            f"unix:{run}/ovs/db.sock",
            f"--unixctl={run}/ovs/ovs-vswitchd.ctl",
            f"--log-file={logs}/ovs-vswitchd.log",
        ]
    if name in ("ovn-nb", "ovn-sb"):
        db, port = name[4:], OVN_NB_PORT if name == "ovn-nb" else OVN_SB_PORT
        return [
            "/usr/sbin/ovsdb-server",
            f"{d}/ovn/ovn{db}_db.db",
            f"--remote=punix:{run}/ovn/ovn{db}_db.sock",
            f"--remote=ptcp:{port}:127.0.0.1",
            f"--unixctl={run}/ovn/ovn{db}_db.ctl",
            f"--log-file={logs}/ovsdb-server-{db}.log",
        ]
    if name == "ovn-northd":
        return [
            "/usr/bin/ovn-northd",
            f"--ovnnb-db=unix:{run}/ovn/ovnnb_db.sock",
            f"--ovnsb-db=unix:{run}/ovn/ovnsb_db.sock",
            f"--unixctl={run}/ovn/ovn-northd.ctl",
            f"--log-file={logs}/ovn-northd.log",
        ]
    if name == "ovn-controller":
        # (ovn-controller has no --unixctl: its control socket goes to $OVN_RUNDIR)
        return ["/usr/bin/ovn-controller", f"unix:{run}/ovs/db.sock", f"--log-file={logs}/ovn-controller.log"]
    if name == "mariadb":
        return ["/usr/sbin/mariadbd", f"--defaults-file={d}/etc/my.cnf"]
    if name == "keystone":
        return [spec.bin("uwsgi"), "--ini", f"{d}/etc/keystone-uwsgi.ini"]
    if name == "neutron-api":
        return [spec.bin("uwsgi"), "--ini", f"{d}/etc/neutron-uwsgi.ini"]
    if name == "kuryr":
        # through the venv's python, so the process's argv is exactly this (the record checks argv)
        return [spec.bin("python"), spec.bin("kuryr-server"), "--config-file", f"{d}/etc/kuryr.conf"]
    if name == "ovn-agent":
        # DevStack: neutron-ovn-agent --config-file .../plugins/ml2/ovn_agent.ini (here without the metadata extension)
        return [spec.bin("python"), spec.bin("neutron-ovn-agent"), "--config-file", f"{d}/etc/ovn_agent.ini"]
    raise LabError(f"no OpenStack service {name!r}", hint=f"use one of: {', '.join(SERVICES)}")


def start_service(spec: OpenStackSpec, init: ProcessRecord, name: str) -> ProcessRecord:
    return nodes.nsenter(init, service_argv(spec, name), spec.path("logs", f"{name}.out"), name, env=spec.env())


def run_step(spec: OpenStackSpec, argv: list[str], what: str, timeout: float = 120, stdin: str | None = None) -> str:
    """A one-shot step on the host side (files and unix sockets under the lab dir only)."""
    try:
        r = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=spec.env(), cwd=spec.dir
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{what} did not finish within {timeout:g} s", hint=f"read {spec.dir}/logs") from None
    if r.returncode != 0:
        log = spec.path("logs", f"{what.split()[0]}.err")
        log.write_text(r.stdout + r.stderr)
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"{what} failed: {tail[0][:200]}", hint=f"read {log}")
    return r.stdout


def wait_ready(
    what: str, ready: Callable[[], bool], timeout: float, alive: Callable[[], str | None], hint: str
) -> None:
    dead: str | None = None

    def exited() -> str | None:
        nonlocal dead
        dead = alive()
        return f"{dead} exited" if dead else None

    try:
        wait_for(f"{what} not ready", ready, timeout, error=LabError, hint=hint, abort=exited, observe=lambda: "")
    except LabError:
        if dead:
            raise LabError(
                f"{dead} exited while waiting for {what}", hint=f"{hint}, and {dead}.out next to it"
            ) from None
        raise


def http_status(port: int, path: str = "/", method: str = "GET", timeout: float = 2.0) -> int | None:
    """HTTP status of 127.0.0.1:port on the host (through the forwarder); None if nothing answers."""
    from pytest_workshop.components.openstack import http_status as status_of

    return status_of(f"http://127.0.0.1:{port}{path}", timeout, method)[0]


def http_in_machine(netns: str, port: int, path: str, method: str = "POST", timeout: float = 2.0) -> tuple[int, str]:
    """An HTTP request to the machine's own loopback (kuryr is not forwarded to the host)."""
    from pytest_workshop.components import http
    from pytest_workshop.lab.forwarder import NetnsConnector

    connector = NetnsConnector(netns)
    answer = http.request(
        f"http://127.0.0.1:{port}{path}",
        timeout,
        method,
        body=b"",
        connect=lambda: connector.connect(("127.0.0.1", port), timeout),
    )
    if answer.status is None:
        raise ConnectionError(answer.error)
    return answer.status, answer.body.decode(errors="replace")


def kuryr_answers(netns: str) -> bool:
    try:
        status, body = http_in_machine(netns, KURYR_PORT, "/Plugin.Activate")
    except Exception:
        return False
    return status == 200 and "IpamDriver" in body


def service_health(spec: OpenStackSpec, machine: nodes.NodeSpec, name: str) -> str:
    """How a running service answers (status output)."""
    if name == "keystone":
        return "healthy" if http_status(spec.keystone_port, "/v3") == 200 else "not answering"
    if name == "neutron-api":
        return "healthy" if http_status(spec.neutron_port, "/") == 200 else "not answering"
    if name == "kuryr":
        return "healthy" if kuryr_answers(machine.netns) else "not answering"
    return "running"


def ports_in_use(spec: OpenStackSpec) -> list[int]:
    busy = []
    for port in (spec.keystone_port, spec.neutron_port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def remove_state(spec: OpenStackSpec) -> None:
    shutil.rmtree(spec.dir, ignore_errors=True)
