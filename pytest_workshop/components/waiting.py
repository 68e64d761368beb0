"""Bounded polling: the one wait of the library, the lab, the faults and the checks.

``wait_for`` raises when the condition does not come: the message says what did not happen,
how long it was waited for and what was seen last, and carries a hint. ``wait_until`` is its
quiet form for checks that assert on the last value themselves. Both stop early when ``abort``
gives a reason (a process the wait depends on died: waiting longer cannot help).
``in_background`` runs a long experiment in a thread while other checks run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from pytest_workshop.errors import WorkshopError

T = TypeVar("T")


class WaitTimeout(WorkshopError):
    """A condition did not come within its bound (or its wait was aborted)."""


def _poll(
    predicate: Callable[[], T],
    timeout: float,
    step: float,
    abort: Callable[[], str | None] | None,
    retry_on: tuple[type[BaseException], ...],
) -> tuple[T | None, str, str | None]:
    """(last value, last error text, abort reason): the value is truthy if the condition came."""
    deadline = time.monotonic() + timeout
    value: T | None = None
    error = ""
    while True:
        try:
            value, error = predicate(), ""
        except retry_on as e:  # not there yet (an engine that does not answer while it starts)
            value, error = None, f"{type(e).__name__}: {str(e)[:160]}"
        if value:
            return value, "", None
        reason = abort() if abort is not None else None
        if reason:
            return value, error, reason
        if time.monotonic() > deadline:
            return value, error, None
        time.sleep(step)


def wait_for(
    what: str,
    predicate: Callable[[], T],
    timeout: float,
    *,
    step: float = 0.1,
    hint: str = "",
    abort: Callable[[], str | None] | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    observe: Callable[[], str] | None = None,
    error: type[WorkshopError] = WaitTimeout,
) -> T:
    """Call ``predicate`` every ``step`` seconds until it returns something truthy, and return that.

    ``what`` says what did not happen, as the message will ("service web did not converge");
    ``observe`` describes the state when the time is up (default: the last value, or the last
    error of a ``retry_on`` exception). Raises ``error`` (a WorkshopError) with ``hint``.
    """
    value, last_error, reason = _poll(predicate, timeout, step, abort, retry_on)
    if value:
        return value
    if reason:
        raise error(f"{what}: gave up waiting, {reason}", hint=hint)
    seen = observe() if observe is not None else (last_error or (f"last seen: {value!r}" if value is not None else ""))
    raise error(f"{what} within {timeout:g} s" + (f"; {seen}" if seen else ""), hint=hint)


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    step: float = 0.1,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy or ``timeout`` seconds pass; return its
    last value (falsy when the condition did not come: the caller says what that means)."""
    value, _error, _reason = _poll(predicate, timeout, step, abort, ())
    return value  # type: ignore[return-value]  # the predicate's own (falsy) value on timeout


class Experiment(Generic[T]):
    """An experiment running in a thread of its own; ``result()`` collects it.

    Most of a long check's wall time is waiting on the lab (a rolling update's delays, a TTL, a
    rollback's monitor window, Neutron and OVN building a network), not CPU. Started early, that
    wait overlaps the other checks; the check that asserts on it then collects a result that is
    mostly or entirely there. Whatever the experiment raised is raised by ``result()``, in the
    check, so the verdict is the same as if the check had run it itself.
    """

    def __init__(self, name: str, fn: Callable[[], T], bound: float, after: Experiment[Any] | None = None) -> None:
        self.name, self.bound = name, bound
        self._fn, self._after = fn, after
        self._value: T | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"workshop-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._after is not None:
                self._after.wait()  # not side by side with it: it needs the lab to itself, or first
            self._value = self._fn()
        except BaseException as e:  # handed to the check that collects the result
            self._error = e

    def wait(self) -> None:
        """Until the experiment has finished (or its bound is up), whatever its outcome: for an
        experiment that should not compete with this one for the lab."""
        self._thread.join(max(0.0, self._started + self.bound - time.monotonic()))

    def result(self) -> T:
        """The experiment's value once it finished, within ``bound`` seconds of its start."""
        self.wait()
        if self._thread.is_alive():
            raise WorkshopError(
                f"the {self.name} experiment did not finish within {self.bound:g} s of its start",
                hint="its own waits are bounded more tightly, so the lab stalled it: read the component's log",
            )
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised


@contextmanager
def in_background(
    name: str, fn: Callable[..., T], bound: float, *args: Any, after: Experiment[Any] | None = None
) -> Iterator[Experiment[T]]:
    """Run ``fn(*args)`` in a thread for the ``with`` block (once ``after`` has finished, if given);
    at the block's end, wait (within ``bound`` of the start) for it to finish, so that what it
    created is cleaned up after it, never while it still runs. Use it in a module-scoped fixture:
    ``with in_background("rollback", rollback, 90, services) as e: yield e``."""
    experiment = Experiment(name, lambda: fn(*args), bound, after)
    try:
        yield experiment
    finally:
        experiment.wait()
