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


def build(lab_names: list[str], run_id: str, entries: Iterable[Any], redact: Redactor) -> dict[str, Any]:
    """``labs``: every lab of the run (a fleet's, or the one), each with its checks by ID."""
    labs: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in lab_names}
    totals: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: e.check_id):
        item: dict[str, Any] = {
            "suite": e.lab,
            "title": e.title,
            "outcome": e.outcome,
            "duration": round(e.duration, 3),
        }
        if e.outcome in ("FAIL", "ERROR", "SKIP"):
            item["message"] = e.message
        if e.outcome in ("FAIL", "ERROR"):
            item["hint"] = e.hint
        labs.setdefault(e.machine or lab_names[0], {})[e.check_id] = item
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
