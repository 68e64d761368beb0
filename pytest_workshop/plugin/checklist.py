"""The attendee's checklist at the end of a run: one line per check, the hint under each failure.

Built from test reports (not items) so it also works in the pytest-xdist controller,
which sees only the reports its workers send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

ORDER = {"FAIL": 0, "ERROR": 1, "PASS": 2, "SKIP": 3}


@dataclass
class Entry:
    check_id: str
    title: str
    lab_title: str
    outcome: str = "PASS"
    message: str = ""
    hint: str = ""
    notes: list[str] = field(default_factory=list)
    lab: str = ""  # the suite, e.g. "lab3"
    duration: float = 0.0  # set-up + call + teardown, seconds


class Checklist:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        check_id = props.get("check_id")
        if not check_id:
            return
        entry = self.entries.setdefault(
            report.nodeid,
            Entry(str(check_id), str(props.get("check_title", "")), str(props.get("lab_title", ""))),
        )
        entry.lab = str(props.get("lab", ""))
        entry.duration += report.duration
        if report.skipped:
            entry.outcome = "SKIP"
            longrepr = report.longrepr
            entry.message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            entry.message = entry.message.removeprefix("Skipped: ")
        elif report.failed:
            expected = "failure" in props
            if report.when == "teardown" and entry.outcome != "PASS":
                return  # the first failure is the one that matters
            entry.outcome = "FAIL" if expected else "ERROR"
            if expected:
                entry.message, entry.hint = str(props["failure"]), str(props.get("hint", ""))
            else:
                crash = getattr(report.longrepr, "reprcrash", None)
                entry.message = (
                    f"unexpected error in the check itself: {crash.message if crash else report.longreprtext[:200]}"
                )
                entry.hint = (
                    "this is a bug in the suite, not in your lab: please report it with the output of `pytest -vv`"
                )
            if report.when == "teardown":
                entry.message = f"clean-up failed: {entry.message}"
        for key, value in report.user_properties:
            if key == "note" and value not in entry.notes:
                entry.notes.append(str(value))

    def lines(self) -> list[tuple[str, dict[str, bool]]]:
        """(text, markup) lines grouped by lab; passing checks are listed too, it is a checklist."""
        out: list[tuple[str, dict[str, bool]]] = []
        labs: dict[str, list[Entry]] = {}
        for entry in self.entries.values():
            labs.setdefault(entry.lab_title or "checks", []).append(entry)
        causes: dict[tuple[str, str], str] = {}
        for lab_title in sorted(labs):
            entries = sorted(labs[lab_title], key=lambda e: e.check_id)
            counts = {k: sum(1 for e in entries if e.outcome == k) for k in ORDER}
            summary = ", ".join(f"{n} {k.lower()}" for k, n in counts.items() if n)
            out.append((f"{lab_title}  ({summary})", {"bold": True}))
            for e in entries:
                colour = {"PASS": "green", "SKIP": "yellow"}.get(e.outcome, "red")
                out.append((f"  {e.outcome:<5} {e.check_id}  {e.title}", {colour: True}))
                if e.outcome in ("FAIL", "ERROR"):
                    first = causes.setdefault((e.message, e.hint), e.check_id)
                    if first != e.check_id:
                        # One dead component fails many checks; say it once.
                        out.append((f"        same cause as {first}", {}))
                        continue
                    out.append((f"        {e.message}", {}))
                    if e.hint:
                        out.append((f"        hint: {e.hint}", {"bold": True}))
                elif e.outcome == "SKIP":
                    # a skip is a claim about the lab: always say why
                    out.append((f"        skipped: {e.message}", {}))
                for note in e.notes:
                    out.append((f"        note: {note}", {}))
        return out


class ChecklistPlugin:
    def __init__(self) -> None:
        self.checklist = Checklist()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.checklist.add(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.checklist.entries:
            return
        terminalreporter.section("workshop checklist", sep="=", bold=True)
        for text, markup in self.checklist.lines():
            terminalreporter.write_line(text, **markup)
