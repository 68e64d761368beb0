"""An install without a checkout: the wheel, built from this tree, in a fresh virtualenv, runs
the attendee's command (`workshop check lab3`) against the test lab from a folder that is not a
checkout, with the suites, guides and fixtures it carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_in_a_fresh_venv_runs_lab3_against_a_lab(test_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", REPO, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("pytest_workshop-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    installed = run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = run(
        venv / "bin" / "python", "-c", "from pytest_workshop.guide import suites_dir; print(suites_dir())", cwd=tmp_path
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    checked = run(venv / "bin" / "workshop", "check", "lab3", "--lab-config", test_lab.config, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "14 passed" in checked.stdout and "PASS  LAB3-14" in checked.stdout, checked.stdout[-3000:]
