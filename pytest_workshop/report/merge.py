"""``workshop report --merge DIR...``: the shards of a fleet run (``--labs-shard K/N``, one CI job
each) combined into one report, as if one run had checked every lab.

Each DIR is what a shard wrote: ``summary.json`` (``--workshop-summary``) and ``allure-results/``
(``--alluredir``), or a summary.json itself. The merged folder gets one summary.json (every lab;
a lab in two shards is refused: the shards were cut from different inventories), the Allure
results of all shards side by side (each result file has its own uuid), and fleet.html.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from pytest_workshop.errors import ConfigError
from pytest_workshop.report import fleet_html, summary
from pytest_workshop.report.redact import Redactor


def summary_path(given: Path) -> Path:
    path = given / "summary.json" if given.is_dir() else given
    if not path.is_file():
        raise ConfigError(
            str(given),
            "",
            "no summary.json there",
            "give each shard's reports folder (summary.json, allure-results/) or its summary.json",
        )
    return path


def merge_summaries(parts: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    labs: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    totals: dict[str, int] = {}
    runs = []
    for path, data in parts:
        if not isinstance(data.get("labs"), dict):
            raise ConfigError(str(path), "labs", "not a workshop summary", "give the summary.json a run wrote")
        runs.append(str(data.get("run", "")))
        for name, checks in data["labs"].items():
            if name in labs:
                raise ConfigError(
                    str(path),
                    f"lab {name}",
                    f"is in {origin[name]} too",
                    "merge the shards of one run (the same inventory, --labs-shard 1/N .. N/N)",
                )
            labs[name], origin[name] = checks, path
        for outcome, n in (data.get("totals") or {}).items():
            totals[outcome] = totals.get(outcome, 0) + int(n)
    return {
        "run": "+".join(runs),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "totals": totals,
        "labs": dict(sorted(labs.items())),
    }


def merge(shards: list[Path], out: Path, redact: Redactor | None = None) -> dict[str, Any]:
    """Write the merged summary.json, allure-results/ and fleet.html into ``out``; returns the summary."""
    paths = [summary_path(s) for s in shards]
    merged = merge_summaries([(p, fleet_html.read_summary(p)) for p in paths])
    if redact:
        merged = redact.deep(merged)
    out.mkdir(parents=True, exist_ok=True)
    summary.write(out / "summary.json", merged)
    fleet_html.write(out / "fleet.html", merged, redact)
    results = out / "allure-results"
    for path in paths:
        shard_results = path.parent / "allure-results"
        if shard_results.is_dir() and shard_results.resolve() != results.resolve():
            results.mkdir(parents=True, exist_ok=True)
            for f in shard_results.iterdir():
                # uuid-named results and attachments never collide; the run-wide files of the
                # first shard stand for all (categories are the same in every shard)
                if f.is_file() and not (results / f.name).exists():
                    shutil.copy2(f, results / f.name)
    return merged
