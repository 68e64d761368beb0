"""pytest-workshop: conformance checks for the microservices workshop lab.

The library (config, components, lab) works from plain Python; the pytest plugin in
``pytest_workshop.plugin`` and the ``workshop`` command are thin layers over it.
"""

__version__ = "0.1.0"
