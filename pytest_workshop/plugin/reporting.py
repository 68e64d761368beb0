"""The pytest side of reports: Allure results by default, labels, evidence, redaction, summary.json.

- Allure results go to ``reports/allure-results`` (``--alluredir`` to change; ``--no-allure`` to
  switch off). The folder is emptied by the controller (or a lone process) when the run starts,
  never by an xdist worker: a replacement worker wiping it would lose the others' results.
- Redaction: every report's long text, captured output/log sections and user properties are
  scrubbed in the process that made them (before xdist ships them, before the terminal and JUnit
  see them); parametrize ids that contain a secret become ``<argname>-redacted``; Allure files
  are scrubbed by a redacting file logger.
- summary.json, categories.json and environment.properties are written once, by the controller.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.plugin.catalogue import check_of
from pytest_workshop.plugin.fleet import is_fleet, lab_of
from pytest_workshop.plugin.state import is_worker
from pytest_workshop.report import allure_results, evidence, fleet_html, summary
from pytest_workshop.report.redact import Redactor, config_secrets
from pytest_workshop.run import Run

REDACT_KEY = pytest.StashKey[Redactor]()
UNREACHABLE_TYPES = ("ComponentUnavailable", "CheckTimeout")


def add_options(group: Any) -> None:
    group.addoption("--no-allure", action="store_true", help="do not write Allure results")
    group.addoption(
        "--workshop-summary",
        metavar="PATH",
        default=None,
        help="where to write the lab x check summary (default: reports/summary.json)",
    )
    group.addoption(
        "--redact",
        action="append",
        default=[],
        metavar="VALUE",
        help="a further secret to keep out of every output (repeatable; clouds.yaml and lab.toml ones are automatic)",
    )


def configure(config: pytest.Config, labs: list[LabConfig]) -> Redactor:
    """Called first thing in the plugin's pytest_configure (before allure-pytest's). Every lab's
    secrets are redacted everywhere: in a fleet run one lab's output must not carry another's."""
    redact = Redactor([*(s for lab in labs for s in config_secrets(lab)), *config.option.redact])
    config.stash[REDACT_KEY] = redact
    if not hasattr(config.option, "allure_report_dir"):
        return redact  # allure-pytest not loaded (-p no:allure_pytest)
    if config.option.no_allure or config.option.collectonly or config.option.workshop_checks:
        config.option.allure_report_dir = None
        return redact
    if not config.option.allure_report_dir:
        config.option.allure_report_dir = str(config.rootpath / "reports" / "allure-results")
    # Only the controller (or a lone process) empties the folder; allure-pytest would do it in
    # every worker, so its own --clean-alluredir is taken over here.
    config.option.clean_alluredir = False
    if not is_worker(config):
        allure_results.clean_results_dir(Path(config.option.allure_report_dir))
    return redact


class ReportingPlugin:
    def __init__(self, config: pytest.Config, labs: list[LabConfig], run: Run, checklist: Any) -> None:
        self.config, self.labs, self.run, self.checklist = config, labs, run, checklist
        self.redact: Redactor = config.stash[REDACT_KEY]
        self.allure_dir = Path(d) if (d := getattr(config.option, "allure_report_dir", None)) else None

    # --- Allure: our logger, our labels -------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # By now allure-pytest has configured its file logger in this process: swap it.
        if self.allure_dir is not None:
            allure_results.install_redacting_logger(self.redact)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.allure_dir is None:
            return
        for item in items:
            info = check_of(item)
            if info is None:
                continue
            for label_type, value in allure_results.labels_for(
                info, info.component in info.requires, lab_of(item).name
            ):
                item.add_marker(pytest.mark.allure_label(value, label_type=label_type))
            item.add_marker(pytest.mark.allure_description(f"Hint when it fails: {info.hint}"))
            obj = getattr(item, "obj", None)
            if obj is not None:
                # allure formats the title with str.format: keep braces literal
                title = f"{info.id} {info.title}".replace("{", "{{").replace("}", "}}")
                with contextlib.suppress(AttributeError, TypeError):
                    obj.__allure_display_name__ = title

    def pytest_make_parametrize_id(self, config: pytest.Config, val: object, argname: str) -> str | None:
        if self.redact.contains(val):
            return f"{argname}-redacted"
        return None

    # --- every report: evidence on failure, then redaction ----------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        if report.failed and self.allure_dir is not None and check_of(item) is not None:
            self._attach_evidence(item, call)
        self._redact_report(report)
        return report

    def _attach_evidence(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        import allure

        info = check_of(item)
        assert info is not None
        exc = call.excinfo.value if call.excinfo else None
        unreachable = type(exc).__name__ in UNREACHABLE_TYPES
        funcargs = getattr(item, "funcargs", {}) or {}
        for ev in evidence.collect(funcargs, lab_of(item).logs.get(info.component, ()), unreachable):
            kind = allure.attachment_type.JSON if ev.kind == "json" else allure.attachment_type.TEXT
            with contextlib.suppress(Exception):
                allure.attach(self.redact.text(ev.text), name=ev.name, attachment_type=kind)

    def _redact_report(self, report: pytest.TestReport) -> None:
        r = self.redact
        if not r:
            return
        if report.longrepr is not None and r.contains(report.longreprtext):
            report.longrepr = r.text(report.longreprtext)
        report.sections = [(title, r.text(text)) for title, text in report.sections]
        report.user_properties = [(k, r.deep(v)) for k, v in report.user_properties]

    # --- once per run, in the controller ---------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if is_worker(self.config) or self.config.option.collectonly or self.config.option.workshop_checks:
            return
        if not self.checklist.entries and self.labs:  # a shard with no lab writes its (empty) summary: merges want it
            return
        path = Path(self.config.option.workshop_summary or self.config.rootpath / "reports" / "summary.json")
        data = summary.build(
            [lab.name for lab in self.labs], self.run.run_id, self.checklist.entries.values(), self.redact
        )
        summary.write(path, data)
        if is_fleet(self.config):
            fleet_html.write(path.parent / "fleet.html", data, self.redact)  # beside its summary.json
        if self.allure_dir is not None and self.allure_dir.is_dir():
            allure_results.write_categories(self.allure_dir)
            allure_results.write_environment(self.allure_dir, self.environment(), self.redact)

    def environment(self) -> dict[str, str]:
        from importlib.metadata import version

        env = {"run": self.run.run_id, "pytest-workshop": version("pytest-workshop")}
        env["Python"] = platform.python_version()
        if len(self.labs) != 1:  # a fleet: asking every lab's versions would take a lab's bounds each
            env["labs"] = ", ".join(lab.name for lab in self.labs)
            return env
        lab = self.labs[0]
        env.update({"lab": lab.name, "lab config": lab.source})
        env.update(versions(lab))
        return env


def versions(lab: LabConfig) -> dict[str, str]:
    """Component versions, asked concurrently with short timeouts; an unreachable one says so."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    # Import in this thread first: pytest rewrites our modules while importing them, and Python
    # 3.11's AST compiler is not safe to run from several threads at once ("AST constructor
    # recursion depth mismatch" crashed runs).
    import pytest_workshop.components.docker
    import pytest_workshop.components.etcd
    import pytest_workshop.components.openstack  # noqa: F401

    if lab.docker:
        import docker  # noqa: F401
    if lab.etcd:
        import aetcd  # noqa: F401

    quick = replace(lab.timeouts, connect=1.0, request=2.0)
    askers = []
    if lab.docker:
        askers.append(lambda: _docker_version(lab, quick))
    if lab.etcd:
        askers.append(lambda: _etcd_version(lab, quick))
    if lab.openstack:
        askers.append(lambda: _openstack_versions(lab, quick))
    out: dict[str, str] = {}
    with ThreadPoolExecutor(max(1, len(askers))) as pool:
        for found in pool.map(lambda ask: ask(), askers):
            out.update(found)
    return out


