"""The locks of a lab, across processes (xdist workers, several pytest runs, the CLI): one table.

Each lock is a read/write lock on a file per lab (flock(2)): the kernel drops it when its holder
dies, so a crashed worker never leaves the lab locked. ``LOCKS`` says who holds each one shared,
who holds it exclusively, and what a holder does when it cannot be had in time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import WorkshopError

LOCK_DIR = Path(os.environ.get("WORKSHOP_LOCK_DIR", "/tmp/pytest-workshop-locks"))


@dataclass(frozen=True)
class Lock:
    name: str
    shared: str  # who holds it shared (side by side with each other)
    exclusive: str  # who holds it alone
    wait: float | None  # seconds a holder waits for it (None: the caller's bound)
    unavailable: str  # what happens when it cannot be had within the wait
    file: str  # the lock file's suffix: "" is the lab's own lock file

    def path(self, lab_name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", lab_name) + (f".{self.file}" if self.file else "")
        return LOCK_DIR / f"{stem}.lock"


LAB = Lock(
    "lab",
    shared="every check of a lab whose configuration allows breakage",
    exclusive="a disruptive check (lab6): it never runs while another check looks at the lab",
    wait=600.0,
    unavailable="the check fails, naming the lock file another run holds",
    file="",
)
SWARM_PLACEMENT = Lock(
    "swarm-placement",
    shared="a module whose services must stay where Swarm put them (lab5's app), for all of its checks; "
    "a check that judges the nodes' availability (LAB6-11)",
    exclusive="a check that moves every task off a node (LAB2-12 drains one)",
    wait=180.0,  # LAB2-12 may wait for all of lab5 on another worker
    unavailable="the check fails, naming the lock file",
    file="swarm-placement",
)
OVERLAY_JOIN = Lock(
    "overlay-join",
    shared="nobody",
    exclusive="a service starting its tasks on overlay networks, until they are past the join "
    "(dockerd 20.10 keeps one NetworkDB bulk-sync answer per peer: two joins that cross wait 30 s)",
    wait=None,  # [timeouts] converge
    unavailable="the service starts without it: the lock only makes the stall unlikely, the checks still judge",
    file="overlay-join",
)
LOCKS = (LAB, SWARM_PLACEMENT, OVERLAY_JOIN)


@contextlib.contextmanager
def hold(lock: Lock, lab_name: str, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """Hold ``lock`` of lab ``lab_name``; a WorkshopError if it cannot be had within the wait."""
    wait = timeout if timeout is not None else lock.wait
    assert wait is not None, f"the {lock.name} lock has no wait of its own: give one"
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    path = lock.path(lab_name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH

    def locked() -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    if lock is LAB:
        what = "alone (a disruptive check)" if exclusive else "while a disruptive check runs"
    else:
        what = f"with {lock.name} to itself" if exclusive else f"while another check holds {lock.name}"
    try:
        wait_for(
            f"could not get the lab {lab_name!r} to run {what}",
            locked,
            wait,
            step=0.05,
            error=WorkshopError,
            observe=lambda: "",
            hint=f"another run holds {path}; wait for it, or raise the check's timeout",
        )
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def overlay_join_guard(lab_name: str, wait: float) -> Iterator[None]:
    """OVERLAY_JOIN, skipped when it cannot be had within ``wait`` (the table says why)."""
    with contextlib.ExitStack() as held:
        with contextlib.suppress(WorkshopError):
            held.enter_context(hold(OVERLAY_JOIN, lab_name, exclusive=True, timeout=wait))
        yield
