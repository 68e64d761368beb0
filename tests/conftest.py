"""Fixtures for the project's own tests.

``test_lab`` brings up a separate embedded lab (its own state dir, ports, bridge and ranges),
so the tests never disturb a lab someone is using, and takes it down at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_workshop.components.waiting import wait_for

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
TEST_LAB_DIR = Path(os.environ.get("WORKSHOP_TEST_LAB_DIR", "/var/tmp/workshop-lab-tests"))


@pytest.hookimpl(tryfirst=True)  # before pytest-workshop's own configure, which reads it
def pytest_configure(config: pytest.Config) -> None:
    # The project's own tests are not workshop checks: no Allure results for them (this also keeps
    # allure-pytest's process-wide listener out of the pytester runs that write their own).
    config.option.no_allure = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.integration)


class TestLab:
    def __init__(self, config: Path) -> None:
        from pytest_workshop.lab import EmbeddedLab

        self.config = config
        self.lab = EmbeddedLab(TEST_LAB_DIR)

    def etcd_members(self):
        return self.lab.members("etcd")

    def docker_engine(self, node: str = "node1"):
        return self.lab.member("docker", node)

    def heal(self, timeout: float = 90) -> None:
        """Bring every node, engine and member back and wait until the lab is whole again."""
        for kind in ("node", "docker", "etcd", "openstack"):
            for m in self.lab.members(kind):
                m.resume()
                m.heal()
                m.start()
        status: dict = {}

        def whole() -> bool:
            nonlocal status
            status = self.lab.status()
            return (
                all(n["docker"] == "healthy" and n["state"] == "ready" for n in status["nodes"])
                and all(m["health"] == "healthy" for m in status["etcd"])
                and all(s["state"] in ("healthy", "running") for s in status["openstack"]["services"])
            )

        wait_for("test lab did not heal", whole, timeout, step=0.2, observe=lambda: str(status))

    def pytest(self, *args: str, timeout: float = 180, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run pytest on the suites against this lab (or another ``config`` of it), as an attendee
        would (a separate process)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--lab-config",
                str(config or self.config),
                "-p",
                "no:cacheprovider",
                *args,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def test_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLab]:
    from pytest_workshop.lab import EmbeddedLab, LabSettings

    if os.geteuid() != 0:
        pytest.fail("integration tests need root: they start a real Docker engine and etcd cluster")
    config = tmp_path_factory.mktemp("lab") / "lab.toml"
    lab = EmbeddedLab(TEST_LAB_DIR)
    settings = LabSettings(
        name="selftest",
        nodes=3,
        managers=3,
        etcd_port_base=24790,
        prefix="wst",
        segment="10.251.1.0/24",
        openstack=True,
        keystone_port=25000,
        neutron_port=25696,
    )
    lab.down()  # a previous crashed test run
    lab.up(settings, config)
    try:
        yield TestLab(config)
    finally:
        lab.down()


@pytest.fixture
def healthy_lab(test_lab: TestLab) -> Iterator[TestLab]:
    """The test lab, whole before the test and healed after it (tests break it on purpose)."""
    test_lab.heal()
    yield test_lab
    test_lab.heal()
