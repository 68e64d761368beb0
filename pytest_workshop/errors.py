"""Exceptions shared by every layer.

They carry a *hint*: the one thing an attendee should do next. The plugin prints
``message`` and ``hint`` instead of a traceback for these types, because they
describe the lab, not a bug in the checks.
"""

from __future__ import annotations


class WorkshopError(Exception):
    """Base class: an expected problem with a human-readable hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(WorkshopError):
    """Bad lab configuration: names the file, the key and the fix in one line."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(f"{where}{problem} (fix: {fix})", hint=fix)


class ComponentUnavailable(WorkshopError):
    """A configured component cannot be reached (refused, timed out, missing socket)."""

    def __init__(self, component: str, message: str, hint: str = "") -> None:
        self.component = component
        super().__init__(f"{component}: {message}", hint=hint)


class CheckFailed(WorkshopError, AssertionError):
    """A check observed the lab misbehaving. Also an AssertionError so pytest counts it as a failure."""


class CheckTimeout(WorkshopError):
    """A check exceeded its time bound (the watchdog fired)."""


class LabError(WorkshopError):
    """The embedded lab could not be started, stopped or controlled."""
