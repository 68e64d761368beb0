"""Fault scenarios: what the workshop breaks on purpose, and which checks must notice.

A scenario acts only through a lab control (``members(component)`` / ``member(component, name)``,
see lab/control.py) plus read-only clients built from the lab's configuration, so the same
scenario works on the embedded lab and on a real machine whose services are systemd units.
``inject`` returns the data ``restore`` needs (which member was chosen, e.g. the leader at that
moment); that data goes to the journal before anything is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_workshop.components.waiting import wait_for, wait_until
from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults import app_scenarios

if TYPE_CHECKING:
    from pytest_workshop.lab.control import LabControl

Data = dict[str, Any]


@dataclass
class FaultContext:
    """What a scenario may use: the lab's configuration and its control."""

    lab: LabConfig
    control: LabControl

    def etcd_leader(self) -> str:
        from pytest_workshop.components import etcd

        assert self.lab.etcd is not None
        client = etcd.connect(self.lab.etcd, self.lab.timeouts)
        try:
            leader = client.cluster_view().leader
        finally:
            client.close()
        if leader is None:
            raise WorkshopError("etcd has no leader right now", hint="heal the lab first (`workshop fix --all`)")
        return leader.name

    def etcd_followers(self) -> list[str]:
        leader = self.etcd_leader()
        return [m.name for m in self.control.members("etcd") if m.name != leader]

    def swarm_view(self) -> Any:
        from pytest_workshop.components import docker, swarm

        assert self.lab.docker is not None
        client = docker.connect(self.lab.docker, self.lab.timeouts)
        try:
            return swarm.view(client, seen_from=self.lab.docker.host)
        finally:
            client.close()

    def engines_answer(self) -> bool:
        """Every engine of [swarm] hosts answers ``info`` within the request timeout."""
        from pytest_workshop.components import docker

        assert self.lab.docker is not None
        hosts = self.lab.swarm.hosts if self.lab.swarm and self.lab.swarm.hosts else (self.lab.docker.host,)
        engines = docker.connect_each(self.lab.docker, hosts, self.lab.timeouts)
        engines.close()
        return not engines.unreachable

    def swarm_leader(self) -> str:
        leader = self.swarm_view().leader
        if leader is None:
            raise WorkshopError("the Swarm has no leader right now", hint="heal the lab first (`workshop fix --all`)")
        return str(leader.hostname)

    def swarm_managers(self) -> list[str]:
        return [str(n.hostname) for n in self.swarm_view().managers]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    component: str  # the component it breaks (the lab must have it)
    detected_by: tuple[str, ...]  # check IDs that must fail while it is injected
    choose: Callable[[FaultContext], Data]  # what to break (journalled before anything breaks)
    inject: Callable[[FaultContext, Data], None]
    restore: Callable[[FaultContext, Data], None]
    is_injected: Callable[[FaultContext, Data], bool]
    needs: tuple[str, ...] = field(default=())  # further components the lab must have


# --- building blocks ---------------------------------------------------------------------------------


