"""Stash keys shared by the plugin's modules."""

from __future__ import annotations

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.run import Run

LAB_KEY = pytest.StashKey[LabConfig]()
RUN_KEY = pytest.StashKey[Run]()
