"""The detection matrix: for every scenario, inject it; its ``detected_by`` checks must fail (with
hints); restore it; they must pass again. Used by the project's tests (proof that no breakage goes
unnoticed) and by bench/ (its total time). The checks run as an attendee would run them: pytest in
a separate process, selected with ``--check-ids``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config.model import LabConfig

SUITES = ("suites/lab1", "suites/lab2", "suites/lab3", "suites/lab4", "suites/lab5", "suites/lab6")
RECOVERY = 90.0  # s: a restored Swarm manager needs ~15 s to be Ready and agree on a leader again


@dataclass
class Row:
    scenario: str
    component: str
    detected_by: list[str]
    still_passing: list[str] = field(default_factory=list)
    hinted: bool = True
    detect_s: float = 0.0
    restore_s: float = 0.0
    healthy_again_s: float = 0.0
    healthy_again: bool = True

    @property
    def detected(self) -> bool:
        return bool(self.detected_by) and not self.still_passing

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detected": self.detected}


def verdicts(junit: Path) -> dict[str, str]:
    """Check ID -> PASS / FAIL / ERROR / SKIP, from a suite run's JUnit XML (the check_id property).

    ERROR is a check that did not fail but errored (pytest's error: only a suite bug, or a clean-up
    that failed after the check passed); a failure of the lab is always FAIL."""
    out: dict[str, str] = {}
    # A clean-up error after a failed check is a second <testcase> of the same check: the worst wins.
    rank = {"PASS": 0, "SKIP": 1, "ERROR": 2, "FAIL": 3}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        check_id = props.get("check_id")
        if check_id:
            tags = {child.tag for child in case}
            if "failure" in tags:
                verdict = "FAIL"
            elif "error" in tags:
                verdict = "ERROR"
            else:
                verdict = "SKIP" if "skipped" in tags else "PASS"
            if rank[verdict] >= rank[out.get(check_id, "PASS")]:
                out[check_id] = verdict
    return out


def hints(junit: Path) -> dict[str, str]:
    """Check ID -> the hint its failure carried (JUnit property ``hint``; absent: no hint)."""
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if props.get("check_id") and props.get("hint"):
            out[str(props["check_id"])] = str(props["hint"])
    return out


def run_checks(config: Path, repo: Path, ids: list[str], junit: Path) -> tuple[dict[str, str], str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--lab-config",
        str(config),
        "-p",
        "no:cacheprovider",
        "--no-allure",
        *SUITES,
        "--check-ids",
        ",".join(ids),
        f"--junitxml={junit}",
    ]
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    return verdicts(junit), result.stdout


def run(
    lab: LabConfig, config: Path, repo: Path, workdir: Path, heal: Callable[[], None] | None = None
) -> tuple[list[Row], list[str]]:
    """Every applicable scenario once. Returns the rows and the problems (empty when all is proven)."""
    from pytest_workshop.faults import Breaker, scenarios

    breaker = Breaker(lab, allowed=True)
    rows: list[Row] = []
    problems: list[str] = []
    for scenario in scenarios.applicable(lab):
        row = Row(scenario.name, scenario.component, list(scenario.detected_by))
        rows.append(row)
        if not scenario.detected_by:
            problems.append(f"{scenario.name}: no detected_by checks (a breakage nothing notices)")
            continue
        entry = breaker.inject(scenario.name)
        try:
            t0 = time.monotonic()
            seen, out = run_checks(config, repo, row.detected_by, workdir / f"{scenario.name}.xml")
            row.detect_s = round(time.monotonic() - t0, 2)
            row.still_passing = sorted(c for c in row.detected_by if seen.get(c) != "FAIL")
            # every detecting check's own failure must carry a hint: one hinted failure must not
            # hide a hintless one
            hinted = hints(workdir / f"{scenario.name}.xml")
            hintless = sorted(c for c in row.detected_by if seen.get(c) == "FAIL" and not hinted.get(c))
            row.hinted = not hintless
            if row.still_passing:
                problems.append(
                    f"{scenario.name}: {', '.join(row.still_passing)} did not fail while injected\n{out[-2500:]}"
                )
            if hintless:
                problems.append(f"{scenario.name}: {', '.join(hintless)} failed without a hint\n{out[-2500:]}")
        finally:
            t0 = time.monotonic()
            breaker.restore(entry)
            row.restore_s = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        seen, out = {}, ""

        def passing_again(name: str = scenario.name, ids: list[str] = row.detected_by) -> bool:
            nonlocal seen, out
            seen, out = run_checks(config, repo, ids, workdir / f"{name}-after.xml")
            return len(seen) == len(ids) and set(seen.values()) == {"PASS"}

        if not wait_until(passing_again, RECOVERY, step=2):
            row.healthy_again = False
            problems.append(f"{scenario.name}: still failing {RECOVERY:g} s after restore: {seen}\n{out[-2500:]}")
        row.healthy_again_s = round(time.monotonic() - t0, 2)
        if heal is not None:
            heal()
    if breaker.injected():
        problems.append(f"the journal still lists injected faults: {[e.scenario for e in breaker.injected()]}")
    return rows, problems


def table(rows: list[Row]) -> str:
    lines = [f"{'scenario':<32}{'detected':<10}{'detect s':<10}{'restore s':<11}healthy again s"]
    for r in rows:
        lines.append(
            f"{r.scenario:<32}{'yes' if r.detected else 'NO':<10}{r.detect_s:<10}{r.restore_s:<11}"
            f"{r.healthy_again_s if r.healthy_again else 'NO'}"
        )
    return "\n".join(lines)
