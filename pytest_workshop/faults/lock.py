"""A read/write lock per lab, across processes (xdist workers, several pytest runs, the CLI).

Ordinary checks hold it shared; a disruptive one holds it exclusively, so it never runs while
any other check is looking at the same lab (Tempest's serial tests do the same). flock(2): the
kernel drops it when the holder dies, so a crashed worker never leaves the lab locked.
(``--dist loadgroup`` cannot do this here: with pytest 9.2 + xdist 3.8 it does not group, research.)

The same kind of lock guards narrower resources of a lab (``resource``): "swarm-placement" is
held shared by a module whose services must stay where Swarm put them (lab5's app, for all of
its checks), and exclusively by a check that moves every task off a node (LAB2-12 drains one);
"overlay-join" is held exclusively while a service starts its tasks on an overlay network
(components/swarm.py, ServiceFactory: dockerd stalls a task 30 s when two nodes' NetworkDB syncs cross).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import WorkshopError

LOCK_DIR = Path(os.environ.get("WORKSHOP_LOCK_DIR", "/tmp/pytest-workshop-locks"))


@contextlib.contextmanager
def lab_lock(lab_name: str, exclusive: bool, timeout: float, resource: str = "") -> Iterator[None]:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", lab_name) + (f".{resource}" if resource else "")
    path = LOCK_DIR / (name + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH

    def locked() -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        if resource:
            what = f"with {resource} to itself" if exclusive else f"while another check holds {resource}"
        else:
            what = "alone (a disruptive check)" if exclusive else "while a disruptive check runs"
        wait_for(f"could not get the lab {lab_name!r} to run {what}", locked, timeout, step=0.05, error=WorkshopError,
                 observe=lambda: "", hint=f"another run holds {path}; wait for it, or raise the check's timeout")  # fmt: skip
        yield
    finally:
        os.close(fd)  # closing releases the lock
