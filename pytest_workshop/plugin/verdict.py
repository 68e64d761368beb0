"""Verdict policy, the per-check time bound, and short failure text.

- A check whose component the lab declares absent is skipped, saying so; if the suite is
  *about* that component, it fails instead (a workshop machine without etcd fails lab3).
- Every check runs under a watchdog (SIGALRM) so nothing can hang past its bound.
- Whatever the lab answers or fails to answer (API errors, refused connections, timeouts), in a
  check *or in a fixture's set-up*, is a FAIL of that component with its hint
  (components/failures.py says which); a set-up failure is reported on the check itself, so
  pytest, JUnit and Allure count a failure, not an error. Only exceptions of the suite's own code
  keep their traceback ("a bug in the suite").
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_workshop.components.failures import lab_failure
from pytest_workshop.components.service_log import CONTROL_SAYS
from pytest_workshop.config.model import LabConfig, section_article
from pytest_workshop.errors import CheckFailed, CheckTimeout, ComponentUnavailable, WorkshopError
from pytest_workshop.plugin.catalogue import CheckInfo, check_of
from pytest_workshop.plugin.fleet import display_id, lab_of

CHECK_KEY = pytest.StashKey[CheckInfo]()
DEADLINE_KEY = pytest.StashKey[float]()
BOUND_KEY = pytest.StashKey[float]()
SETUP_FAILURE_KEY = pytest.StashKey[WorkshopError]()
CALL_FAILED_KEY = pytest.StashKey[bool]()
HINT_EMBEDDED = "embedded lab: `workshop lab status` shows what is down"


def absent_verdict(info: CheckInfo, lab: LabConfig) -> None:
    if lab.has(info.component):
        return
    where = lab.source
    if info.component in info.requires:
        raise CheckFailed(
            f"this lab's configuration ({where}) has no {info.component}, but {info.lab} is about {info.component}",
            hint=f"add {section_article(info.component)} [{info.component}] section to lab.toml (or the matching environment variables) and run again",
        )
    pytest.skip(f"{info.id}: this lab has no {info.component} (configuration: {where})")


class _Watchdog:
    """SIGALRM-based bound for one check. Only in the main thread (xdist workers run tests there too)."""

    def __init__(self, seconds: float, check_id: str, bound: float) -> None:
        self.seconds, self.check_id, self.bound = seconds, check_id, bound
        self.previous: Any = None
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        where = waiting_in(frame)
        raise CheckTimeout(
            f"{self.check_id} did not finish within its bound of {self.bound:g} s"
            + (f" (it was in {where})" if where else ""),
            hint="a component is hung or paused; raise [timeouts] check in lab.toml only if the lab is just slow",
        )

    def __enter__(self) -> _Watchdog:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 0.001))
            self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous or signal.SIG_DFL)
            self.armed = False


def waiting_in(frame: FrameType | None, depth: int = 4) -> str:
    """Where a check was when its bound ran out: the innermost calls of the suites' and the
    library's own code, innermost first (``wait < wait_converged < deploy_reference``), so that a check that ran
    out of time says what it was waiting for, not only that it did."""
    from pytest_workshop.guide import suites_dir

    ours = (f"{Path(__file__).parents[1]}/", f"{suites_dir()}/")
    calls: list[str] = []
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(ours) and name != __file__:
            calls.append(f"{frame.f_code.co_name} ({Path(name).name}:{frame.f_lineno})")
        frame = frame.f_back
    return " < ".join(calls[:depth])


# whose members to ask when a component does not answer: what it runs on, and what it needs
CONTROLLED_BY = {
    "docker": ("docker", "node"),
    "swarm": ("docker", "node"),
    "etcd": ("etcd", "node"),
    "openstack": ("openstack",),
    "kuryr": ("openstack",),
}


MEMBER_WORDS = {"node": "machine {}", "docker": "the engine on {}", "etcd": "etcd member {}", "openstack": "{}"}


def members_down(lab: LabConfig, component: str) -> list[tuple[str, str]]:
    """What the lab's control reports not running behind ``component``: [("mariadb", "stopped")].
    Only for the embedded lab: its control reads local process records, fast enough for every
    failure. Evidence for a message, never a verdict: a control that cannot tell names nothing."""
    from pytest_workshop.faults import control_for

    down = []
    try:
        control = control_for(lab)
        for kind in CONTROLLED_BY.get(component, ()):
            for member in control.members(kind):
                if not member.started_by_the_lab():
                    continue  # the attendee's to start (a bare lab's etcd): the guide's step says how
                state = "paused" if member.is_paused() else None if member.is_running() else "stopped"
                if state:
                    down.append((MEMBER_WORDS[kind].format(member.name), state))
    except Exception:
        return []
    return down


def _watchdog(item: pytest.Item, seconds: float | None = None) -> contextlib.AbstractContextManager[object]:
    info = item.stash.get(CHECK_KEY, None)
    if info is None:
        return contextlib.nullcontext()
    bound = item.stash[BOUND_KEY]
    if seconds is None:
        seconds = item.stash[DEADLINE_KEY] - time.monotonic()
    return _Watchdog(seconds, info.id, bound)


def own_bound(item: pytest.Item, info: CheckInfo) -> float | None:
    """The check's own bound: its marker's timeout, and at least the bound of every experiment it
    collects (it may wait for the experiment that long)."""
    from pytest_workshop.plugin.concurrency.background import declared_for

    module = getattr(getattr(item, "module", None), "__name__", "")
    bounds = [s.bound for s in declared_for(module, set(getattr(item, "fixturenames", ())))]
    return max([info.timeout or 0.0, *bounds]) or None


def grounded(info: CheckInfo, exc: BaseException, found: WorkshopError | None, lab: LabConfig) -> CheckFailed | None:
    """A check that failed with its own finding (an assertion, a CheckFailed) while what its suite
    stands on is at fault: the ground's finding first (plugin/grounds.py). A component that does
    not answer names itself; a bug in the suite stays one."""
    if not info.stands_on or isinstance(found, ComponentUnavailable | CheckTimeout):
        return None
    if found is not None:
        own = (found.message, found.hint or info.hint)
    elif isinstance(exc, AssertionError):
        text = str(exc).strip().splitlines()
        own = (text[0] if text else "the check's condition was false", info.hint)
    else:
        return None
    from pytest_workshop.plugin.grounds import ground_at_fault, said_first

    ground = ground_at_fault(lab, info.stands_on)
    if ground is None:
        return None
    message, hint = said_first(ground, *own)
    return CheckFailed(message, hint=hint)


class VerdictPlugin:
    """The policy for every check, against the lab that check checks (plugin/fleet.py)."""

    def __init__(self, fleet: bool = False) -> None:
        self.fleet = fleet

    def pytest_sessionstart(self) -> None:
        from pytest_workshop.plugin.grounds import forget

        forget()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            info = check_of(item)
            if info is not None:
                lab = lab_of(item)
                item.stash[CHECK_KEY] = info
                item.stash[BOUND_KEY] = lab.timeouts.for_check(info.id, own_bound(item, info))
                item.user_properties.extend(
                    [
                        ("check_id", info.id),
                        ("check_title", info.title),
                        ("lab", info.lab),
                        ("lab_title", info.lab_title),
                        ("component", info.component),
                        ("workshop_lab", lab.name),
                    ]
                )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        info = item.stash.get(CHECK_KEY, None)
        if info is not None:
            # One budget for set-up and call: connecting and deploying count against the check.
            item.stash[DEADLINE_KEY] = time.monotonic() + item.stash[BOUND_KEY]
        with _watchdog(item):
            try:
                return (yield)
            except Exception as e:
                caught = e
        # (outside the bound: reading what the suite stands on has bounds of its own)
        failure = self.failure(info, caught, lab_of(item)) if info is not None else None
        if info is not None:
            failure = grounded(info, caught, failure, lab_of(item)) or failure
        if failure is None:
            raise caught
        # The lab failed a fixture (an engine that refuses, an etcd that wants a user):
        # that is this check's failure, reported from its call phase.
        item.stash[SETUP_FAILURE_KEY] = failure
        return None

    @pytest.hookimpl(tryfirst=True, specname="pytest_runtest_setup")
    def pytest_runtest_setup_verdict(self, item: pytest.Item) -> None:
        # A plain hook, not the wrapper above: a skip or failure raised here must still let the
        # other plugins' setup wrappers (logging, capture) run, or their teardown breaks.
        info = item.stash.get(CHECK_KEY, None)
        if info is not None:
            absent_verdict(info, lab_of(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        failure = item.stash.get(SETUP_FAILURE_KEY, None)
        if failure is not None:  # the fixtures did not all set up: the test function does not run
            if terse(item.config):
                raise failure.with_traceback(None) from None
            raise failure
        info = item.stash.get(CHECK_KEY, None)
        with _watchdog(item):
            try:
                return (yield)
            except Exception as e:
                caught = e
        found = self.failure(info, caught, lab_of(item)) if info is not None else None
        if info is not None:
            found = grounded(info, caught, found, lab_of(item)) or found
        if info is not None and terse(item.config) and (found is not None or isinstance(caught, AssertionError)):
            # the lab's failure, printed as one line: pytest need not format a traceback nobody
            # reads (about 0.1 s of CPU per failing check; --tb=long or -vv show it)
            raise (found or caught).with_traceback(None) from None
        if found is None or found is caught:
            raise caught
        raise found from caught

    def failure(self, info: CheckInfo, exc: BaseException, lab: LabConfig) -> WorkshopError | None:
        """The lab's failure this exception shows (a WorkshopError of its component), or None."""
        found = lab_failure(exc, info.component, lab)
        embedded = (lab.control or "").startswith("embedded:") and isinstance(found, ComponentUnavailable)
        if found is None or not embedded or HINT_EMBEDDED in found.hint or "the lab's control reports" in found.message:
            return found
        assert isinstance(found, ComponentUnavailable)
        down = members_down(lab, found.component)
        if down:
            # the cause the evidence shows: Neutron that does not answer because its MariaDB is
            # stopped must name MariaDB, not only Neutron
            report = ", ".join(f"{name} {state}" for name, state in down)
            found.message = f"{found.message} (the lab's control reports {report})"
            found.args = (found.message,)
            # a paused process is there and holds its state: it wants SIGCONT, not a start
            wanted = " and ".join(
                f"{'resume (SIGCONT)' if state == 'paused' else 'start'} {name}" for name, state in down
            )
            extra = f"the lab's control reports {report}: {wanted}"
        elif CONTROL_SAYS in found.message:
            return found  # the message says what the control reports already
        else:
            extra = HINT_EMBEDDED
        found.hint = f"{found.hint}; {extra}" if found.hint else extra
        return found

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        # Clean-up gets its own full bound: a hung engine must not hold the run forever at the end.
        with _watchdog(item, seconds=item.stash.get(BOUND_KEY, 0.0)):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        info = item.stash.get(CHECK_KEY, None)
        if info is None or call.excinfo is None or report.skipped:
            return report
        if report.when == "call" and report.failed:
            item.stash[CALL_FAILED_KEY] = True
        lab = lab_of(item)
        short = short_failure(info, call.excinfo.value, lab)
        if short is not None:
            message, hint = short
            report.user_properties.append(("failure", message))
            report.user_properties.append(("hint", hint))
            if report.when == "teardown":  # the item's own properties hold the call's failure too
                report.user_properties.append(("teardown_failure", message))
                if item.stash.get(CALL_FAILED_KEY, False):
                    # the check failed already: a clean-up the lab failed too is a note of that
                    # failure (the checklist's), not an ERROR beside it
                    report.outcome = "passed"
                    report.longrepr = None
                    return report
            if ("hint", hint) not in item.user_properties:
                # pytest's JUnit writes the properties of the teardown report, which it copies from
                # the item: the failure's message and hint must be there for JUnit readers too
                item.user_properties.extend([("failure", message), ("hint", hint)])
            if terse(item.config):
                report.longrepr = (
                    f"{display_id(info.id, lab.name, self.fleet)} {info.title}\n  {message}\n  hint: {hint}"
                )
        return report


def terse(config: pytest.Config) -> bool:
    """A failure is its one line (and hint) unless a traceback is asked for: --tb=long etc., or -vv."""
    return bool(config.option.tbstyle in ("auto", "no") and config.option.verbose < 2)


def short_failure(info: CheckInfo, exc: BaseException, lab: LabConfig | None = None) -> tuple[str, str] | None:
    """(one-line message, hint) for expected failures; None for a bug in a check (keep the traceback).
    The hint ends with the guide's step the check belongs to: where to (re)do it."""
    found = _short_failure(info, exc, lab)
    if found is None or not info.step:
        return found
    message, hint = found
    return message, f"{hint} (guide step {info.step}: suites/{info.lab}/README.md)"


def _short_failure(info: CheckInfo, exc: BaseException, lab: LabConfig | None) -> tuple[str, str] | None:
    found = lab_failure(exc, info.component, lab)
    if found is not None:
        return found.message, found.hint or info.hint
    if isinstance(exc, AssertionError):
        text = str(exc).strip().splitlines()
        return (text[0] if text else "the check's condition was false"), info.hint
    if isinstance(exc, pytest.fail.Exception):
        return str(exc).splitlines()[0], info.hint
    return None
