"""One run over many labs (``--labs PATH``): every check runs once per lab.

The ``lab`` fixture is parametrized per lab at session scope, so everything built on it (clients,
factories, module set-ups such as lab5's app) is built per lab, and the check's id names the lab:
``suites/lab3/test_etcd.py::test_put_get[attendee-07]``, shown as ``LAB3-01[attendee-07]``. The
verdict policy, evidence and clean-up ask ``lab_of(item)``; the scheduling keeps a module's checks
of one lab on one worker and runs at most ``[lab] parallel`` modules per lab at once
(plugin/concurrency/scheduling.py). Without ``--labs`` there is one lab and nothing here changes a thing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.plugin.state import LAB_KEY

LABS_KEY = pytest.StashKey[list[LabConfig]]()


def add_options(group: Any) -> None:
    group.addoption(
        "--labs",
        metavar="PATH",
        default=None,
        help="check many labs in one run: a folder of lab.toml files, a fleet file or an Ansible inventory (default: $WORKSHOP_LABS)",
    )
    group.addoption(
        "--lab",
        metavar="NAME",
        default=None,
        help="with --labs: check only this lab of the fleet (an attendee's, by its name)",
    )
    group.addoption(
        "--labs-shard",
        metavar="K/N",
        default=None,
        help="check only shard K of N of the --labs fleet (deterministic: N jobs split it without talking)",
    )


def fleet_path(config: pytest.Config) -> Path | None:
    from pytest_workshop.fleet import ENV_LABS

    given = config.option.labs or os.environ.get(ENV_LABS)
    if not given:
        return None
    path = Path(given)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def read(config: pytest.Config) -> list[LabConfig] | None:
    """The fleet this run checks (shard applied), or None for a one-lab run. Raises ConfigError."""
    from pytest_workshop.errors import ConfigError
    from pytest_workshop.fleet import parse_shard, read_fleet, shard

    path = fleet_path(config)
    if path is None:
        if config.option.lab:
            raise ConfigError(
                "--lab", "", "names a lab of a fleet, but no fleet is given", "add --labs PATH (or set $WORKSHOP_LABS)"
            )
        if config.option.labs_shard:
            raise ConfigError("--labs-shard", "", "needs a fleet", "give --labs PATH (or $WORKSHOP_LABS) too")
        return None
    if config.option.lab_config:
        raise ConfigError(
            "--lab-config", "", "given together with --labs", "use one: --labs for a fleet, --lab-config for one lab"
        )
    labs = read_fleet(path)
    if config.option.lab:
        named = [lab for lab in labs if lab.name == config.option.lab]
        if not named:
            raise ConfigError(
                str(path),
                "--lab",
                f"no lab {config.option.lab!r} in this fleet",
                f"use one of {', '.join(sorted(lab.name for lab in labs))}",
            )
        labs = named
    if config.option.labs_shard:
        labs = shard(labs, parse_shard(config.option.labs_shard))
    return labs


def quiet_terminal(config: pytest.Config) -> None:
    """A fleet run's terminal is the checklist by cause and the fleet table: pytest's own section
    per failure and line per failed check (thousands over two hundred labs) are left out, unless
    asked for (--tb=..., -r..., -vv). Before the terminal reporter reads them (tryfirst configure)."""
    if config.option.verbose >= 2:
        return
    if config.option.tbstyle == "auto":
        config.option.tbstyle = "no"
    if config.option.reportchars == "fE":  # pytest's default
        config.option.reportchars = ""


def labs_of(config: pytest.Config) -> list[LabConfig]:
    """Every lab of this run: the fleet's, or the one lab."""
    labs = config.stash.get(LABS_KEY, None)
    return labs if labs is not None else [config.stash[LAB_KEY]]


def is_fleet(config: pytest.Config) -> bool:
    return LABS_KEY in config.stash


def lab_of(item: pytest.Item) -> LabConfig:
    """The lab this item checks: its ``lab`` parameter in a fleet run, else the one lab."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("lab"), LabConfig):
        return callspec.params["lab"]  # type: ignore[no-any-return]
    return item.config.stash[LAB_KEY]


def display_id(check_id: str, lab_name: str, fleet: bool) -> str:
    """``LAB3-01``, or ``LAB3-01[attendee-07]`` in a fleet run."""
    return f"{check_id}[{lab_name}]" if fleet and lab_name else check_id


class FleetPlugin:
    """Parametrizes the checks per lab (registered only for fleet runs)."""

    def __init__(self, labs: list[LabConfig]) -> None:
        self.labs = labs

    @pytest.hookimpl(tryfirst=True)  # first: the lab's name leads the id ("[attendee-07-2]")
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if metafunc.definition.get_closest_marker("check") is None or not self.labs:
            return
        if "lab" not in metafunc.fixturenames:
            metafunc.fixturenames.append("lab")
        metafunc.parametrize("lab", self.labs, ids=[lab.name for lab in self.labs], indirect=True, scope="session")

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if self.labs:
            return
        # a shard that holds no lab checks nothing (its header says so); it is not a failure
        config.hook.pytest_deselected(items=list(items))
        items.clear()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.labs and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK


def lab_name_in_nodeid(nodeid: str, names: list[str]) -> str | None:
    """Which lab a nodeid checks, from its parameter id (the lab's name comes first): for the
    xdist controller, which sees nodeids only. The longest name that fits wins (attendee-1 and
    attendee-10)."""
    name = nodeid.rsplit("::", 1)[-1]
    if not name.endswith("]") or "[" not in name:
        return None
    params = name[name.index("[") + 1 : -1]
    fitting = [n for n in names if params == n or params.startswith(f"{n}-")]
    return max(fitting, key=len) if fitting else None
