"""What allure-pytest writes, made to read like the workshop and scrubbed of secrets.

- labels: epic = the lab ("Lab 3: etcd"), feature = the component, story = "ID title",
  parentSuite = the lab's name (a report of many labs groups by lab), severity;
- a file logger that redacts every result, container and text attachment before it reaches
  the disk (in every xdist worker: each process installs it in its own pytest_configure);
- categories.json and environment.properties, written once by the controller.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pytest_workshop.report.redact import Redactor

COMPONENT_NAMES = {
    "docker": "Docker engine",
    "swarm": "Docker Swarm",
    "etcd": "etcd",
    "openstack": "OpenStack (Keystone, Neutron)",
    "kuryr": "Kuryr",
    "kernel": "Kernel",
}

# Order matters: Allure puts a result in the first category that matches.
CATEGORIES = [
    {
        "name": "Lab unreachable",
        "description": "A component did not answer (down, paused, cut off, or a timeout): fix reachability first.",
        "matchedStatuses": ["failed", "broken"],
        # Allure matches the whole message, which starts with the exception's type: only the
        # errors that mean "could not talk to it" count, not a failed check that mentions a timeout.
        "messageRegex": r"(?s)([\w.]*\.)?(ComponentUnavailable|CheckTimeout|ConnectionError|ConnectTimeout|ReadTimeout|"
        r"TimeoutError|ConnectFailure)\b.*",
    },
    {
        "name": "Lab is broken",
        "description": "The component answered, but not as the workshop needs (a check failed).",
        "matchedStatuses": ["failed"],
    },
    {
        "name": "Lab is broken",
        "matchedStatuses": ["broken"],
        "messageRegex": r"(?s)([\w.]*\.)?(WorkshopError|CheckFailed|LabError|ConfigError)\b.*",
    },
    {
        "name": "Test bug",
        "description": "An unexpected exception in the suite itself: report it with the output of `pytest -vv`.",
        "matchedStatuses": ["broken"],
    },
]


def labels_for(info: Any, required: bool, lab_name: str) -> list[tuple[str, str]]:
    """Allure labels of one check (info: plugin.catalogue.CheckInfo). The parent suite is the lab
    machine's name, so one report of many attendees' labs groups by lab, then by workshop lab."""
    severity = "blocker" if info.id.endswith("-01") else ("critical" if required else "normal")
    return [
        ("epic", info.lab_title or info.lab or "checks"),
        ("feature", COMPONENT_NAMES.get(info.component, info.component)),
        ("story", f"{info.id} {info.title}"),
        ("parentSuite", lab_name),
        ("suite", info.lab_title or info.lab or "checks"),
        ("subSuite", COMPONENT_NAMES.get(info.component, info.component)),
        ("severity", severity),
        ("tag", info.id),
    ]


def clean_results_dir(path: Path) -> None:
    """Empty the results folder (controller only: a worker doing this wipes the others' results)."""
    if path.is_dir():
        for entry in path.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)


def write_categories(path: Path) -> None:
    (path / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))


def write_environment(path: Path, values: dict[str, str], redact: Redactor) -> None:
    lines = []
    for key, value in values.items():
        # .properties: escape the separator characters in keys, keep values on one line
        safe_key = key.replace(" ", "\\ ").replace("=", "\\=").replace(":", "\\:")
        lines.append(f"{safe_key}={redact.text(str(value)).splitlines()[0] if value else ''}")
    (path / "environment.properties").write_text("\n".join(lines) + "\n")


def install_redacting_logger(redact: Redactor) -> bool:
    """Swap allure-pytest's file logger for one that redacts. False if allure is not writing."""
    import allure_commons
    from allure_commons.logger import AllureFileLogger

    class RedactingFileLogger(AllureFileLogger):
        def _report_item(self, item: Any) -> None:
            from attr import asdict

            data = asdict(item, filter=lambda _, v: v or v is False)
            text = redact.text(json.dumps(data, ensure_ascii=False))
            final = self._report_dir / item.file_pattern.format(prefix=uuid.uuid4())
            tmp = final.with_name(final.name + ".tmp")
            tmp.write_text(text, encoding="utf8")
            os.replace(tmp, final)  # a reader (or a crash) never sees half a result

        @allure_commons.hookimpl
        def report_attached_data(self, body: Any, file_name: str) -> None:
            if isinstance(body, bytes):
                try:
                    body = body.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            super().report_attached_data(  # type: ignore[no-untyped-call]
                redact.text(body) if isinstance(body, str) else body, file_name
            )

        @allure_commons.hookimpl
        def report_attached_file(self, source: str, file_name: str) -> None:
            try:
                text = Path(source).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                super().report_attached_file(source, file_name)  # type: ignore[no-untyped-call]
                return
            super().report_attached_data(  # type: ignore[no-untyped-call]
                redact.text(text), file_name
            )

    pm = allure_commons.plugin_manager
    swapped = False
    for plugin in list(pm.get_plugins()):
        if type(plugin) is AllureFileLogger:
            # the same object, re-registered with the redacting methods: allure's own clean-up
            # finds it by identity at the end
            name = pm.get_name(plugin)
            pm.unregister(plugin)
            plugin.__class__ = RedactingFileLogger
            pm.register(plugin, name)
            swapped = True
    return swapped
