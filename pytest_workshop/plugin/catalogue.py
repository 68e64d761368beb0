"""Checks as pytest sees them: the ``check`` and ``workshop_lab`` markers read into plain data."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import pytest

CHECK_ID = re.compile(r"^LAB(\d)-(\d\d)$")


@dataclass(frozen=True)
class CheckInfo:
    id: str
    title: str
    component: str
    hint: str
    lab: str  # e.g. "lab3"
    lab_title: str  # e.g. "Lab 3: etcd"
    requires: tuple[str, ...]  # the suite's own topic components: absent means failure, not skip
    timeout: float | None = None  # the check's own bound (disruptive ones wait for failovers); lab.toml wins
    step: str | None = None  # the guide's step it checks ("3.2"): done by then, and by nothing later
    # what the suite stands on (plugin/grounds.py): read first when a check fails in its own terms
    stands_on: tuple[str, ...] = ()


def check_marker(
    check_id: str, title: str, *, component: str, hint: str, step: str | None = None, timeout: float | None = None
) -> None:
    """The ``@pytest.mark.check`` signature: a marker's arguments are bound to it, so a misspelled
    keyword (``timout=``) is refused instead of silently ignored."""


def check_of(item: pytest.Item) -> CheckInfo | None:
    mark = item.get_closest_marker("check")
    if mark is None:
        return None
    try:
        inspect.signature(check_marker).bind(*mark.args, **mark.kwargs)
    except TypeError as e:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.check({', '.join(map(repr, mark.args))}, ...): {e} "
            "(it takes ID, title, component=, hint= and optionally step= and timeout=)"
        ) from None
    check_id, title = mark.args[0], mark.args[1]
    component = mark.kwargs.get("component")
    hint = mark.kwargs.get("hint")
    if not CHECK_ID.match(check_id) or not component or not hint:
        raise pytest.UsageError(f"{item.nodeid}: check {check_id!r} needs an ID like LAB3-07, component= and hint=")
    lab_mark = item.get_closest_marker("workshop_lab")
    lab, lab_title, requires, stands_on = "", "", (), ()
    if lab_mark is not None:
        lab = lab_mark.args[0]
        lab_title = lab_mark.args[1] if len(lab_mark.args) > 1 else lab
        requires = tuple(lab_mark.kwargs.get("requires", ()))
        stands_on = tuple(lab_mark.kwargs.get("stands_on", ()))
        from pytest_workshop.plugin.grounds import GROUNDS, unknown_grounds

        if unknown_grounds(stands_on):
            raise pytest.UsageError(
                f"{item.nodeid}: workshop_lab(stands_on=...) names {', '.join(unknown_grounds(stands_on))}; "
                f"known grounds: {', '.join(GROUNDS)}"
            )
    timeout = mark.kwargs.get("timeout")
    step = mark.kwargs.get("step")
    if step is not None and not re.match(rf"^{check_id[3]}\.\d+$", str(step)):
        raise pytest.UsageError(
            f"{item.nodeid}: check {check_id}'s step={step!r} is not a step of lab {check_id[3]} (like {check_id[3]}.2)"
        )
    return CheckInfo(check_id, title, component, hint, lab, lab_title, requires, timeout, step, stands_on)


MARKERS = [
    "check(id, title, component=, hint=, step=None, timeout=None): a workshop check with a stable ID, a one-line title, a hint and the guide's step it checks",
    "workshop_lab(name, title, requires=[...], stands_on=[...]): the lab a suite belongs to, the components it is about, and what it stands on (read first when a check fails)",
]


STATIC_CHECK = re.compile(r"""@pytest\.mark\.check\(\s*["'](LAB\d-\d\d)["']""")
