"""pytest-workshop: conformance checks for the microservices workshop lab.

The library (config, components, lab) works from plain Python; the pytest plugin in
``pytest_workshop.plugin`` and the ``workshop`` command are thin layers over it.
"""

from pytest_workshop.components.waiting import in_background, wait_until
from pytest_workshop.errors import CheckFailed, WorkshopError

__version__ = "0.1.0"
# What a check may use besides fixtures and markers: a bounded poll, a long experiment run in the
# background, the one error type every failure of the lab is raised as
# (``pytest.raises(WorkshopError)``), and CheckFailed for a failure whose hint depends on what the
# check found (the marker's hint is for the usual cause). None imports anything heavy.
__all__ = ["CheckFailed", "WorkshopError", "in_background", "wait_until"]
