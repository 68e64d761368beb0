"""Which worker runs what under pytest-xdist: a suite module's checks stay on one worker.

A module's checks share module-scoped state (lab5's deployed app, lab2's probe service, lab4's
kuryr networks), and its experiments change that state in order (scale up, then down). xdist's
default ``--dist load`` spreads them over the workers: each would build the module's set-up again
and one worker's experiments would disturb another's observations. ``loadscope`` keeps a
module's checks together and still runs modules in parallel. An explicit ``--dist`` (command
line, PYTEST_ADDOPTS or addopts) is left alone.

How many modules run at once is the lab's to say: ``[lab] parallel`` (default 4). Past that, more
workers only make every engine slower until a healthy lab misses its bounds, so workers beyond
the sum over the run's labs are shut down at the start and the verdicts do not depend on -n. In a
fleet run (--labs) a unit of work is a module *of one lab* (``suites/lab3/test_etcd.py@attendee-07``),
at most ``[lab] parallel`` of one lab at a time, so a slow or dead lab holds only its own workers.

The scheduler extends xdist's ``LoadScopeScheduling`` through the private names in
``XDIST_PRIVATE``; pyproject.toml pins the pytest-xdist versions they are tested with
(tests/unit/test_thirdparty.py). Where they are gone, xdist's own ``loadscope`` runs instead,
with a warning: modules still stay together, only the lab's cap and the start order are lost.
"""

from __future__ import annotations

import os
import shlex
import warnings
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from pytest_workshop.plugin.fleet import lab_name_in_nodeid

# What ModuleScheduling uses of LoadScopeScheduling beyond its public hooks.
XDIST_PRIVATE = ("_split_scope", "_assign_work_unit", "_reschedule", "_pending_of", "workqueue", "assigned_work")
# Dist modes that run all of a module's checks in one process ("each" runs all of them everywhere).
KEEP_MODULES_TOGETHER = ("loadscope", "loadfile", "each")
WORKERINPUT_KEY = "workshop_modules_together"


def dist_given(config: pytest.Config) -> bool:
    """Did the user choose a --dist mode themselves?"""
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    args += list(config.getini("addopts"))
    return any(a == "--dist" or a.startswith("--dist=") or a == "-d" for a in args)


def modules_kept_together(config: pytest.Config) -> bool:
    """Does this process run every check of each module it starts? Then a module's experiments
    may start at its first check (background.py). The controller decides (it knows the dist
    mode) and tells the workers."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return True  # one process runs everything
    return bool(workerinput.get(WORKERINPUT_KEY, False))


def controller_keeps_modules_together(config: pytest.Config) -> bool:
    return not dist_given(config) or config.getoption("dist", "no") in KEEP_MODULES_TOGETHER


def xdist_private_missing(scheduling: Any) -> list[str]:
    """The names of XDIST_PRIVATE that xdist's LoadScopeScheduling lacks: methods of the class
    (ModuleScheduling overrides some, so its own would hide their absence), attributes that its
    ``__init__`` set on ``scheduling``."""
    return [name for name in XDIST_PRIVATE if not (hasattr(LoadScopeScheduling, name) or name in vars(scheduling))]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if dist_given(config):
        return None  # xdist's own choice, as asked
    from importlib.metadata import version

    from pytest_workshop.plugin.fleet import is_fleet, labs_of

    labs = {lab.name: lab.parallel for lab in labs_of(config)}
    scheduling = ModuleScheduling(config, log, labs, is_fleet(config))
    missing = xdist_private_missing(scheduling)
    if missing:
        warnings.warn(
            f"pytest-xdist {version('pytest-xdist')} has no {', '.join(missing)}: running xdist's own loadscope "
            "([lab] parallel is not applied); install a pytest-xdist version pyproject.toml allows",
            stacklevel=1,
        )
        return LoadScopeScheduling(config, log)
    return scheduling


class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """``loadscope``, except that each worker starts with one module, not two.

    xdist hands every worker a second module at the start, queued behind the first: with six
    suites at -n 4, lab6 waited behind lab5 (the longest) while two workers idled. With one
    module each, a worker gets its next module only as its current one runs out (two checks
    left), so the short suites share the idle workers and the longest one runs alone."""

    def __init__(self, config: pytest.Config, log: Any, labs: dict[str, int], fleet: bool) -> None:
        super().__init__(config, log)
        self.labs, self.fleet, self.starting = labs, fleet, False

    def _split_scope(self, nodeid: str) -> str:
        # In a fleet run, a module's checks of one lab are one unit: each lab its own set-ups.
        scope = str(super()._split_scope(nodeid))
        name = lab_name_in_nodeid(nodeid, list(self.labs)) if self.fleet else None
        return f"{scope}@{name}" if name else scope

    def _lab_of_scope(self, scope: str) -> str:
        return scope.rsplit("@", 1)[1] if self.fleet and "@" in scope else next(iter(self.labs))

    def _busy_elsewhere(self, lab: str, node: Any) -> int:
        """Other workers with checks of ``lab`` still to run: the node itself runs its units one
        after another, so giving it the next one of the same lab adds nothing at once."""
        return sum(
            1
            for other, work in self.assigned_work.items()
            if other is not node
            and any(self._lab_of_scope(scope) == lab and not all(done.values()) for scope, done in work.items())
        )

    def _assign_work_unit(self, node: Any) -> None:
        # The first queued unit whose lab has room ([lab] parallel); none: the worker waits for
        # the next check to finish anywhere (mark_test_complete).
        for scope in self.workqueue:
            lab = self._lab_of_scope(scope)
            if self._busy_elsewhere(lab, node) < self.labs.get(lab, 1):
                self.workqueue.move_to_end(scope, last=False)
                super()._assign_work_unit(node)
                return

    def mark_test_complete(self, node: Any, item_index: int | str, duration: float = 0) -> None:
        super().mark_test_complete(node, item_index, duration)
        for other in self.nodes:  # a lab may have room now for a worker that was waiting
            if other is not node and self.workqueue and self._pending_of(self.assigned_work[other]) < 2:
                self._reschedule(other)

    def schedule(self) -> None:
        if self.collection is None and self.collection_is_completed:
            self._keep_at_most(sum(self.labs.values()))
        self.starting = True
        try:
            super().schedule()
        finally:
            self.starting = False

    def _keep_at_most(self, workers: int) -> None:
        """Shut down the workers past the lab's capacity before any gets work (as xdist does
        with workers past the number of modules)."""
        for node in self.nodes[workers:]:
            self.assigned_work.pop(node)
            self.log(f"Shutting down {node}: [lab] parallel = {workers}")
            node.shutdown()

    def _reschedule(self, node: Any) -> None:
        # A worker holds back its last check until it knows the next one (or is shut down), so
        # a worker whose first module has a single check still gets a second at once.
        if self.starting and self.workqueue and self._pending_of(self.assigned_work[node]) >= 2:
            return
        super()._reschedule(node)
