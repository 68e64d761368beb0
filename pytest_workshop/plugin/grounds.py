"""What a suite stands on, read first when one of its checks fails in its own terms.

lab5's checks look at an app: a registration that is missing, a backend that does not answer.
When the Swarm's nodes cannot reach each other, every one of those fails, and each one's own
hint sends the attendee to the app's code. A suite declares what it stands on
(``workshop_lab(..., stands_on=["swarm overlay"])``); when a check fails with its own finding
(an assertion, a CheckFailed; not a component that does not answer, which names itself), the
ground is read, and a ground at fault is said first: its finding and hint, then the check's.

A reading is kept ``KEEP_S`` per lab and ground: the checks that fail together ask once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pytest_workshop.config.model import LabConfig

KEEP_S = 20.0

# (message, hint) of a ground at fault, or None
Finding = tuple[str, str] | None


def _swarm_overlay(lab: LabConfig) -> Finding:
    from dataclasses import replace

    from pytest_workshop.components.docker import connect_each
    from pytest_workshop.components.swarm_network import HINT_OVERLAY_CUT, overlay_cut
    from pytest_workshop.config import DockerConfig

    if len(lab.swarm_hosts) < 2:
        return None
    timeouts = replace(lab.timeouts, request=min(lab.timeouts.request, 5.0))
    engines = connect_each(lab.docker or DockerConfig(), lab.swarm_hosts, timeouts)
    try:
        cut = overlay_cut(list(engines.clients.values()))
    finally:
        engines.close()
    return (cut.message, HINT_OVERLAY_CUT) if cut else None


GROUNDS: dict[str, Callable[[LabConfig], Finding]] = {"swarm overlay": _swarm_overlay}

_lock = threading.Lock()
_kept: dict[tuple[str, str], tuple[float, Finding]] = {}


def ground_at_fault(lab: LabConfig, grounds: tuple[str, ...]) -> Finding:
    """The first of ``grounds`` at fault on ``lab``. A ground that cannot be read says nothing:
    it is evidence for a hint, never a verdict of its own."""
    for name in grounds:
        key = (lab.name, name)
        with _lock:
            kept = _kept.get(key)
            if kept is None or time.monotonic() - kept[0] > KEEP_S:
                try:
                    found = GROUNDS[name](lab)
                except Exception:
                    found = None
                kept = _kept[key] = (time.monotonic(), found)
        if kept[1] is not None:
            return kept[1]
    return None


def forget() -> None:
    """A new session reads its grounds afresh (``workshop check --watch`` runs sessions in one process)."""
    with _lock:
        _kept.clear()


def unknown_grounds(grounds: tuple[str, ...]) -> list[str]:
    return [g for g in grounds if g not in GROUNDS]


def said_first(ground: tuple[str, str], message: str, hint: str) -> tuple[str, str]:
    """The ground's finding before the check's own: (message, hint)."""
    return (
        f"{ground[0]}; what the check saw: {message}",
        f"{ground[1]}; once that is fixed, if the check still fails: {hint}",
    )