def _member_action(
    component: str,
    pick: Callable[[FaultContext], list[str]],
    action: str,
    undo: str,
    settle: Callable[[FaultContext], None] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """inject = `action` on the picked members; restore = `undo`; injected = still in that state."""

    def choose(ctx: FaultContext) -> Data:
        return {"component": component, "members": pick(ctx)}

    def inject(ctx: FaultContext, data: Data) -> None:
        for name in data["members"]:
            getattr(ctx.control.member(component, name), action)()

    def restore(ctx: FaultContext, data: Data) -> None:
        for name in data["members"]:
            member = ctx.control.member(data["component"], name)
            getattr(member, undo)()
        if settle is not None:
            settle(ctx)

    def injected(ctx: FaultContext, data: Data) -> bool:
        for name in data["members"]:
            member = ctx.control.member(data["component"], name)
            if action in ("stop", "kill") and not member.is_running():
                return True
            if action == "pause" and member.is_paused():
                return True
            if action == "partition" and member.is_partitioned():
                return True
        return False

    return choose, inject, restore, injected


def _swarm_settled(ctx: FaultContext, timeout: float = 60) -> None:
    """A restarted engine is running before its manager has caught up with the others: wait until
    the [docker] host sees every node Ready and a leader and every node's engine answers `info`
    (the restarted one blocks it while catching up), so the next check finds a whole Swarm."""

    if ctx.lab.swarm is None:
        return

    def whole() -> bool:
        try:
            view = ctx.swarm_view()
        except WorkshopError:
            return False
        return view.leader is not None and all(n.state == "ready" for n in view.nodes) and ctx.engines_answer()

    wait_for("the Swarm was not whole again after the restore", whole, timeout, step=0.5, error=WorkshopError,
             observe=lambda: "", hint="`docker node ls`")  # fmt: skip


def _named(*names: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: list(names)


def _last(component: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: [ctx.control.members(component)[-1].name]


def _last_swarm_node(ctx: FaultContext) -> Data:
    return {"node": str(ctx.swarm_view().nodes[-1].hostname)}


def _set_availability(ctx: FaultContext, node: str, availability: str) -> None:
    from pytest_workshop.components import docker, swarm

    assert ctx.lab.docker is not None
    client = docker.connect(ctx.lab.docker, ctx.lab.timeouts)
    try:
        swarm.set_availability(client, node, availability)
    finally:
        client.close()


def _is_drained(ctx: FaultContext, data: Data) -> bool:
    view = ctx.swarm_view()
    return any(n.hostname == data["node"] and n.availability == "drain" for n in view.nodes)


def _cloud_user(ctx: FaultContext) -> Data:
    from pytest_workshop.components import openstack

    assert ctx.lab.openstack is not None
    user = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts)
    try:
        return {"user_id": user.current_user_id}
    finally:
        user.close()


def _wrong_credentials_inject(ctx: FaultContext, data: Data) -> None:
    """The cloud user's password in Keystone changes; clouds.yaml keeps the old one."""
    import secrets as pysecrets

    from pytest_workshop.components import openstack

    assert ctx.lab.openstack is not None
    admin = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts, admin=True)
    try:
        admin.identity.update_user(data["user_id"], password=pysecrets.token_urlsafe(18))
    finally:
        admin.close()


def _wrong_credentials_restore(ctx: FaultContext, data: Data) -> None:
    from pytest_workshop.components import openstack
    from pytest_workshop.config.clouds import read_clouds

    assert ctx.lab.openstack is not None and ctx.lab.openstack.clouds_yaml is not None
    password = read_clouds(ctx.lab.openstack.clouds_yaml, "clouds.yaml")[ctx.lab.openstack.cloud]["auth"]["password"]
    admin = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts, admin=True)
    try:
        admin.identity.update_user(data["user_id"], password=password)
    finally:
        admin.close()


def _wrong_credentials_injected(ctx: FaultContext, data: Data) -> bool:
    from pytest_workshop.components import openstack

    assert ctx.lab.openstack is not None
    try:
        openstack.connect(ctx.lab.openstack, ctx.lab.timeouts).close()
    except WorkshopError as e:
        return "rejected the credentials" in e.message
    return False


# etcd out of space: filled for real under its own prefix until etcd raises NOSPACE. That needs a
# small quota (the embedded lab's is 64 MiB); on a lab with etcd's default 2 GiB it refuses.
NOSPACE_PREFIX = b"/pytest-workshop-fault/nospace/"
NOSPACE_CHUNK = 512 * 1024  # below etcd's default --max-request-bytes (1.5 MiB)
NOSPACE_FILL_LIMIT = 256 * 1024 * 1024


def _etcd(ctx: FaultContext) -> Any:
    from pytest_workshop.components import etcd

    assert ctx.lab.etcd is not None
    return etcd.connect(ctx.lab.etcd, ctx.lab.timeouts)


