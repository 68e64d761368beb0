"""The lab's state file: what `up` started, so `down` and the control layer act on exactly that."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except FileNotFoundError:
            return {}

    def save(self, data: dict[str, Any]) -> None:
        # Write-then-rename: a crash mid-write must not lose the record of running processes.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def update(self, **changes: Any) -> dict[str, Any]:
        data = self.load()
        data.update(changes)
        self.save(data)
        return data

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
