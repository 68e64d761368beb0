"""Background work: the experiments a suite module declares, and clean-ups nobody waits for.

Most of a long check's wall time is waiting on the lab (a rolling update's delays, a lease's
TTL, Neutron and OVN building a network), not CPU. A module declares such an experiment with
``@experiment``: a module-scoped fixture whose value is a running :class:`Task`. The plugin
starts every experiment a module's checks need at the module's first check (``start_declared``),
so its waits overlap the other checks; the check that asserts on it calls ``.result()``, which
raises whatever the experiment raised, so the verdict is the one the check would have reached
running the experiment itself.

Clean-ups that take seconds (kuryr removing a network, Swarm removing a stack) go to the
session's ``deferred_cleanup``: they run while the next module starts and are waited for at the
session's end, before the run's final sweep. ``release_after_last_user`` hands a module
fixture's release to the teardown of the module's last check that uses it.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError

T = TypeVar("T")

# How long the session's end waits for clean-ups still running in the background.
DEFERRED_CLEANUP_WAIT_S = 120.0
# check node id -> what to release once that check is done (``release_pending``)
RELEASE_AFTER = pytest.StashKey[dict[str, Callable[[], None]]]()


class Task(Generic[T]):
    """``fn`` running in a thread of its own, once every task in ``after`` has finished;
    ``result()`` collects it within ``bound`` seconds of its start."""

    def __init__(self, name: str, fn: Callable[[], T], bound: float, after: Sequence[Task[Any]] = ()) -> None:
        self.name, self.bound = name, bound
        self._fn, self._after = fn, tuple(after)
        self._value: T | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"workshop-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for earlier in self._after:
                earlier.wait()  # not side by side with it: it needs the lab to itself, or first
            self._value = self._fn()
        except BaseException as e:  # handed to the check that collects the result
            self._error = e

    def wait(self) -> None:
        """Until the task has finished (or its bound is up), whatever its outcome."""
        self._thread.join(max(0.0, self._started + self.bound - time.monotonic()))

    def result(self) -> T:
        """The task's value once it finished; what it raised, raised here."""
        self.wait()
        if self._thread.is_alive():
            raise WorkshopError(
                f"the {self.name} experiment did not finish within {self.bound:g} s of its start",
                hint="its own waits are bounded more tightly, so the lab stalled it: read the component's log",
            )
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised


@dataclass(frozen=True)
class ExperimentSpec:
    """What ``@experiment`` declares: a fixture ``fixture`` of module ``module`` running ``title``."""

    module: str
    fixture: str
    title: str
    bound: float
    after: tuple[str, ...]
    requires: tuple[str, ...]
    early: Callable[[LabConfig], bool] | None

    def starts_early_on(self, lab: LabConfig) -> bool:
        return all(lab.has(c) for c in self.requires) and (self.early is None or self.early(lab))


# (module, fixture name) -> spec, in declaration order
DECLARED: dict[tuple[str, str], ExperimentSpec] = {}


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def experiment(
    *,
    bound: float,
    after: str | Sequence[str] = (),
    requires: str | Sequence[str] = (),
    early: Callable[[LabConfig], bool] | None = None,
    title: str = "",
) -> Callable[[Callable[..., Any]], Any]:
    """Declare ``fn`` an experiment: a module-scoped fixture of the same name whose value is a
    :class:`Task` running ``fn`` (its arguments are fixtures, as a test's are).

    ``bound``: seconds from its start to its result. ``after``: experiments (fixture names) it
    must follow; it starts once they have finished, and gets their tasks if it names them as
    arguments. ``requires``: components the lab must have for it to start at the module's first
    check. ``early(lab)``: False where it must not run beside the module's other checks (lab5 in
    attendee mode: they share the attendee's one deployment); then it starts when a check first
    needs it, and that check waits for it. The experiment is waited for before the fixtures it
    uses are torn down: nothing is cleaned up while it still runs."""
    after_names, required = _names(after), _names(requires)

    def declare(fn: Callable[..., Any]) -> Any:
        params = list(inspect.signature(fn).parameters)
        spec = ExperimentSpec(
            fn.__module__, fn.__name__, title or fn.__name__.replace("_", " "), bound, after_names, required, early
        )
        DECLARED[(spec.module, spec.fixture)] = spec

        def run_in_background(**fixtures: Any) -> Iterator[Task[Any]]:
            task = Task(
                spec.title,
                lambda: fn(**{p: fixtures[p] for p in params}),
                bound,
                after=[fixtures[a] for a in after_names],
            )
            try:
                yield task
            finally:
                task.wait()

        wanted = params + [a for a in after_names if a not in params]
        run_in_background.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in wanted]
        )
        run_in_background.__name__, run_in_background.__doc__ = fn.__name__, fn.__doc__
        run_in_background.__module__ = fn.__module__
        return pytest.fixture(scope="module", name=fn.__name__)(run_in_background)

    return declare


