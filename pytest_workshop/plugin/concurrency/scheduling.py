"""Which worker runs what under pytest-xdist: a suite module's checks stay on one worker.

A module's checks share module-scoped state (lab5's deployed app, lab2's probe service, lab4's
kuryr networks), and its experiments change that state in order (scale up, then down). xdist's
default ``--dist load`` spreads them over the workers: each would build the module's set-up again
and one worker's experiments would disturb another's observations. ``loadscope`` keeps a
module's checks together and still runs modules in parallel. An explicit ``--dist`` (command
line, PYTEST_ADDOPTS or addopts) is left alone.

How many modules run at once is the lab's to say: ``[lab] parallel`` (default 4). Past that, more
workers only make every engine slower until a healthy lab misses its bounds, so workers beyond
the sum over the run's labs are shut down at the start and the verdicts do not depend on -n. In a
fleet run (--labs) a unit of work is a module *of one lab* (``suites/lab3/test_etcd.py@attendee-07``),
at most ``[lab] parallel`` of one lab at a time, so a slow or dead lab holds only its own workers.

The scheduler (module_scheduling.py, imported only under xdist: it costs every run without -n
the import of xdist's scheduler) extends xdist's ``LoadScopeScheduling`` through the private names in
``XDIST_PRIVATE``; pyproject.toml pins the pytest-xdist versions they are tested with
(tests/unit/test_thirdparty.py). Where they are gone, xdist's own ``loadscope`` runs instead,
with a warning: modules still stay together, only the lab's cap and the start order are lost.
"""

from __future__ import annotations

import os
import shlex
import warnings
from typing import Any

import pytest

# What ModuleScheduling uses of LoadScopeScheduling beyond its public hooks.
XDIST_PRIVATE = ("_split_scope", "_assign_work_unit", "_reschedule", "_pending_of", "workqueue", "assigned_work")
# Dist modes that run all of a module's checks in one process ("each" runs all of them everywhere).
KEEP_MODULES_TOGETHER = ("loadscope", "loadfile", "each")
WORKERINPUT_KEY = "workshop_modules_together"


def dist_given(config: pytest.Config) -> bool:
    """Did the user choose a --dist mode themselves?"""
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    args += list(config.getini("addopts"))
    return any(a == "--dist" or a.startswith("--dist=") or a == "-d" for a in args)


def modules_kept_together(config: pytest.Config) -> bool:
    """Does this process run every check of each module it starts? Then a module's experiments
    may start at its first check (background.py). The controller decides (it knows the dist
    mode) and tells the workers."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return True  # one process runs everything
    return bool(workerinput.get(WORKERINPUT_KEY, False))


def controller_keeps_modules_together(config: pytest.Config) -> bool:
    return not dist_given(config) or config.getoption("dist", "no") in KEEP_MODULES_TOGETHER


def xdist_private_missing(scheduling: Any) -> list[str]:
    """The names of XDIST_PRIVATE that xdist's LoadScopeScheduling lacks: methods of the class
    (ModuleScheduling overrides some, so its own would hide their absence), attributes that its
    ``__init__`` set on ``scheduling``."""
    from xdist.scheduler import LoadScopeScheduling

    return [name for name in XDIST_PRIVATE if not (hasattr(LoadScopeScheduling, name) or name in vars(scheduling))]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if dist_given(config):
        return None  # xdist's own choice, as asked
    from importlib.metadata import version

    from xdist.scheduler import LoadScopeScheduling

    from pytest_workshop.plugin.concurrency.module_scheduling import ModuleScheduling
    from pytest_workshop.plugin.fleet import is_fleet, labs_of

    labs = {lab.name: lab.parallel for lab in labs_of(config)}
    scheduling = ModuleScheduling(config, log, labs, is_fleet(config))
    missing = xdist_private_missing(scheduling)
    if missing:
        warnings.warn(
            f"pytest-xdist {version('pytest-xdist')} has no {', '.join(missing)}: running xdist's own loadscope "
            "([lab] parallel is not applied); install a pytest-xdist version pyproject.toml allows",
            stacklevel=1,
        )
        return LoadScopeScheduling(config, log)
    return scheduling
