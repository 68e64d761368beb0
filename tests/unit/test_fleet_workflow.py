"""The shipped CI workflow for fleets (.github/workflows/fleet.yml) stays consistent with the code:
its matrix is 1..SHARDS, and every option it passes exists."""

from __future__ import annotations

from pathlib import Path

import yaml

from pytest_workshop.cli import build_parser

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "fleet.yml"


def test_the_matrix_is_every_shard_once() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    shards = int(data["env"]["SHARDS"])
    assert data["jobs"]["shard"]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    assert data["jobs"]["merge"]["needs"] == "shard" and data["jobs"]["merge"]["if"] == "always()"


def test_the_commands_use_options_that_exist(pytester) -> None:
    text = WORKFLOW.read_text()
    for option in ("--labs", "--labs-shard", "--workshop-summary", "--alluredir"):
        assert option in text
    pytester.makefile(".toml", fleet='[labs.a]\n[labs.a.etcd]\nendpoints = ["http://127.0.0.1:1"]\n')
    result = pytester.runpytest(
        "--labs", "fleet.toml", "--labs-shard", "1/4", "--workshop-summary=s/summary.json", "--co"
    )
    assert result.ret == 5  # no tests collected, but every option was accepted
    args = build_parser().parse_args(["report", "--merge", "shards/a", "shards/b", "--into", "reports", "--labs", "x"])
    assert args.merge == [Path("shards/a"), Path("shards/b")]
