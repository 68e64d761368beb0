"""What runs beside what: the one place that says it.

Processes (``scheduling``): under pytest-xdist a suite module's checks stay on one worker, each
worker starts with one module, and at most ``[lab] parallel`` modules of one lab run at once.

Threads within a worker (``background``): the experiments a module declares with
``@experiment`` start at the module's first check and run while its other checks run; each
waits for the experiments it names in ``after``, and the checks that collect them run after the
module's other checks. Clean-ups of module set-ups run in the
background (``deferred_cleanup``) and are waited for at the session's end.

Locks between all of them, across workers and runs (``locks.LOCKS``):

========================  ===================================  ==================================
lock                      held shared by                       held exclusively by
========================  ===================================  ==================================
lab                       every check, when breakage may be    a disruptive check (lab6)
                          allowed on the lab
swarm-placement           lab5's app module; LAB6-11           LAB2-12, while it drains a node
overlay-join              nobody                               a service starting tasks on an
                                                               overlay (skipped if not had in time)
========================  ===================================  ==================================

A check or fixture takes a lock through the fixtures below, never a lock file of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.plugin.concurrency import locks
from pytest_workshop.plugin.concurrency.background import (
    Task,
    collectors_last,
    deferred_cleanup,
    experiment,
    release_after_last_user,
    release_pending,
    start_declared,
)
from pytest_workshop.plugin.concurrency.scheduling import (
    WORKERINPUT_KEY,
    controller_keeps_modules_together,
    dist_given,
    modules_kept_together,
    pytest_xdist_make_scheduler,
)

__all__ = [
    "WORKERINPUT_KEY",
    "Task",
    "collectors_last",
    "controller_keeps_modules_together",
    "deferred_cleanup",
    "dist_given",
    "experiment",
    "modules_kept_together",
    "pytest_xdist_make_scheduler",
    "release_after_last_user",
    "release_pending",
    "swarm_nodes_steady",
    "swarm_placement_exclusive",
    "swarm_placement_steady",
    "workshop_experiments",
]


@pytest.fixture(scope="module", autouse=True)
def workshop_experiments(request: pytest.FixtureRequest, lab: LabConfig) -> None:
    """At every module's first check: start the experiments its checks need (background.py)."""
    start_declared(request, lab, modules_kept_together(request.config))


def _placement_shared(lab: LabConfig) -> Iterator[None]:
    with locks.hold(locks.SWARM_PLACEMENT, lab.name, exclusive=False):
        yield


@pytest.fixture(scope="module")
def swarm_placement_steady(lab: LabConfig) -> Iterator[None]:
    """swarm-placement, shared, for a module whose services must stay where Swarm put them."""
    yield from _placement_shared(lab)


@pytest.fixture
def swarm_nodes_steady(lab: LabConfig) -> Iterator[None]:
    """swarm-placement, shared, for one check that judges the nodes' availability. Not for a
    whole module: held beside lab6's disruptive checks (lab lock exclusive) and LAB2-12
    (placement exclusive, lab lock shared) for a module's length, the two could wait on each other."""
    yield from _placement_shared(lab)


@pytest.fixture
def swarm_placement_exclusive(lab: LabConfig) -> Callable[[], AbstractContextManager[None]]:
    """``with swarm_placement_exclusive():`` swarm-placement to itself, for a check that moves
    every task off a node. It may wait for lab5 on another worker: its check's bound allows for that."""
    return lambda: locks.hold(locks.SWARM_PLACEMENT, lab.name, exclusive=True)


def lab_lock_for(lab: LabConfig, exclusive: bool) -> AbstractContextManager[None]:
    """The lab lock, for the breakage plugin's protocol wrapper."""
    return locks.hold(locks.LAB, lab.name, exclusive=exclusive)


def configure_node(node: Any) -> None:
    """pytest-xdist: tell a worker whether the scheduling keeps each module's checks in it."""
    node.workerinput[WORKERINPUT_KEY] = controller_keeps_modules_together(node.config)
