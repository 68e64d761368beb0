"""The attendee's checklist at the end of a run: one line per check, the hint under each failure.

Built from test reports (not items) so it also works in the pytest-xdist controller,
which sees only the reports its workers send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from pytest_workshop.plugin.fleet import display_id
from pytest_workshop.report.summary import by_lab, failing, worst_first

ORDER = {"FAIL": 0, "ERROR": 1, "PASS": 2, "SKIP": 3}
SKIP_ID = re.compile(r"^LAB\d-\d\d: ")  # a skip's reason starts with its check's ID
SKIP_SOURCE = re.compile(r" \(configuration: .*\)$")  # each lab's own file
GUIDE_STEP = re.compile(r" \(guide step [\d.]+: [^)]*\)$")  # each check's own step: not part of the cause


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
    machine: str = ""  # the lab it checked ([lab] name): one of a fleet's, or the one

    def shown_id(self, fleet: bool) -> str:
        return display_id(self.check_id, self.machine, fleet)


class Checklist:
    def __init__(self, fleet: bool = False) -> None:
        self.entries: dict[str, Entry] = {}
        self.fleet = fleet

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
        entry.machine = str(props.get("workshop_lab", ""))
        entry.duration += report.duration
        if report.when == "teardown" and "teardown_failure" in props and entry.outcome != "PASS":
            # the first failure is the one that matters; a clean-up that the lab failed too is said
            # once (what it could not remove is the final sweep's, or the next run's)
            said = str(props["teardown_failure"])
            if said.split(":", 1)[0] != entry.message.split(":", 1)[0]:
                entry.notes.append(f"clean-up failed too: {said}")
            return
        if report.skipped:
            entry.outcome = "SKIP"
            longrepr = report.longrepr
            entry.message = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            entry.message = entry.message.removeprefix("Skipped: ")
        elif report.failed:
            expected = "failure" in props
            if report.when == "teardown" and entry.outcome != "PASS":
                entry.notes.append("clean-up failed too: an unexpected error in the clean-up (a bug in the suite)")
                return
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
        """(text, markup) lines grouped by suite; passing checks are listed too, it is a checklist.
        In a fleet run, per lab, what did not pass, by cause (fleet_lines)."""
        if self.fleet:
            return self.fleet_lines()
        out: list[tuple[str, dict[str, bool]]] = []
        labs: dict[tuple[str, str], list[Entry]] = {}
        for entry in self.entries.values():
            if self.fleet and entry.outcome == "PASS":
                continue
            key = (entry.machine if self.fleet else "", entry.lab_title or "checks")
            labs.setdefault(key, []).append(entry)
        causes: dict[tuple[str, str], str] = {}
        for machine, lab_title in sorted(labs):
            entries = sorted(labs[(machine, lab_title)], key=lambda e: e.check_id)
            counts = {k: sum(1 for e in entries if e.outcome == k) for k in ORDER}
            summary = ", ".join(f"{n} {k.lower()}" for k, n in counts.items() if n)
            heading = f"{machine}: {lab_title}" if machine else lab_title
            out.append((f"{heading}  ({summary})", {"bold": True}))
            for e in entries:
                colour = {"PASS": "green", "SKIP": "yellow"}.get(e.outcome, "red")
                shown = e.shown_id(self.fleet)
                out.append((f"  {e.outcome:<5} {shown}  {e.title}", {colour: True}))
                if e.outcome in ("FAIL", "ERROR"):
                    first = causes.setdefault((e.message, e.hint), shown)
                    if first != shown:
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

    def fleet_lines(self) -> list[tuple[str, dict[str, bool]]]:
        """A line per cause of each lab that did not pass: a cause that fails several checks (a
        component down, the lab not booted) is one line saying how many. Two hundred labs must be
        readable at the end of the output; the per-check details are in summary.json and
        fleet.html, and passing checks in the fleet table."""
        out: list[tuple[str, dict[str, bool]]] = []
        labs: dict[str, list[Entry]] = {}
        skips: dict[str, dict[str, set[str]]] = {}  # why -> check IDs -> labs: the same skip, said once
        for entry in self.entries.values():
            if entry.outcome == "SKIP":
                why = SKIP_SOURCE.sub("", SKIP_ID.sub("", entry.message))
                skips.setdefault(why, {}).setdefault(entry.check_id, set()).add(entry.machine)
            elif entry.outcome != "PASS":
                labs.setdefault(entry.machine, []).append(entry)
        for machine in sorted(labs):
            causes: dict[tuple[str, str], list[Entry]] = {}
            for e in sorted(labs[machine], key=lambda e: e.check_id):
                causes.setdefault((e.message, GUIDE_STEP.sub("", e.hint)), []).append(e)
            for (message, hint), same in causes.items():
                said = f"{message}; hint: {hint}" if hint else message
                if len(same) == 1:
                    e = same[0]
                    out.append((f"{machine}: {e.outcome} {e.shown_id(True)} {e.title}: {said}", {"red": True}))
                    continue
                ids = few([e.check_id for e in same], 3)
                out.append((f"{machine}: {len(same)} checks {same[0].outcome} ({ids}): {said}", {"red": True}))
        for why, checks in skips.items():
            where = sorted(set().union(*checks.values()))
            out.append(
                (f"SKIP {few(sorted(checks), 4)} on {len(where)} lab(s) ({few(where, 3)}): {why}", {"yellow": True})
            )
        return out


class ChecklistPlugin:
    def __init__(self, fleet: bool = False) -> None:
        self.checklist = Checklist(fleet)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.checklist.add(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.checklist.entries:
            return
        terminalreporter.section("workshop checklist", sep="=", bold=True)
        for text, markup in self.checklist.lines():
            terminalreporter.write_line(text, **markup)
        if self.checklist.fleet:
            terminalreporter.section("fleet", sep="=", bold=True)
            for text, markup in fleet_table(self.checklist.entries.values()):
                terminalreporter.write_line(text, **markup)


def few(ids: list[str], shown: int = 6) -> str:
    """ "LAB1-01, LAB1-02 and 20 more": a terminal line stays one line (summary.json lists them all)."""
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def fleet_table(entries: Iterable[Entry]) -> list[tuple[str, dict[str, bool]]]:
    """One row per lab, worst first: per suite passed/total, then the failing check IDs."""
    labs = by_lab(entries)
    suites = sorted({c["suite"] for checks in labs.values() for c in checks.values()})
    width = max([len(name) for name in labs] + [3])
    out: list[tuple[str, dict[str, bool]]] = [
        (f"{'lab':<{width}}  " + "  ".join(f"{s:>7}" for s in suites) + "  failing", {"bold": True})
    ]
    order = worst_first(labs)
    for name in order:
        cells = []
        for suite in suites:
            mine = [c for c in labs[name].values() if c["suite"] == suite]
            counted = [c for c in mine if c["outcome"] != "SKIP"]
            passed = sum(1 for c in counted if c["outcome"] == "PASS")
            cells.append(f"{passed}/{len(counted)}" if mine else "-")
        bad = failing(labs[name])
        markup = {"red": True} if bad else {"green": True}
        out.append((f"{name:<{width}}  " + "  ".join(f"{c:>7}" for c in cells) + "  " + (few(bad) or "none"), markup))
    healthy = sum(1 for name in order if not failing(labs[name]))
    out.append((f"{healthy} of {len(order)} labs pass every check", {"bold": True}))
    return out
