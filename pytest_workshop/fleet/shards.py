"""``--labs-shard K/N``: a deterministic share of a fleet, so N CI jobs split it without talking."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import ConfigError


def parse_shard(text: str) -> tuple[int, int]:
    """ "2/4" -> (2, 4); anything else is refused in one line."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(
            "--labs-shard", "", f"expected K/N with 1 <= K <= N, got {text!r}", "write e.g. --labs-shard 1/4"
        )
    return int(m.group(1)), int(m.group(2))


def shard(labs: Sequence[LabConfig], which: tuple[int, int]) -> list[LabConfig]:
    """Shard K of N: the labs sorted by name, every N-th from the K-th. The same inventory gives the
    same shards on every machine, and the N shards together are the fleet, each lab once."""
    k, n = which
    ordered = sorted(labs, key=lambda lab: lab.name)
    return [lab for i, lab in enumerate(ordered) if i % n == k - 1]
