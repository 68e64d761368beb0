"""The private names of other libraries that pytest-workshop reaches for, still where it reaches.

pyproject.toml pins each library to the versions these tests pass with. When an upgrade moves a
name, the test fails saying which library, which version and what is gone: the code that uses it
(named in each case) must be ported before the pin is raised.
"""

from __future__ import annotations

from importlib.metadata import version
from types import SimpleNamespace

import pytest


def gone(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def test_xdist_scheduler_internals() -> None:
    """plugin/concurrency/scheduling.py extends LoadScopeScheduling (and falls back to it)."""
    from xdist.scheduler import LoadScopeScheduling

    from pytest_workshop.plugin.concurrency.scheduling import XDIST_PRIVATE, xdist_private_missing

    config = SimpleNamespace(getvalue=lambda name: ["2*popen"] if name == "tx" else None)
    scheduling = LoadScopeScheduling(config)
    missing = xdist_private_missing(scheduling)
    assert not missing, (
        f"pytest-xdist {version('pytest-xdist')}: LoadScopeScheduling has no {', '.join(missing)} "
        f"(plugin/concurrency/scheduling.py uses {', '.join(XDIST_PRIVATE)}): port ModuleScheduling, then raise the pin"
    )


def test_allure_file_logger_internals(tmp_path) -> None:
    """report/allure_results.py overrides AllureFileLogger._report_item and writes to _report_dir."""
    from allure_commons.logger import AllureFileLogger

    logger = AllureFileLogger(str(tmp_path))
    missing = gone(logger, ("_report_item", "_report_dir", "report_attached_data", "report_attached_file"))
    assert not missing, (
        f"allure-pytest {version('allure-pytest')}: AllureFileLogger has no {', '.join(missing)} "
        "(report/allure_results.py's RedactingFileLogger): port it, then raise the pin"
    )


def test_docker_api_version_attribute() -> None:
    """components/docker.py sets APIClient._version once a TLS client asked the engine for it."""
    import docker

    client = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    missing = gone(client, ("_version",))
    assert not missing and client._version == "1.41", (
        f"docker {version('docker')}: APIClient keeps its API version elsewhere than _version "
        "(components/docker.py, _client): port it, then raise the pin"
    )


@pytest.mark.parametrize("distribution", ["pytest-xdist", "allure-pytest", "docker"])
def test_each_library_reached_into_is_pinned_below_its_next_minor(distribution: str) -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["dependencies"] if d.split("[")[0].split(">")[0] == distribution)
    assert "<" in spec, f"{spec}: pin an upper bound (the versions tests/unit/test_thirdparty.py passed with)"
