"""Lab 5's microservices: the reference app's stack on Swarm, a view of a deployment (the
attendee's or the reference one) with its registrations in etcd, and the changes lab5's guide
makes to it (a rolling update, a hard kill). The same app on kuryr: kuryr_app.py.

The app itself is in fixtures/apps/registry-demo (read it: it is written for attendees); its
image is built by components/app_image.py. The registration contract:
``<registry prefix><stack>_<service>/<instance>`` -> JSON with ``address`` and ``port``,
attached to a lease the instance keeps alive.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_workshop.components.app_image import (
    APP_IMAGE,
    APP_IMAGE_LABELS,
    SOURCES,
    app_digest,
    app_dir,
    app_image_context,
    build_app_image,
    ensure_app_image,
)
from pytest_workshop.components.app_wire import (
    Registration,
    RequestStream,
    ask,
    exec_in,
    read_registrations,
    silent,
)
from pytest_workshop.components.waiting import wait_until
from pytest_workshop.errors import CheckFailed, WorkshopError

if TYPE_CHECKING:
    from pytest_workshop.components.swarm import TaskInfo
    from pytest_workshop.components.swarm_services import Service, ServiceFactory

STACK_LABEL = "com.docker.stack.namespace"  # what `docker stack deploy` labels a stack's objects with


def stack_file() -> Path:
    return app_dir() / "stack.yml"


def deploy_command(stack: str, etcd_endpoints: tuple[str, ...] = ()) -> str:
    """What an attendee types to deploy the app (the hint of a missing deployment)."""
    eps = ",".join(etcd_endpoints) or "http://NODE1:2379,http://NODE2:2379,http://NODE3:2379"
    return f"ETCD_ENDPOINTS={eps} docker stack deploy -c {stack_file()} {stack}"


# --- the stack file ----------------------------------------------------------------------------

VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServiceDef:
    """One service of the stack file, as `docker stack deploy` reads the keys this app uses."""

    name: str  # short name: backend, frontend
    image: str
    command: list[str]
    env: dict[str, str]
    networks: list[str]
    replicas: int = 1
    endpoint_mode: str = "vip"
    init: bool = False
    stop_grace_s: float = 10.0
    update: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StackDef:
    services: dict[str, ServiceDef]
    networks: dict[str, dict[str, Any]]


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", str(text).strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "m" else value


def read_stack(path: Path, variables: dict[str, str]) -> StackDef:
    """The stack file with ${VAR} / ${VAR:-default} filled in, as `docker stack deploy` does."""
    import yaml

    def substitute(m: re.Match[str]) -> str:
        value = variables.get(m.group(1)) or m.group(2)
        if value is None:
            raise WorkshopError(f"{path}: ${{{m.group(1)}}} has no value", hint=f"set {m.group(1)}")
        return value

    raw = yaml.safe_load(VARIABLE.sub(substitute, path.read_text()))
    services = {}
    for name, s in raw["services"].items():
        deploy = s.get("deploy", {})
        services[name] = ServiceDef(
            name=name,
            image=s["image"],
            command=list(s.get("command", [])),
            env={k: str(v) for k, v in (s.get("environment") or {}).items()},
            networks=list(s.get("networks", [])),
            replicas=int(deploy.get("replicas", 1)),
            endpoint_mode=deploy.get("endpoint_mode", "vip"),
            init=bool(s.get("init", False)),
            stop_grace_s=_seconds(s.get("stop_grace_period", "10s")),
            update=dict(deploy.get("update_config", {})),
        )
    return StackDef(services, dict(raw.get("networks") or {}))


def deploy_stack(factory: ServiceFactory, stack: str, definition: StackDef) -> dict[str, Service]:
    """Create the stack's networks and services through the run's ServiceFactory (so they carry the
    run's labels and are removed with it), named and labelled as `docker stack deploy` would."""
    from docker.types import EndpointSpec, NetworkAttachmentConfig, ServiceMode, UpdateConfig

    stack_labels = {STACK_LABEL: stack}
    for net in definition.networks:
        factory.overlay(name=f"{stack}_{net}", labels=stack_labels)  # overlay and attachable, as the file says
    created = {}
    with factory.joining():  # the stack's networks are joined once, by its services together
        for s in definition.services.values():
            update = None
            if s.update:
                update = UpdateConfig(
                    parallelism=int(s.update.get("parallelism", 1)),
                    delay=int(_seconds(s.update.get("delay", "0s")) * 1e9),
                    order=s.update.get("order", "stop-first"),
                    monitor=int(_seconds(s.update.get("monitor", "5s")) * 1e9),
                )
            created[s.name] = factory.create(
                s.image,
                s.command,
                name=f"{stack}_{s.name}",
                env=[f"{k}={v}" for k, v in s.env.items()],
                networks=[NetworkAttachmentConfig(target=f"{stack}_{n}", aliases=[s.name]) for n in s.networks],
                mode=ServiceMode("replicated", replicas=s.replicas),
                endpoint_spec=EndpointSpec(mode=s.endpoint_mode),
                update_config=update,
                init=s.init,
                stop_grace_period=int(s.stop_grace_s * 1e9),
                labels=stack_labels,
                container_labels=stack_labels,
            )
    return created


@dataclass
class RollingUpdate:
    """What a rolling update of the backend under traffic did (AppDeployment.roll_out)."""

    version: str  # the VERSION rolled out
    answers: list[dict[str, Any]]  # every request through the frontend during the update
    versions_after: set[str]  # what the frontend's answers say right after it

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [a for a in self.answers if "answered_by" not in a]


@dataclass
class KilledInstance:
    """What became of a backend killed with SIGKILL (AppDeployment.kill_one)."""

    name: str  # the instance killed
    ttl: int  # its lease's TTL when it was killed
    waited: float  # how long its registration had to vanish: the TTL (at most [app] max_ttl) and a slack
    gone_after: float | None  # seconds until its registration vanished (None: not within ``waited``)
    frontend_dropped: bool = False  # the frontend's view no longer lists it (within 2 s of etcd)
    answers_after: list[dict[str, Any]] = field(default_factory=list)  # requests through the frontend afterwards


class AppDeployment:
    """A deployed stack of the app on the Swarm, and what it registered in etcd."""

    def __init__(self, factory: ServiceFactory, stack: str, backend: str, frontend: str, registry_prefix: str) -> None:
        from pytest_workshop.components.swarm_services import Service

        self.factory, self.stack = factory, stack
        self.backend_name, self.frontend_name = f"{stack}_{backend}", f"{stack}_{frontend}"
        self.registry_prefix = registry_prefix
        found = {s.name: s for s in factory.client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})}
        self.services = {name: Service(factory, obj, name) for name, obj in found.items()}

    @property
    def prefix(self) -> str:
        """Where the backends register: <registry prefix><stack>_<backend>/."""
        return f"{self.registry_prefix}{self.backend_name}/"

    def backend_state(self) -> tuple[int, list[str]]:
        """The backend's replica count and environment: what the experiments change."""
        self.backend.reload()
        spec = self.backend.obj.attrs["Spec"]
        return int(spec["Mode"]["Replicated"]["Replicas"]), list(spec["TaskTemplate"]["ContainerSpec"].get("Env", []))

    def restore_backend(self, state: tuple[int, list[str]]) -> None:
        if self.backend_state() != state:
            self.backend.change(replicas=state[0], env=state[1])

    def missing(self) -> list[str]:
        return [n for n in (self.backend_name, self.frontend_name) if n not in self.services]

    @property
    def backend(self) -> Service:
        return self.services[self.backend_name]

    @property
    def frontend(self) -> Service:
        return self.services[self.frontend_name]

    def registrations(self, etcd: Any) -> dict[str, Registration]:
        """instance -> its registration, read from etcd now."""
        return read_registrations(etcd, self.prefix)

    def stale_entries(self, etcd: Any) -> dict[tuple[bytes, int], int]:
        """(key, create revision) -> lease of every entry under the registry, of any service, whose
        instance is not a container running now. Running, whatever Swarm wants of it: one being
        stopped by an update or a scale-down deregisters on its way out, so it is not stale yet."""
        services = {s.name: s for s in self.factory.client.services.list()}
        found = {}
        for kv in etcd.get_prefix(self.registry_prefix.encode()):
            service, _, instance = kv.key.decode()[len(self.registry_prefix) :].partition("/")
            live = services.get(service)
            running = {
                (t.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID", "")[:12]
                for t in (live.tasks() if live else [])
                if t.get("Status", {}).get("State") == "running"
            }
            if instance not in running:
                found[(kv.key, kv.create_revision)] = kv.lease
        return found

    def backends_resolved(self) -> set[str]:
        """The addresses ``tasks.<backend>`` resolves to in the frontend's container: Swarm's DNS."""
        out = self.in_frontend(["sh", "-c", f"nslookup tasks.{self.backend_name} 2>/dev/null"])
        # busybox nslookup: the answer's lines after "Name:" carry "Address: a.b.c.d" / "Address 1: a.b.c.d"
        lines = out.split("Name:", 1)[-1].splitlines()
        return {line.split(":", 1)[1].split()[0] for line in lines if line.startswith("Address")}

    def instances(self) -> dict[str, TaskInfo]:
        """Running backend tasks by instance name (the container's short ID: its hostname)."""
        return {t.container_id[:12]: t for t in self.backend.running()}

    def frontend_task(self) -> TaskInfo:
        running = self.frontend.running()
        self.frontend.reload()
        mode = self.frontend.obj.attrs["Spec"].get("Mode", {})
        if not running and mode.get("Replicated", {}).get("Replicas") == 0:
            raise CheckFailed(
                f"the frontend {self.frontend_name} is scaled to 0 replicas",
                hint=f"`docker service scale {self.frontend_name}=1`",
            )
        if not running:
            raise CheckFailed(
                f"the frontend {self.frontend_name} has no running task ({self.frontend.describe_tasks()})",
                hint=f"`docker service ps --no-trunc {self.frontend_name}` says why",
            )
        return running[0]

    def frontend_container(self) -> Any:
        return self.frontend.container_on(self.frontend_task())

    def in_frontend(self, argv: list[str], timeout: float = 10) -> str:
        """Run a command in the frontend's container; its output."""
        return exec_in(self.frontend_container(), argv, timeout)

    def ask_frontend(
        self, path: str = "/", times: int = 1, seconds: float = 0, timeout: float = 3
    ) -> list[dict[str, Any]]:
        return ask(self.frontend_container(), path, times, seconds, timeout)

    def stream_requests(self, path: str = "/", interval: float = 0.05) -> RequestStream:
        """Requests to the frontend until ``stop()`` (RequestStream)."""
        return RequestStream(self.frontend_container(), path, interval)

    def silent_backends(self, registrations: list[Registration], timeout: float = 2) -> list[str]:
        return silent(self.frontend_container(), registrations, timeout)

    def settle(self, etcd: Any, within: float, replicas: int | None = None) -> None:
        """The steady state every experiment starts and ends in: the backend converged, and the
        registry lists exactly its running instances (within ``within`` seconds)."""
        self.backend.wait_converged(replicas)

        def matching() -> bool:
            return set(self.instances()) == set(self.registrations(etcd))

        if wait_until(matching, within, step=0.3):
            return
        running, registered = set(self.instances()), set(self.registrations(etcd))
        raise WorkshopError(
            f"the registry does not match the running backends after {within:g} s: running but not registered "
            f"{sorted(running - registered) or 'none'}, registered but not running {sorted(registered - running) or 'none'}",
            hint="running but not registered: the instances cannot reach etcd (ETCD_ENDPOINTS, a firewall; "
            "`docker service logs` shows their etcd errors); registered but not running: see LAB5-06",
        )

    def roll_out(self, etcd: Any, within: float) -> RollingUpdate:
        """A new VERSION rolled out to the backend under traffic, from and back to the steady state."""
        self.settle(etcd, within)
        self.backend.reload()
        spec = self.backend.obj.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        env = [e for e in spec.get("Env", []) if not e.startswith("VERSION=")]
        version = f"u{int(time.time()) % 100000}"
        with self.traffic() as traffic:
            self.backend.change(env=[*env, f"VERSION={version}"])
            self.backend.wait("finish its rolling update", lambda: self.backend.update_state() == "completed", 60)
            self.settle(etcd, within)
        return RollingUpdate(version, traffic.answers, {str(a.get("version")) for a in self.ask_frontend(times=6)})

    def kill_one(self, etcd: Any, within: float, max_ttl: float, slack: float) -> KilledInstance:
        """One backend killed with SIGKILL, so it cannot deregister: how long until its lease took
        its registration away, and whether the frontend stopped using it. Swarm starts a
        replacement after its restart delay (5 s)."""
        self.settle(etcd, within)
        registered = self.registrations(etcd)
        name, task = sorted(self.instances().items())[0]
        ttl = etcd.time_to_live(registered[name].lease) if registered[name].lease else int(max_ttl)
        waited = min(ttl, max_ttl) + slack
        self.backend.container_on(task).kill()
        t0 = time.monotonic()
        gone = wait_until(lambda: name not in self.registrations(etcd), waited, step=0.2)
        found = KilledInstance(name, ttl, waited, time.monotonic() - t0 if gone else None)
        if gone:
            dropped = wait_until(lambda: name not in self.frontend_view().get("backends", {}), 2, step=0.2)
            found.frontend_dropped = bool(dropped)
            found.answers_after = self.ask_frontend(times=6)
        return found

    @contextlib.contextmanager
    def traffic(self) -> Iterator[RequestStream]:
        """Requests through the frontend, 20 a second without a gap, while the block runs (one exec
        in the frontend's container); every answer is kept in the stream's ``answers``."""
        stream = self.stream_requests()
        try:
            wait_until(lambda: stream.answers, 5, step=0.05)  # flowing before the change
            yield stream
        finally:
            stream.stop()

    def frontend_view(self) -> dict[str, Any]:
        answers = self.ask_frontend("/backends")
        if not answers or "failed" in answers[0]:
            raise CheckFailed(
                f"the frontend {self.frontend_name} did not answer /backends ({answers[:1]})",
                hint=f"`docker service logs {self.frontend_name}`",
            )
        return answers[0]


__all__ = [
    "APP_IMAGE",
    "APP_IMAGE_LABELS",
    "SOURCES",
    "AppDeployment",
    "KilledInstance",
    "Registration",
    "RollingUpdate",
    "app_digest",
    "app_dir",
    "app_image_context",
    "build_app_image",
    "deploy_stack",
    "ensure_app_image",
    "read_registrations",
    "read_stack",
    "stack_file",
]
