"""Bounded polling: the one wait of the library, the lab, the faults and the checks.

``wait_for`` raises when the condition does not come: the message says what did not happen,
how long it was waited for and what was seen last, and carries a hint. ``wait_until`` is its
quiet form for checks that assert on the last value themselves. Both stop early when ``abort``
gives a reason (a process the wait depends on died: waiting longer cannot help).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

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
