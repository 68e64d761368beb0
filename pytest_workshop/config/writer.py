"""Write a lab.toml (the embedded lab describes itself with one). Only the types lab.toml uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to lab.toml")


def render_lab_toml(sections: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    for name, values in sections.items():
        lines.append("")
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, Mapping)}
        for key, value in values.items():
            if key not in nested:
                lines.append(f"{key} = {_value(value)}")
        for key, table in nested.items():
            lines.append(f"[{name}.{key}]")
            lines.extend(f"{json.dumps(k)} = {_value(v)}" for k, v in table.items())
    return "\n".join(lines).lstrip("\n") + "\n"
