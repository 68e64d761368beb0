"""pytest-workshop: conformance checks for the microservices workshop lab.

The library (config, components, lab) works from plain Python; the pytest plugin in
``pytest_workshop.plugin`` and the ``workshop`` command are thin layers over it.
"""

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.errors import CheckFailed, WorkshopError

__version__ = "0.1.0"
# For plain Python: a bounded poll and the error types. Suites import from pytest_workshop.api.
__all__ = ["CheckFailed", "WorkshopError", "wait_until"]
