"""The building blocks of fault scenarios: acts on a lab's members, and the pickers that say which.

Each builder returns an Acts (model.py); scenarios.py composes them into the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults.model import Acts, Data, FaultContext


def member_action(
    component: str,
    pick: Callable[[FaultContext], list[str]],
    action: str,
    undo: str,
    settle: Callable[[FaultContext], None] | None = None,
) -> Acts:
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

    return Acts(choose, inject, restore, injected)


def swarm_settled(ctx: FaultContext, timeout: float = 60) -> None:
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

    wait_for(
        "the Swarm was not whole again after the restore",
        whole,
        timeout,
        step=0.5,
        error=WorkshopError,
        observe=lambda: "",
        hint="`docker node ls`",
    )


def named(*names: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: list(names)


def last(component: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: [ctx.control.members(component)[-1].name]


def last_swarm_node(ctx: FaultContext) -> Data:
    return {"node": str(ctx.swarm_view().nodes[-1].hostname)}


def set_availability(ctx: FaultContext, node: str, availability: str) -> None:
    from pytest_workshop.components import docker, swarm

    assert ctx.lab.docker is not None
    client = docker.connect(ctx.lab.docker, ctx.lab.timeouts)
    try:
        swarm.set_availability(client, node, availability)
    finally:
        client.close()


def is_drained(ctx: FaultContext, data: Data) -> bool:
    view = ctx.swarm_view()
    return any(n.hostname == data["node"] and n.availability == "drain" for n in view.nodes)


def cloud_user(ctx: FaultContext) -> Data:
    from pytest_workshop.components import openstack

    assert ctx.lab.openstack is not None
    user = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts)
    try:
        return {"user_id": user.current_user_id}
    finally:
        user.close()


def wrong_credentials_inject(ctx: FaultContext, data: Data) -> None:
    """The cloud user's password in Keystone changes; clouds.yaml keeps the old one."""
    import secrets as pysecrets

    from pytest_workshop.components import openstack

    assert ctx.lab.openstack is not None
    admin = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts, admin=True)
    try:
        admin.identity.update_user(data["user_id"], password=pysecrets.token_urlsafe(18))
    finally:
        admin.close()


def wrong_credentials_restore(ctx: FaultContext, data: Data) -> None:
    from pytest_workshop.components import openstack
    from pytest_workshop.config.clouds import read_clouds

    assert ctx.lab.openstack is not None and ctx.lab.openstack.clouds_yaml is not None
    password = read_clouds(ctx.lab.openstack.clouds_yaml, "clouds.yaml")[ctx.lab.openstack.cloud]["auth"]["password"]
    admin = openstack.connect(ctx.lab.openstack, ctx.lab.timeouts, admin=True)
    try:
        admin.identity.update_user(data["user_id"], password=password)
    finally:
        admin.close()


def wrong_credentials_injected(ctx: FaultContext, data: Data) -> bool:
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


def etcd_client(ctx: FaultContext) -> Any:
    from pytest_workshop.components import etcd

    assert ctx.lab.etcd is not None
    return etcd.connect(ctx.lab.etcd, ctx.lab.timeouts)


def fill_etcd(ctx: FaultContext, data: Data) -> None:
    import os

    from pytest_workshop.components.etcd import EtcdError

    chunk = os.urandom(NOSPACE_CHUNK)
    with etcd_client(ctx) as client:
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


def recover_etcd_space(ctx: FaultContext, data: Data) -> None:
    with etcd_client(ctx) as client:
        client.recover_space(delete_prefix=NOSPACE_PREFIX)


def etcd_out_of_space(ctx: FaultContext, data: Data) -> bool:
    with etcd_client(ctx) as client:
        return any(name == "NOSPACE" for _, name in client.alarms()) or bool(
            client.get_prefix(NOSPACE_PREFIX, keys_only=True)
        )


def first(component: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: [ctx.control.members(component)[0].name]


def all_but_first(component: str) -> Callable[[FaultContext], list[str]]:
    return lambda ctx: [m.name for m in ctx.control.members(component)][1:]


def swarm_leader(ctx: FaultContext) -> list[str]:
    return [ctx.swarm_leader()]


def a_follower_manager(ctx: FaultContext) -> list[str]:
    leader = ctx.swarm_leader()
    return [m for m in ctx.swarm_managers() if m != leader][:1]


def two_managers_but_the_first_node(ctx: FaultContext) -> list[str]:
    """Two managers other than the [docker] host's node, which must stay to be asked."""
    first_node = ctx.control.members("docker")[0].name
    return [m for m in ctx.swarm_managers() if m != first_node][:2]


def etcd_leader(ctx: FaultContext) -> list[str]:
    return [ctx.etcd_leader()]


def an_etcd_follower(ctx: FaultContext) -> list[str]:
    return ctx.etcd_followers()[:1]


def node_drained() -> Acts:
    """The last Swarm node drained; restored to active."""
    return Acts(
        last_swarm_node,
        lambda ctx, data: set_availability(ctx, data["node"], "drain"),
        lambda ctx, data: set_availability(ctx, data["node"], "active"),
        is_drained,
    )


def wrong_credentials() -> Acts:
    return Acts(cloud_user, wrong_credentials_inject, wrong_credentials_restore, wrong_credentials_injected)


def etcd_filled() -> Acts:
    return Acts(lambda ctx: {"prefix": NOSPACE_PREFIX.decode()}, fill_etcd, recover_etcd_space, etcd_out_of_space)
