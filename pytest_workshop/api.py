"""What a suite may import: everything else it uses is a fixture or a marker.

- ``wait_until(predicate, timeout, step=0.1)``: a bounded poll; the predicate's last value.
- ``experiment(bound=..., after=..., requires=..., early=...)``: declares a module's long
  experiment; the plugin starts it at the module's first check, the check that asserts on it
  takes the fixture of the same name and calls ``.result()``.
- ``WorkshopError``: the type every failure of the lab is raised as (``pytest.raises(WorkshopError)``).
- ``CheckFailed``: a failure whose hint depends on what the check found (the marker's hint is
  for the usual cause).
"""

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.errors import CheckFailed, WorkshopError
from pytest_workshop.plugin.concurrency import experiment

__all__ = ["CheckFailed", "WorkshopError", "experiment", "wait_until"]
