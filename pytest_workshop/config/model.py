"""The lab model: what a lab has and how to reach it. Plain data, no I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

COMPONENTS = ("docker", "swarm", "etcd", "openstack", "kuryr")
# Field metadata key: how lab.toml spells a value whose type alone does not say how to read it
# (a Docker host URL, a list of etcd endpoints, ...); config/loader.py maps it to a parser.
LAB_TOML = "lab_toml"
# The [lab] section's keys: the LabConfig fields a lab.toml may set itself.
LAB_SECTION_KEYS = ("name", "allow_breakage", "allow_solve", "host", "logs", "control", "parallel")

# The workshop's standard lab: 3 etcd members and a Swarm of 3 nodes, all managers. A lab that is
# smaller on purpose says so in lab.toml ([etcd] members, [swarm] nodes / managers); the shape
# never comes from how many endpoints were listed (one endpoint is the usual attendee set-up).
STANDARD_ETCD_MEMBERS = 3
STANDARD_SWARM_NODES = 3
STANDARD_SWARM_MANAGERS = 3


@dataclass(frozen=True)
class Timeouts:
    """Bounds in seconds, one per kind of operation (defaults measured by bench/bench_bounds.py on
    a busy 2-core machine: the slowest sample seen, with room; see the README's [timeouts]).

    ``connect`` opens a connection; ``request`` is one API call that reads or writes state;
    ``container_start``, ``network_create`` and ``converge`` are operations that legitimately take
    seconds on a busy machine; ``check`` bounds a whole check. A bound that is hit is reported by
    its name (``[timeouts] network_create``), because "timed out" alone does not say whether the
    lab is broken or only overloaded."""

    connect: float = 2.0
    request: float = 5.0
    container_start: float = 30.0
    network_create: float = 15.0
    # above dockerd 20.10's own 30 s: a healthy lab's task can wait that long in "starting" when two
    # nodes bulk-sync their NetworkDB with each other at once (README, [timeouts])
    converge: float = 45.0
    check: float = 60.0  # a whole check, its module set-up included: a converge wait and more
    checks: dict[str, float] = field(default_factory=dict, metadata={LAB_TOML: "check_timeouts"})

    def for_check(self, check_id: str, default: float | None = None) -> float:
        """lab.toml's [timeouts.checks] entry, else the check's own default, else [timeouts] check."""
        if check_id in self.checks:
            return self.checks[check_id]
        return max(default, self.check) if default is not None else self.check


@dataclass(frozen=True)
class DockerConfig:
    host: str = field(default="unix:///var/run/docker.sock", metadata={LAB_TOML: "docker_host"})
    tls_verify: bool = False
    cert_path: Path | None = field(default=None, metadata={LAB_TOML: "directory"})
    # The image the suites run their containers from, pulled when pulls work. None: the project's
    # own image (pytest-workshop/busybox), built offline from the host's busybox.
    test_image: str | None = None
    pull: bool = True

    def __repr__(self) -> str:
        return f"DockerConfig(host={strip_userinfo(self.host)!r}, tls_verify={self.tls_verify}, test_image={self.test_image!r})"


@dataclass(frozen=True)
class EtcdConfig:
    endpoints: tuple[str, ...] = field(default=("http://127.0.0.1:2379",), metadata={LAB_TOML: "endpoints"})
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Expected number of members; None means the workshop's standard (STANDARD_ETCD_MEMBERS).
    members: int | None = None

    @property
    def expected_members(self) -> int:
        return self.members if self.members is not None else STANDARD_ETCD_MEMBERS

    def __repr__(self) -> str:
        # Endpoints may carry user:password@; a repr ends up in tracebacks and logs.
        eps = tuple(strip_userinfo(e) for e in self.endpoints)
        return f"EtcdConfig(endpoints={eps!r}, members={self.members!r}, tls={bool(self.cacert)}, auth={bool(self.username)})"


@dataclass(frozen=True)
class SwarmConfig:
    # None: the workshop's standard shape (STANDARD_SWARM_*)
    managers: int | None = None
    nodes: int | None = None
    routing_mesh: bool = True
    # Docker hosts of the nodes, to look at the cluster from each of them (default: [docker] host only).
    hosts: tuple[str, ...] = field(default=(), metadata={LAB_TOML: "docker_hosts"})

    @property
    def expected_nodes(self) -> int:
        return self.nodes if self.nodes is not None else STANDARD_SWARM_NODES

    @property
    def expected_managers(self) -> int:
        return self.managers if self.managers is not None else min(STANDARD_SWARM_MANAGERS, self.expected_nodes)

    def count_source(self, field: str) -> str:
        """Where the expected count of ``field`` ("nodes" or "managers") comes from, for a message."""
        if getattr(self, field) is not None:
            return "as lab.toml says"
        return "the workshop's standard; a smaller lab says so in lab.toml [swarm]"


ENV_CLOUD = "envvars"  # openstacksdk's name for the cloud described by OS_* variables (an openrc)


@dataclass(frozen=True)
class OpenStackConfig:
    cloud: str = "devstack"
    # None with cloud == ENV_CLOUD: credentials come from OS_* variables (a sourced openrc)
    clouds_yaml: Path | None = None
    admin_cloud: str | None = None

    @property
    def auth_url(self) -> str:
        """The Keystone URL of the cloud (for messages: no credentials)."""
        if self.clouds_yaml is None:
            return strip_userinfo(os.environ.get("OS_AUTH_URL", "?"))
        from pytest_workshop.config.clouds import read_clouds

        entry = read_clouds(self.clouds_yaml, str(self.clouds_yaml)).get(self.cloud, {})
        return strip_userinfo(str(entry.get("auth", {}).get("auth_url", "?")))

    def secrets(self) -> list[str]:
        from pytest_workshop.config.clouds import secrets_in

        found = secrets_in(self.clouds_yaml) if self.clouds_yaml else []
        found += [
            os.environ[v] for v in ("OS_PASSWORD", "OS_TOKEN", "OS_APPLICATION_CREDENTIAL_SECRET") if os.environ.get(v)
        ]
        return found


@dataclass(frozen=True)
class KuryrConfig:
    network_driver: str = "kuryr"
    ipam_driver: str = "kuryr"
    # The engine kuryr serves (default: [docker] host). It must run on the machine kuryr runs on.
    docker_host: str | None = field(default=None, metadata={LAB_TOML: "docker_host"})


APP_MODES = ("attendee", "reference")


@dataclass(frozen=True)
class AppConfig:
    """Lab 5's microservices ([app]). Not a component: every lab has the lab5 step, and by default
    the checks look at the stack the attendee deployed."""

    # "attendee": check the stack deployed by hand (the lab step); "reference": the suite deploys
    # the reference app itself, checks it and removes it (the embedded lab, CI, instructors)
    mode: str = field(default="attendee", metadata={LAB_TOML: "app_mode"})
    stack: str = "registry-demo"  # `docker stack deploy ... <stack>`
    backend: str = "backend"  # service names inside the stack file
    frontend: str = "frontend"
    registry_prefix: str = "/services/"  # registrations: <prefix><stack>_<backend>/<instance>
    config_prefix: str = "/config/"  # live configuration: <prefix><stack>/greeting
    # Where the app's containers reach etcd (reference mode): the lab machines' addresses
    etcd_endpoints: tuple[str, ...] = field(default=(), metadata={LAB_TOML: "endpoints"})
    # A registration's lease may not live longer than this: a dead instance must vanish quickly
    max_ttl: float = 30.0


@dataclass(frozen=True)
class LabConfig:
    """A resolved lab configuration. A component is present when its attribute is not None."""

    name: str
    source: str  # human description of where this came from, shown in the report header
    path: Path | None = None
    allow_breakage: bool = False
    # `workshop solve` may run the guide's commands on it (instructors fast-forwarding an attendee)
    allow_solve: bool = False
    host: str = "local://"  # testinfra host spec of the lab machine
    # how faults reach the lab's members: "embedded:<state dir>" or "systemd" (via [lab] host)
    control: str | None = field(default=None, metadata={LAB_TOML: "control"})
    # component -> log files whose tails are attached to its failed checks ([lab.logs])
    logs: dict[str, tuple[Path, ...]] = field(default_factory=dict, metadata={LAB_TOML: "component_logs"})
    # How many suites (modules) run against this lab at once under pytest-xdist, whatever -n says.
    # 4: on the 2-core embedded lab, -n 4 passed 10 runs in 10; with all six suites at once (-n 8)
    # the engines stalled past their bounds in 3 runs of 5 (plugin/concurrency/scheduling.py).
    parallel: int = field(default=4, metadata={LAB_TOML: "parallel"})
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Secrets a fleet inventory holds beside the lab's own (ansible_password...): redacted the same
    # way. Not a lab.toml key.
    inventory_secrets: tuple[str, ...] = field(default=(), repr=False)
    docker: DockerConfig | None = None
    swarm: SwarmConfig | None = None
    etcd: EtcdConfig | None = None
    openstack: OpenStackConfig | None = None
    kuryr: KuryrConfig | None = None
    app: AppConfig = field(default_factory=AppConfig)

    def has(self, component: str) -> bool:
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")
        return getattr(self, component) is not None

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if self.has(c))

    @property
    def swarm_hosts(self) -> tuple[str, ...]:
        """Every Swarm node's engine: ``[swarm] hosts``, else the one ``[docker] host``."""
        if self.swarm and self.swarm.hosts:
            return tuple(self.swarm.hosts)
        return (self.docker.host,) if self.docker else ()

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be printed (used by redaction)."""
        found: list[str] = list(self.inventory_secrets)
        if self.etcd and self.etcd.password:
            found.append(self.etcd.password)
        urls = [self.host, *([self.docker.host] if self.docker else []), *(self.etcd.endpoints if self.etcd else [])]
        urls += list(self.swarm.hosts if self.swarm else []) + ([self.kuryr.docker_host or ""] if self.kuryr else [])
        for url in urls:
            password = urlsplit(url).password
            if password:
                found.append(password)
        if self.openstack:
            found += self.openstack.secrets()
        return tuple(found)

    def describe(self) -> list[str]:
        """Lines for the report header: where the config came from and the endpoints, never secrets."""
        lines = [f"lab: {self.name} (from {self.source})"]
        if self.docker:
            tls = ", TLS" if self.docker.tls_verify else ""
            lines.append(f"  docker: {strip_userinfo(self.docker.host)}{tls}")
        if self.etcd:
            eps = ", ".join(strip_userinfo(e) for e in self.etcd.endpoints)
            lines.append(f"  etcd: {eps}")
        if self.swarm:
            lines.append("  swarm: declared")
        if self.openstack:
            if self.openstack.clouds_yaml is None:
                lines.append("  openstack: OS_* variables (openrc)")
            else:
                admin = f", admin {self.openstack.admin_cloud!r}" if self.openstack.admin_cloud else ""
                lines.append(f"  openstack: cloud {self.openstack.cloud!r}{admin} in {self.openstack.clouds_yaml}")
        if self.kuryr:
            engine = strip_userinfo(self.kuryr.docker_host) if self.kuryr.docker_host else "the [docker] host"
            lines.append(f"  kuryr: drivers {self.kuryr.network_driver}/{self.kuryr.ipam_driver} on {engine}")
        if self.app != AppConfig():
            where = f" (app reaches etcd at {', '.join(self.app.etcd_endpoints)})" if self.app.etcd_endpoints else ""
            lines.append(f"  app: {self.app.mode} mode, stack {self.app.stack!r}{where}")
        absent = [c for c in COMPONENTS if not self.has(c)]
        if absent:
            lines.append(f"  not in this lab: {', '.join(absent)}")
        return lines


def section_article(section: str) -> str:
    """ "an [etcd] section", "a [docker] section": the article as the section's name is read aloud."""
    return "an" if section[:1] in "aeio" else "a"


def strip_userinfo(url: str) -> str:
    """Drop ``user:password@`` from a URL so it can be shown."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
