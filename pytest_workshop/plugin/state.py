"""Stash keys shared by the plugin's modules, and which process of a run this is."""

from __future__ import annotations

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.run import Run

LAB_KEY = pytest.StashKey[LabConfig]()
RUN_KEY = pytest.StashKey[Run]()


def is_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker: one of several processes of a run. Only the controller (or a lone
    process) does what is done once per run: cleaning the results folder, the final sweep, the
    checklist, summary.json."""
    return getattr(config, "workerinput", None) is not None