def declared_for(module: str, fixturenames: set[str]) -> list[ExperimentSpec]:
    """The experiments among ``fixturenames``: the module's own first, then the library's."""
    own = [s for (m, _), s in DECLARED.items() if m == module and s.fixture in fixturenames]
    taken = {s.fixture for s in own}
    library = [
        s
        for (m, _), s in DECLARED.items()
        if not m.startswith("test_") and ".test_" not in m and s.fixture in fixturenames - taken
    ]
    return own + library


def start_declared(request: pytest.FixtureRequest, lab: LabConfig, kept_together: bool) -> None:
    """At a module's first check: set up every experiment its checks need that may start early.

    Only where this process runs all of the module's checks (``kept_together``): otherwise each
    starts when a check first needs it. A set-up that fails here is raised again, with its own
    error, in each check that needs the experiment, never in the one running now."""
    if not kept_together:
        return
    items = [i for i in request.session.items if getattr(i, "module", None) is request.module]
    needed = {name for item in items for name in getattr(item, "fixturenames", ())}
    for spec in declared_for(request.module.__name__, needed):
        if spec.starts_early_on(lab):
            try:
                request.getfixturevalue(spec.fixture)
            except Exception:
                pass  # pytest keeps the failure; the check that needs the experiment gets it


@pytest.fixture(scope="session")
def deferred_cleanup() -> Iterator[Callable[[Callable[[], Any]], None]]:
    """``deferred_cleanup(fn)``: run a clean-up in the background; the session's end waits for it
    (what is not removed by then is the final sweep's and the janitor's)."""
    from pytest_workshop.plugin.lifecycle import uninterrupted

    pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="workshop-cleanup")
    submitted: list[concurrent.futures.Future[Any]] = []

    def defer(fn: Callable[[], Any]) -> None:
        submitted.append(pool.submit(fn))

    yield defer
    with uninterrupted():
        concurrent.futures.wait(submitted, timeout=DEFERRED_CLEANUP_WAIT_S)
        pool.shutdown(wait=False)


def release_after_last_user(
    request: pytest.FixtureRequest, release: Callable[[], None], kept_together: bool
) -> Callable[[], None]:
    """Have ``release`` run once, after the last check of the module that uses this fixture (not
    at the module's end, when its last checks only collect experiments). Returns the once-only
    release for the fixture's own teardown. Only where this process runs the whole module in
    order (``kept_together``): under --dist load a later check could still come to this worker."""
    lock, done = threading.Lock(), list[bool]()

    def once() -> None:
        with lock:
            if done:
                return
            done.append(True)
        release()

    config, name = request.config, request.fixturename
    if kept_together and name:
        users = [
            i
            for i in request.session.items
            if getattr(i, "module", None) is request.module and name in getattr(i, "fixturenames", ())
        ]
        if users:
            config.stash.setdefault(RELEASE_AFTER, {})[users[-1].nodeid] = once
    return once


def release_pending(item: pytest.Item) -> None:
    """After ``item``'s teardown: what ``release_after_last_user`` handed to it."""
    release = item.config.stash.get(RELEASE_AFTER, {}).pop(item.nodeid, None)
    if release is not None:
        release()


def collects_early_experiment(item: pytest.Item, lab: LabConfig) -> bool:
    """Does ``item`` take, as an argument of its own, an experiment that starts early on ``lab``?"""
    function = getattr(item, "function", None)
    module = getattr(getattr(item, "module", None), "__name__", "")
    if function is None:
        return False
    arguments = set(inspect.signature(function).parameters)
    return any(spec.starts_early_on(lab) for spec in declared_for(module, arguments))


def collectors_last(items: list[pytest.Item], lab_of: Callable[[pytest.Item], LabConfig]) -> None:
    """Within each module, the checks that collect an early experiment run after its other
    checks, each group in the file's (ID) order: their experiment then runs while the others do,
    and by the time they ask for its result it is mostly or entirely there."""
    # per module of one lab: a fleet's module-scoped set-ups are each lab's, and pytest groups a
    # module's items by lab so that each is set up once
    modules: dict[tuple[Any, str], list[pytest.Item]] = {}
    for item in items:
        modules.setdefault((getattr(item, "module", None), lab_of(item).name), []).append(item)
    ordered: list[pytest.Item] = []
    for module_items in modules.values():
        collecting = [collects_early_experiment(i, lab_of(i)) for i in module_items]
        ordered += [i for i, c in zip(module_items, collecting, strict=True) if not c]
        ordered += [i for i, c in zip(module_items, collecting, strict=True) if c]
    items[:] = ordered
