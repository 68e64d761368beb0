"""Read a suite run's verdicts from its JUnit XML: check ID -> PASS / FAIL / SKIP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def verdicts(junit: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        check_id = props.get("check_id")
        if not check_id:
            continue
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            out[check_id] = "FAIL"
        elif "skipped" in tags:
            out[check_id] = "SKIP"
        else:
            out[check_id] = "PASS"
    return out
