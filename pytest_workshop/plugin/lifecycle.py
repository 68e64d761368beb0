"""The life cycle every fixture that creates something follows: required, swept, cleaned.

require          a component the lab's configuration must have (else a FAIL naming the section)
swept_session_client  a session client between two sweeps: dead runs' leftovers before, this run's after
cleaned          yield a factory, then remove what it created, even on Ctrl-C
cleaned_later    the same for a module-scoped factory, its removal in the background (deferred_cleanup)
uninterrupted    finish a clean-up even if Ctrl-C arrives during it
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig, section_article
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.state import is_worker
from pytest_workshop.run import Run, expect_leftovers


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Finish a clean-up even if Ctrl-C arrives during it; the interrupt is delivered afterwards.

    Without this a second Ctrl-C (or one landing in a teardown) leaves half-removed objects.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


def require(lab: LabConfig, component: str) -> None:
    if not lab.has(component):
        raise WorkshopError(
            f"this lab's configuration ({lab.source}) has no {component}",
            hint=f"add {section_article(component)} [{component}] section to lab.toml",
        )


def swept_session_client(config: pytest.Config, lab: LabConfig, run: Run, kind: str, client: Any) -> Iterator[Any]:
    """Yield a session client between two sweeps: leftovers of runs known dead before, this run's
    own objects after (only where this process is the whole run)."""
    from pytest_workshop import janitor

    run.touched(janitor.sweep_target(lab, kind, client))
    janitor.sweep(lab, include_live="known-dead", **{f"{kind}_client": client})
    yield client
    with uninterrupted():
        try:
            # only a process that is the whole run: an xdist worker's siblings still use objects
            # with the run's label (the controller sweeps once they are all gone)
            if not is_worker(config):
                report = janitor.sweep(lab, only_run=run.run_id, **{f"{kind}_client": client})
                if report.errors:
                    expect_leftovers(run.run_id)
        finally:
            client.close()


def cleaned(factory: Any, strict: bool = True) -> Iterator[Any]:
    """Yield a factory, then remove what it created even on Ctrl-C. ``strict``: what could not be
    removed fails the test's teardown (module-scoped factories only try: the session sweep follows)."""
    yield factory
    with uninterrupted():
        problems = factory.cleanup()
    if problems and strict:
        raise WorkshopError("could not remove: " + "; ".join(problems), hint="run `workshop janitor`")


def cleaned_later(factory: Any, defer: Callable[[Callable[[], Any]], None]) -> Iterator[Any]:
    """Yield a module-scoped factory, then have ``deferred_cleanup`` remove what it created."""
    yield factory
    defer(factory.cleanup)