def _docker_version(lab: LabConfig, timeouts: Any) -> dict[str, str]:
    from pytest_workshop.components import docker

    assert lab.docker is not None
    try:
        client = docker.connect(lab.docker, timeouts)
        try:
            return {"Docker": str(client.version().get("Version", "?"))}
        finally:
            client.close()
    except Exception:
        return {"Docker": "unreachable"}


def _etcd_version(lab: LabConfig, timeouts: Any) -> dict[str, str]:
    from pytest_workshop.components import etcd

    assert lab.etcd is not None
    try:
        client = etcd.connect(lab.etcd, timeouts)
        try:
            found = {s.version for s in client.statuses() if s.ok}
        finally:
            client.close()
        return {"etcd": ", ".join(sorted(found)) or "unreachable"}
    except Exception:
        return {"etcd": "unreachable"}


def _openstack_versions(lab: LabConfig, timeouts: Any) -> dict[str, str]:
    """Keystone's and Neutron's API versions, from their version documents (no credentials)."""
    from pytest_workshop.components import http

    assert lab.openstack is not None
    doc = http.request(lab.openstack.auth_url, timeouts.request).json()
    version = doc.get("version", {}).get("id", "?") if isinstance(doc, dict) else "unreachable"
    return {"Keystone API": str(version)}
