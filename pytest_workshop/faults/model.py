"""What a fault scenario is made of: the context it acts in, its acts, and the scenario itself.

A scenario acts only through a lab control (``members(component)`` / ``member(component, name)``,
see lab/control.py) plus read-only clients built from the lab's configuration, so the same
scenario works on the embedded lab and on a real machine whose services are systemd units.
``choose`` returns the data the other acts need (which member was chosen, e.g. the leader at that
moment); that data goes to the journal before anything is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError

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
        engines = docker.connect_each(self.lab.docker, self.lab.swarm_hosts, self.lab.timeouts)
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
class Acts:
    """How a scenario breaks the lab and puts it back."""

    choose: Callable[[FaultContext], Data]  # what to break (journalled before anything breaks)
    inject: Callable[[FaultContext, Data], None]
    restore: Callable[[FaultContext, Data], None]
    is_injected: Callable[[FaultContext, Data], bool]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    component: str  # the component it breaks (the lab must have it)
    detected_by: tuple[str, ...]  # check IDs that must fail while it is injected
    acts: Acts
    needs: tuple[str, ...] = field(default=())  # further components the lab must have

    def choose(self, ctx: FaultContext) -> Data:
        return self.acts.choose(ctx)

    def inject(self, ctx: FaultContext, data: Data) -> None:
        self.acts.inject(ctx, data)

    def restore(self, ctx: FaultContext, data: Data) -> None:
        self.acts.restore(ctx, data)

    def is_injected(self, ctx: FaultContext, data: Data) -> bool:
        return self.acts.is_injected(ctx, data)