def _fill_etcd(ctx: FaultContext, data: Data) -> None:
    import os

    from pytest_workshop.components.etcd import EtcdError

    chunk = os.urandom(NOSPACE_CHUNK)
    with _etcd(ctx) as client:
        for i in range(NOSPACE_FILL_LIMIT // NOSPACE_CHUNK):
            try:
                client.put(NOSPACE_PREFIX + b"%06d" % i, chunk)
            except EtcdError as e:
                if e.is_nospace:
                    return
                raise
    raise WorkshopError(
        f"etcd did not run out of space after {NOSPACE_FILL_LIMIT >> 20} MiB",
        hint="this scenario needs a small quota: start etcd with --quota-backend-bytes=67108864 (the embedded lab's)",
    )


def _recover_etcd_space(ctx: FaultContext, data: Data) -> None:
    with _etcd(ctx) as client:
        client.recover_space(delete_prefix=NOSPACE_PREFIX)


def _etcd_out_of_space(ctx: FaultContext, data: Data) -> bool:
    with _etcd(ctx) as client:
        return any(name == "NOSPACE" for _, name in client.alarms()) or bool(
            client.get_prefix(NOSPACE_PREFIX, keys_only=True)
        )


def _scenario(name: str, description: str, component: str, detected_by: tuple[str, ...],
              parts: tuple[Any, Any, Any, Any], needs: tuple[str, ...] = ()) -> Scenario:  # fmt: skip
    return Scenario(name, description, component, detected_by, *parts, needs=needs)


ETCD_ONE_DOWN = ("LAB3-01", "LAB3-03", "LAB3-04", "LAB3-14", "LAB6-12")
LAB4_ALL = tuple(f"LAB4-{i:02d}" for i in range(1, 16))

SCENARIOS: list[Scenario] = [
    _scenario("docker-engine-stopped", "The Docker engine of the first node is stopped", "docker",
              ("LAB1-01", "LAB1-05", "LAB2-01", "LAB6-10"), _member_action("docker", lambda c: [c.control.members("docker")[0].name], "stop", "start", _swarm_settled)),
    _scenario("docker-engine-paused", "The first node's Docker engine hangs (SIGSTOP)", "docker",
              ("LAB1-01", "LAB1-05", "LAB6-10"), _member_action("docker", lambda c: [c.control.members("docker")[0].name], "pause", "resume")),
    _scenario("swarm-node-drained", "The last Swarm node is drained: no tasks run there", "swarm",
              ("LAB2-03", "LAB6-11"), (_last_swarm_node, lambda c, d: _set_availability(c, d["node"], "drain"),
                             lambda c, d: _set_availability(c, d["node"], "active"), _is_drained)),
    _scenario("swarm-leader-engine-killed", "The Swarm leader's engine is killed", "swarm",
              ("LAB2-01", "LAB2-06", "LAB6-10"), _member_action("docker", lambda c: [c.swarm_leader()], "kill", "start", _swarm_settled)),
    _scenario("swarm-follower-engine-killed", "A manager that is not the leader loses its engine", "swarm",
              ("LAB2-01", "LAB2-06", "LAB6-10"), _member_action("docker", lambda c: [m for m in c.swarm_managers() if m != c.swarm_leader()][:1], "kill", "start", _swarm_settled)),
    _scenario("swarm-two-managers-down", "Two of three managers are down: no quorum, no leader", "swarm",
              ("LAB2-01", "LAB2-06", "LAB6-10"), _member_action("docker", lambda c: [m for m in c.swarm_managers() if m != c.control.members("docker")[0].name][:2], "kill", "start", _swarm_settled)),
    _scenario("node-partitioned", "The last lab machine's network cable is pulled", "swarm",
              ("LAB2-01", "LAB3-01", "LAB6-10", "LAB6-12"), _member_action("node", _last("node"), "partition", "heal", _swarm_settled)),
    _scenario("node-crashed", "The last lab machine loses power (everything on it dies)", "swarm",
              ("LAB2-01", "LAB3-01", "LAB6-10", "LAB6-12"), _member_action("node", _last("node"), "kill", "start", _swarm_settled)),
    _scenario("etcd-follower-killed", "An etcd follower is killed", "etcd",
              ETCD_ONE_DOWN, _member_action("etcd", lambda c: c.etcd_followers()[:1], "kill", "start")),
    _scenario("etcd-leader-killed", "The etcd leader is killed (a new one is elected)", "etcd",
              ETCD_ONE_DOWN, _member_action("etcd", lambda c: [c.etcd_leader()], "kill", "start")),
    _scenario("etcd-quorum-lost", "Two of three etcd members are killed: no quorum", "etcd",
              ("LAB3-01", "LAB3-04", "LAB3-07", "LAB6-12"), _member_action("etcd", lambda c: [m.name for m in c.control.members("etcd")][1:], "kill", "start")),
    _scenario("etcd-member-paused", "An etcd member hangs (SIGSTOP)", "etcd",
              ("LAB3-01", "LAB3-03", "LAB6-12"), _member_action("etcd", _last("etcd"), "pause", "resume")),
    _scenario("etcd-member-partitioned", "An etcd member's peer traffic is dropped", "etcd",
              ("LAB3-01",), _member_action("etcd", _last("etcd"), "partition", "heal")),
    _scenario("etcd-out-of-space", "etcd's database is full (NOSPACE alarm): it refuses writes", "etcd",
              ("LAB3-06", "LAB3-07", "LAB6-12"), (lambda c: {"prefix": NOSPACE_PREFIX.decode()}, _fill_etcd, _recover_etcd_space, _etcd_out_of_space)),
    _scenario("kuryr-not-answering", "kuryr-libnetwork is stopped", "kuryr",
              ("LAB4-05", "LAB4-06", "LAB6-14"), _member_action("openstack", _named("kuryr"), "stop", "start"), needs=("openstack",)),
    _scenario("kuryr-paused", "kuryr-libnetwork hangs (SIGSTOP): Docker waits on it", "kuryr",
              ("LAB4-05",), _member_action("openstack", _named("kuryr"), "pause", "resume"), needs=("openstack",)),
    _scenario("ovn-controller-stopped", "ovn-controller is stopped: ports stay DOWN", "openstack",
              ("LAB4-09", "LAB4-12"), _member_action("openstack", _named("ovn-controller"), "stop", "start"), needs=("kuryr",)),
    _scenario("neutron-api-down", "The Neutron API is stopped", "openstack",
              ("LAB1-14", "LAB4-02", "LAB4-03", "LAB6-13"), _member_action("openstack", _named("neutron-api"), "stop", "start")),
    _scenario("keystone-down", "Keystone is stopped: nothing authenticates", "openstack",
              ("LAB1-13", "LAB1-14", *LAB4_ALL, "LAB6-13"), _member_action("openstack", _named("keystone"), "stop", "start")),
    _scenario("app-etcd-cut-off", "The app's containers cannot reach etcd (firewall on every node)", "etcd",
              ("LAB5-03", "LAB5-07"), app_scenarios.firewall("app-etcd-cut-off", "all"), needs=("swarm",)),
    _scenario("app-overlay-dropped", "Overlay (VXLAN) traffic to and from the last node is dropped", "swarm",
              ("LAB5-07", "LAB5-15"), app_scenarios.firewall("app-overlay-dropped", "last"), needs=("etcd",)),
    _scenario("app-stale-registration", "A backend registration outlives its instance (no lease)", "etcd",
              ("LAB5-06",), app_scenarios.etcd_key(app_scenarios._ghost_key, app_scenarios._ghost_value), needs=("swarm",)),
    _scenario("app-backend-zombie", "Backends on the last node stay registered but stop answering", "etcd",
              ("LAB5-07", "LAB5-15"), app_scenarios.etcd_key(app_scenarios._chaos_key, app_scenarios._last_node), needs=("swarm",)),
    _scenario("wrong-cloud-credentials", "The demo user's password changed; clouds.yaml has the old one", "openstack",
              ("LAB1-13", "LAB1-14"), (_cloud_user, _wrong_credentials_inject, _wrong_credentials_restore, _wrong_credentials_injected)),
]  # fmt: skip

BY_NAME = {s.name: s for s in SCENARIOS}


def get(name: str) -> Scenario:
    try:
        return BY_NAME[name]
    except KeyError:
        raise WorkshopError(f"no scenario {name!r}", hint="list them with `workshop break --list`") from None


def applicable(lab: LabConfig) -> list[Scenario]:
    return [s for s in SCENARIOS if lab.has(s.component) and all(lab.has(c) for c in s.needs)]


def wait_restored(ctx: FaultContext, scenario: Scenario, data: Data, timeout: float = 30) -> bool:
    return bool(wait_until(lambda: not scenario.is_injected(ctx, data), timeout, step=0.2))
