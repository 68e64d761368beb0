"""Repository root: keep `pytest` from wandering into assets and output folders.

The plugin itself is loaded through its pytest11 entry point (installed by `pip install -e .`),
so suites behave the same here as on an attendee's machine.
"""

collect_ignore = ["fixtures", "reports", "bench", "build"]
