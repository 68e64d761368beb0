"""Swarm services, overlay networks, secrets and configs a check creates and removes.

Every wait is bounded; a timeout says what the service was doing (task states and errors),
because "timed out" alone does not help anyone debug a lab.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.components.explain import Talk, explain
from pytest_workshop.components.swarm import TaskInfo, from_the_engine, seconds_since
from pytest_workshop.components.waiting import wait_for, wait_until
from pytest_workshop.errors import ComponentUnavailable, WorkshopError

# Task states between a node taking a task and the task being prepared: the node joins the task's
# overlay networks while it prepares it (swarmkit's executor creates the networks in Prepare, and
# libnetwork's join waits for the bulk syncs), so by "ready" it has joined (ServiceFactory.create).
JOINING_STATES = frozenset({"assigned", "accepted", "preparing"})
# Before that, the manager still places the task: a created service's tasks are "new"/"pending"
# for a few hundred ms, then their nodes join. A task pending longer has no eligible node (a
# constraint, a drained Swarm), and may stay so: the guard stops waiting for it.
PLACING_STATES = frozenset({"new", "allocated", "pending"})
PLACING_GRACE_S = 2.0
JOIN_GUARD_S = 10.0  # how long a creation holds the join guard at most: it is a guard, not a check


@dataclass
class Service:
    """A service a check created, with bounded waits."""

    factory: ServiceFactory
    obj: Any
    name: str
    created: float = field(default_factory=time.monotonic)

    def reload(self) -> None:
        self.obj.reload()

    @property
    def spec_version(self) -> int:
        return int(self.obj.attrs["Version"]["Index"])

    def tasks(self, running_only: bool = False) -> list[TaskInfo]:
        filters = {"desired-state": "running"} if running_only else None
        raw = self.obj.tasks(filters=filters)
        nodes = self.factory.node_names(t.get("NodeID", "") for t in raw)
        out = []
        for t in raw:
            status = t.get("Status", {})
            addrs = tuple(
                a.split("/")[0] for att in t.get("NetworksAttachments", []) or [] for a in att.get("Addresses", [])
            )
            out.append(
                TaskInfo(
                    id=t["ID"],
                    node=nodes.get(t.get("NodeID", ""), ""),
                    state=status.get("State", ""),
                    desired=t.get("DesiredState", ""),
                    error=status.get("Err", ""),
                    container_id=(status.get("ContainerStatus") or {}).get("ContainerID", ""),
                    spec_version=int(t.get("Version", {}).get("Index", 0)),
                    addresses=addrs,
                    message=status.get("Message", ""),
                    seconds_in_state=seconds_since(status.get("Timestamp", "")),
                )
            )
        return out

    def running(self) -> list[TaskInfo]:
        return [t for t in self.tasks(running_only=True) if t.state == "running"]

    def describe_tasks(self) -> str:
        tasks = sorted(self.tasks(), key=lambda t: (t.desired != "running", t.node))[:8]
        return ", ".join(t.describe() for t in tasks) or "no tasks at all"

    def wait(self, what: str, done: Callable[[], bool], timeout: float | None = None) -> None:
        """Poll ``done`` until it holds; on timeout, say what the tasks were doing. Without a
        ``timeout`` the bound is ``[timeouts] converge``, and a timeout where no task failed (they
        were only still starting) says the lab may be overloaded rather than broken."""
        bound = "" if timeout is not None else " ([timeouts] converge)"
        timeout = timeout if timeout is not None else self.factory.converge_timeout

        def holds() -> bool:
            try:
                return done()
            except WorkshopError:
                raise
            except Exception as e:
                if not from_the_engine(e):
                    raise
                raise explain(e, Talk.swarm(f"service {self.name}")) from e

        try:
            wait_for(
                f"service {self.name} did not {what}",
                holds,
                timeout,
                step=0.2,
                error=WorkshopError,
                observe=lambda: f"tasks: {self.describe_tasks()}",
                hint="read the task errors above (`docker service ps --no-trunc`): image missing on a node, no eligible node, or a crashing command",
            )
        except WorkshopError as e:
            if type(e) is not WorkshopError:
                raise  # the engine's own answer (explain), not the wait running out
            if bound and self.only_slow():
                raise ComponentUnavailable(
                    "swarm",
                    e.message.replace(f"within {timeout:g} s", f"within {timeout:g} s{bound}", 1)
                    + "; no task failed, they are still starting: the lab may be overloaded rather than broken",
                    hint="run fewer checks at once (-n) or raise [timeouts] converge in lab.toml; if tasks stay "
                    "in 'preparing', the node may be pulling or lacking the image (`docker service ps`)",
                ) from None
            raise WorkshopError(
                e.message.replace(f"within {timeout:g} s", f"within {timeout:g} s{bound}", 1), e.hint
            ) from None

    def only_slow(self) -> bool:
        """No task of the service failed or was rejected: what is missing is only still on its way."""
        try:
            tasks = self.tasks()
        except Exception:
            return False
        bad = {"failed", "rejected", "orphaned", "remove", "shutdown", "complete"}
        return bool(tasks) and not any(t.error or t.state in bad for t in tasks if t.desired == "running")

    def wait_joined(self, bound: float) -> None:
        """Until no task is being placed or between its node taking it and being prepared (when
        the node joins the task's networks), or ``bound`` seconds. Not an assertion: whatever the tasks do
        is for the caller's own waits to find. A task still pending after PLACING_GRACE_S has no
        node to join on and no longer counts (otherwise the guard would be released while the
        manager still places the tasks, as it was: two deployments then joined at once)."""
        placing_until = time.monotonic() + PLACING_GRACE_S

        def joined() -> bool:
            try:
                tasks = self.tasks()
            except Exception:
                return True  # the engine's answer is the caller's to judge, not the guard's
            waiting = JOINING_STATES | (PLACING_STATES if time.monotonic() < placing_until else frozenset())
            return bool(tasks) and not any(t.state in waiting for t in tasks if t.desired == "running")

        wait_until(joined, bound, step=0.2)  # two API calls a poll, to a manager the checks share

    def wait_converged(self, replicas: int | None = None, timeout: float | None = None) -> list[TaskInfo]:
        """All desired tasks running (replicated: ``replicas``; global: one per eligible node)."""

        def done() -> bool:
            self.reload()
            mode = self.obj.attrs["Spec"]["Mode"]
            want = replicas
            if want is None:
                want = mode["Replicated"]["Replicas"] if "Replicated" in mode else self.factory.eligible_nodes()
            tasks = self.tasks(running_only=True)
            return len(tasks) == want and all(t.state == "running" for t in tasks)

        self.wait("converge", done, timeout)
        return self.running()

    def scale(self, replicas: int, wait: bool = True) -> list[TaskInfo]:
        self.change(replicas=replicas)
        return self.wait_converged(replicas) if wait else []

    def change(self, replicas: int | None = None, env: list[str] | None = None) -> None:
        """Change the replica count and/or the environment, and nothing else of the spec.

        Not docker-py's ``Service.update``/``scale``: they rebuild the spec from keyword arguments
        and lose fields on the way (measured: scaling a stack's service from 3 to 2 replaced every
        task, a whole rolling update). Here the current spec goes back as it is, at its version
        (a stale version is refused: "update out of sequence")."""
        self.reload()
        spec = self.obj.attrs["Spec"]
        template = spec["TaskTemplate"]
        mode = spec.get("Mode")
        if replicas is not None:
            mode = {"Replicated": {"Replicas": replicas}}
        if env is not None:
            template = {**template, "ContainerSpec": {**template["ContainerSpec"], "Env": env}}
        try:
            self.factory.client.api.update_service(
                self.obj.id,
                self.obj.attrs["Version"]["Index"],
                task_template=template,
                name=spec["Name"],
                labels=spec.get("Labels"),
                mode=mode,
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                networks=spec.get("Networks"),
                endpoint_spec=spec.get("EndpointSpec"),
            )
        except Exception as e:
            if not from_the_engine(e):
                raise
            raise explain(e, Talk.swarm(f"updating service {self.name}")) from e
        self.reload()

    def update_state(self) -> str:
        self.reload()
        return str((self.obj.attrs.get("UpdateStatus") or {}).get("State", ""))

    def container_on(self, task: TaskInfo) -> Any:
        """The task's container, through the engine of the node it runs on."""
        client = self.factory.node_clients.get(task.node)
        if client is None and self.factory.unreachable:
            # Not answering is not the same as not configured: say which engines did not answer.
            silent = "; ".join(f"{host}: {why}" for host, why in self.factory.unreachable.items())
            raise ComponentUnavailable(
                f"Docker on {task.node}",
                f"did not answer when the run started ({silent})",
                hint="start that node's Docker engine (`systemctl start docker` there) and run the check again",
            )
        if client is None:
            raise WorkshopError(
                f"no Docker host configured for node {task.node}",
                hint="list every node's engine in [swarm] hosts of lab.toml",
            )
        return client.containers.get(task.container_id)

    def exec_on(self, task: TaskInfo, command: str) -> tuple[int, str]:
        """``sh -c command`` in the task's container: its exit code and output."""
        result = self.container_on(task).exec_run(["sh", "-c", command])
        return result.exit_code, result.output.decode(errors="replace")

    def creation_times(self, env: str) -> list[float]:
        """When each task whose spec has the environment entry ``env`` was created (seconds since
        the epoch, in order): the engine's nanoseconds, kept to the microsecond."""
        from datetime import UTC, datetime

        times = []
        for task in self.obj.tasks():
            if env in (task["Spec"]["ContainerSpec"].get("Env") or []):
                head, _, frac = task["CreatedAt"].rstrip("Z").partition(".")
                times.append(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}"[:8]))
        return sorted(times)


class ServiceFactory:
    """Creates labelled services, overlay networks, secrets and configs; removes them in order."""

    def __init__(
        self,
        client: Any,
        node_clients: dict[str, Any],
        labels: dict[str, str],
        name_prefix: str,
        converge_timeout: float,
        unreachable: dict[str, str] | None = None,
        join_guard: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.client = client
        # Held while a service on an overlay network starts its tasks. A node joining a network
        # bulk-syncs dockerd 20.10's NetworkDB with the network's other nodes and waits for each
        # answer, but keeps one pending answer per peer: when two syncs between the same nodes
        # cross (two joins at once), one waits out its 30 s timeout ("Bulk sync to node ... timed
        # out") and its task sits in "starting" that long. Seen with lab5's two deployments started
        # together, and at -n 4 with lab2's and lab5's services. dockerd's own periodic sync can
        # still cross a join (the bounds allow for it: README, [timeouts]). The plugin gives a
        # lab-wide lock (across workers); plain Python gets nothing (one caller, no overlap).
        self.join_guard = join_guard or contextlib.nullcontext
        self._joining = threading.local()  # per thread: lab5 deploys from a background thread too
        self.node_clients = node_clients
        self.unreachable = dict(unreachable or {})  # configured host -> why it did not answer
        self.labels = dict(labels)
        self.name_prefix = name_prefix
        self.converge_timeout = converge_timeout
        self._node_names: dict[str, str] = {}
        self._services: list[Service] = []
        self._networks: list[Any] = []
        self._secrets: list[Any] = []
        self._configs: list[Any] = []

    def name(self, what: str) -> str:
        return f"{self.name_prefix}{what}-{secrets.token_hex(3)}"

    def node_names(self, ids: Iterable[str] = ()) -> dict[str, str]:
        """Node ID -> hostname, asked again only for an ID not seen yet: a node keeps its name for
        its ID's life (a node that leaves and joins again gets a new ID). Every poll of a task
        list needs it; asking each time doubled the calls to the manager."""
        if not self._node_names or any(i and i not in self._node_names for i in ids):
            self._node_names = {n.attrs["ID"]: n.attrs["Description"]["Hostname"] for n in self.client.nodes.list()}
        return self._node_names

    def eligible_nodes(self) -> int:
        return sum(
            1
            for n in self.client.nodes.list()
            if n.attrs["Spec"]["Availability"] == "active" and n.attrs["Status"]["State"] == "ready"
        )

    def create(self, image: str, command: Any = None, **kwargs: Any) -> Service:
        """``client.services.create`` with the run's labels, a name, an init and a short stop grace.

        --init and a short grace: busybox as pid 1 ignores SIGTERM, and every removal or update
        would otherwise wait 10 s per task.
        """
        kwargs.setdefault("name", self.name("svc"))
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        kwargs["container_labels"] = {**self.labels, **kwargs.get("container_labels", {})}
        kwargs.setdefault("init", True)
        kwargs.setdefault("stop_grace_period", 1_000_000_000)
        if not kwargs.get("networks"):
            return self._create(image, command, kwargs)
        with self.joining():
            service = self._create(image, command, kwargs)
            self._joining.services.append(service)
        return service

    @contextlib.contextmanager
    def joining(self) -> Iterator[None]:
        """Hold the join guard across the services created in the block, and at its end wait
        until their nodes have joined their networks (wait_joined; JOIN_GUARD_S at most, for all
        of them). For a stack's services
        on one network: a node joins a network once, however many of its tasks arrive at once;
        what must not overlap is joins of different networks. Nested blocks are one."""
        if getattr(self._joining, "services", None) is not None:
            yield
            return
        self._joining.services = []
        try:
            with self.join_guard():
                deadline = time.monotonic() + JOIN_GUARD_S
                yield
                for service in self._joining.services:
                    service.wait_joined(max(0.0, deadline - time.monotonic()))
        finally:
            self._joining.services = None

    def _create(self, image: str, command: Any, kwargs: dict[str, Any]) -> Service:
        try:
            obj = self.client.services.create(image, command, **kwargs)
        except Exception as e:
            if not from_the_engine(e):
                raise
            raise explain(e, Talk.swarm(f"creating service {kwargs['name']}")) from e
        service = Service(self, obj, kwargs["name"])
        self._services.append(service)
        return service

    def overlay(self, **kwargs: Any) -> Any:
        kwargs.setdefault("name", self.name("ovl"))
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        try:
            net = self.client.networks.create(driver="overlay", attachable=True, **kwargs)
        except Exception as e:
            if not from_the_engine(e):
                raise
            raise explain(e, Talk.swarm(f"creating overlay network {kwargs['name']}")) from e
        self._networks.append(net)
        return net

    def secret(self, data: bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("name", self.name("sec"))
        secret = self.client.secrets.create(data=data, labels={**self.labels}, **kwargs)
        self._secrets.append(secret)
        return secret

    def config(self, data: bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("name", self.name("cfg"))
        config = self.client.configs.create(data=data, labels={**self.labels}, **kwargs)
        self._configs.append(config)
        return config

    def others_on(self, node_id: str) -> list[Any]:
        """The services with a running task on the node that no check created (the lab's own, such as
        the attendee's lab5 stack): what draining the node moves away."""
        try:
            found = []
            for service in self.client.services.list():
                if any(k.startswith("pytest-workshop.") for k in (service.attrs["Spec"].get("Labels") or {})):
                    continue
                if service.tasks(filters={"node": node_id, "desired-state": "running"}):
                    found.append(service)
            return found
        except Exception as e:
            if not from_the_engine(e):
                raise
            raise explain(e, Talk.swarm("listing the services on a node")) from e

    def respread(self, services: list[Any]) -> None:
        """Redeploy ``services`` (`docker service update --force`) and wait until each update has
        completed: Swarm does not move tasks back onto a node that was drained, so the lab's own
        services stay where the drain put them (lab5's LAB5-02 would find them on fewer nodes)."""
        for service in services:
            try:
                service.reload()
                service.force_update()

                def done(service: Any = service) -> bool:
                    service.reload()
                    return (service.attrs.get("UpdateStatus") or {}).get("State") in ("completed", None)

                wait_for(
                    f"service {service.name} did not finish its redeploy",
                    done,
                    self.converge_timeout,
                    step=0.5,
                    hint="`docker service ps` shows which task does not start",
                )
            except Exception as e:
                if not from_the_engine(e):
                    raise
                raise explain(e, Talk.swarm(f"redeploying service {service.name}")) from e

    def cleanup(self, timeout: float = 30) -> list[str]:
        """Services first (their tasks hold networks, secrets and configs), then the rest."""
        problems: list[str] = []
        for s in reversed(self._services):
            try:
                s.obj.remove()
            except Exception as e:
                if "not found" not in str(e).lower():
                    problems.append(f"service {s.name}: {str(e)[:120]}")
        deadline = time.monotonic() + timeout
        for kind, items in (("network", self._networks), ("secret", self._secrets), ("config", self._configs)):
            for item in reversed(items):
                refusal = ""

                def removed(item: Any = item) -> bool:
                    nonlocal refusal
                    try:
                        item.remove()
                    except Exception as e:
                        if "not found" in str(e).lower():
                            return True
                        refusal = str(e)[:120]  # in use by tasks still stopping: wait for them, within a bound
                        return False
                    return True

                if not wait_until(removed, max(0.0, deadline - time.monotonic()), step=0.2):
                    problems.append(f"{kind} {getattr(item, 'name', item.id)}: {refusal}")
        for items in (self._services, self._networks, self._secrets, self._configs):
            items.clear()
        return problems
