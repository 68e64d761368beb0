"""reports/summary.json: lab x check ID -> outcome, duration, and for failures the message and hint.

For instructors and CI: readable without Allure or HTML. A run describes one lab or a fleet (every
lab under ``labs``, by name); shards' summaries merge by that key (``workshop report --merge``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_workshop.report.redact import Redactor

BAD = ("FAIL", "ERROR")


def by_lab(entries: Iterable[Any], default_lab: str = "") -> dict[str, dict[str, dict[str, Any]]]:
    """Lab name -> check ID -> outcome, suite, title, duration (and message, hint where they matter):
    what summary.json, the fleet table and fleet.html show."""
    labs: dict[str, dict[str, dict[str, Any]]] = {}
    for e in sorted(entries, key=lambda e: e.check_id):
        item: dict[str, Any] = {
            "suite": e.lab,
            "title": e.title,
            "outcome": e.outcome,
            "duration": round(e.duration, 3),
        }
        if e.outcome in (*BAD, "SKIP"):
            item["message"] = e.message
        if e.outcome in BAD:
            item["hint"] = e.hint
        labs.setdefault(e.machine or default_lab, {})[e.check_id] = item
    return labs


def failing(checks: dict[str, dict[str, Any]]) -> list[str]:
    """The check IDs of one lab that failed (or errored), sorted."""
    return sorted(cid for cid, c in checks.items() if c["outcome"] in BAD)


def worst_first(labs: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Lab names, most failing checks first, then by name."""
    return sorted(labs, key=lambda name: (-len(failing(labs[name])), name))


def build(lab_names: list[str], run_id: str, entries: Iterable[Any], redact: Redactor) -> dict[str, Any]:
    """``labs``: every lab of the run (a fleet's, or the one), each with its checks by ID."""
    entries = list(entries)
    empty: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in lab_names}
    labs = empty | (by_lab(entries, lab_names[0]) if lab_names else {})
    totals: dict[str, int] = {}
    for e in entries:
        totals[e.outcome] = totals.get(e.outcome, 0) + 1
    data = {
        "run": run_id,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "totals": totals,
        "labs": labs,
    }
    redacted: dict[str, Any] = redact.deep(data)
    return redacted


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
