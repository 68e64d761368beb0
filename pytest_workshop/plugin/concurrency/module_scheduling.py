"""ModuleScheduling: xdist's ``loadscope`` with one module per worker at the start and at most
``[lab] parallel`` modules of one lab at once (scheduling.py says why and when it is used)."""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from pytest_workshop.plugin.fleet import lab_name_in_nodeid


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
