"""Fleets: one run that checks many labs (an instructor's attendee machines).

``read_fleet(path)`` gives one LabConfig per lab, each validated like a lab.toml; any problem in
any lab is refused before anything runs (ConfigError naming the file, the lab and the key).
``shard(labs, "K/N")`` gives a deterministic share of them. Usable without pytest::

    from pytest_workshop.fleet import read_fleet
    for lab in read_fleet(Path("inventory.yml")):
        print(lab.name, lab.describe())

The plugin parametrizes every check per lab (plugin/fleet.py); this package only reads.
"""

from __future__ import annotations

from pytest_workshop.fleet.inventory import ENV_LABS, read_fleet
from pytest_workshop.fleet.shards import parse_shard, shard

__all__ = ["ENV_LABS", "parse_shard", "read_fleet", "shard"]
