"""The workshop's steps, read out of the guides (each suite's README.md): their titles, the
commands an attendee types and on which machines, what they should see, and how each is checked.

The guide is the one source of these commands: ``workshop solve``, the guide walk of the project's
tests and the step listing all read them here. Plain Python, no pytest.

In a guide, a step is a heading ``### 3.1 Title``; within it,

- a fenced block ``sh on=node1,node2`` holds commands typed on those machines (``instructor``:
  the machine the instructor runs ``workshop`` on); ``save=NAME`` marks a block whose output the
  attendee copies to where later blocks write ``$NAME``;
- a fenced block ``output`` right after one is what it should print, in shape: ``<...>`` stands
  for what differs (IDs, addresses, times), and its lines appear in that order;
- a line ``Check this step ...: `pytest ...``` is the step's check, and "fails until" in it says the
  check fails before the step is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

STEP_HEADING = re.compile(r"^### (\d)\.(\d+) (.+)$")
FENCE = re.compile(r"^```(.*)$")
CHECK_LINE = re.compile(r"Check this step[^`]*`(pytest [^`]+)`")


@dataclass(frozen=True)
class Commands:
    """A block an attendee types, on each of ``machines``."""

    machines: tuple[str, ...]
    script: str
    line: int  # where the block starts in the guide
    save: str | None = None  # its output is the value later blocks call $<save>
    expect: str | None = None  # what it should print, in shape (``<...>``: anything)

    def expected_shape(self) -> list[re.Pattern[str]]:
        """One pattern per non-empty line of ``expect``."""
        patterns = []
        for line in (self.expect or "").splitlines():
            if line.strip():
                parts = re.split(r"<[^>]*>", line.strip())
                patterns.append(re.compile(".+?".join(re.escape(p) for p in parts)))
        return patterns

    def shape_matches(self, printed: str) -> str | None:
        """None if ``printed`` has the expected lines in order; else the first line it lacks."""
        lines = printed.splitlines()
        at = 0
        for pattern in self.expected_shape():
            while at < len(lines) and not pattern.search(lines[at]):
                at += 1
            if at == len(lines):
                return pattern.pattern
            at += 1
        return None


@dataclass(frozen=True)
class Step:
    lab: str  # "lab3"
    number: str  # "3.1"
    title: str
    guide: Path
    line: int
    teaches: str  # the first paragraph: what the step is about
    commands: tuple[Commands, ...] = ()
    check: str | None = None  # the command that checks just this step
    fails_before: bool = False  # its check fails until the step is done

    @property
    def sort_key(self) -> tuple[int, int]:
        major, minor = self.number.split(".")
        return int(major), int(minor)


@dataclass
class _Reading:
    steps: list[Step] = field(default_factory=list)
    current: dict[str, object] | None = None
    commands: list[Commands] = field(default_factory=list)


def _attributes(info: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in info.split()[1:] if "=" in word)


def read_guide(path: Path) -> list[Step]:
    """The steps of one guide, in order."""
    lab = path.parent.name
    lines = path.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    i = 0
    heading: tuple[int, str, str] | None = None
    paragraphs: list[str] = []
    commands: list[Commands] = []
    check: str | None = None
    fails_before = False

    def close() -> None:
        if heading is not None:
            line, number, title = heading
            teaches = next((p for p in paragraphs if p and not p.startswith(("On ", "Check "))), "")
            steps.append(Step(lab, number, title, path, line, teaches, tuple(commands), check, fails_before))

    while i < len(lines):
        text = lines[i]
        found = STEP_HEADING.match(text)
        if found or text.startswith("## "):
            close()
            heading = (i + 1, f"{found[1]}.{found[2]}", found[3]) if found else None
            paragraphs, commands, check, fails_before = [], [], None, False
            i += 1
            continue
        fence = FENCE.match(text)
        if fence and heading is not None:
            info, body, start = fence[1].strip(), [], i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
            attributes = _attributes(info)
            if info.startswith("sh") and "on" in attributes:
                machines = tuple(m for m in attributes["on"].split(",") if m)
                commands.append(Commands(machines, "\n".join(body) + "\n", start, attributes.get("save")))
            elif info == "output" and commands:
                last = commands[-1]
                commands[-1] = Commands(last.machines, last.script, last.line, last.save, "\n".join(body))
            continue
        if heading is not None:
            said = CHECK_LINE.search(text)
            if said:
                check, fails_before = said[1], "fails until" in text
            if text.strip() and (not paragraphs or paragraphs[-1] == ""):
                paragraphs.append(text.strip())
            elif text.strip():
                paragraphs[-1] += " " + text.strip()
            elif paragraphs and paragraphs[-1]:
                paragraphs.append("")
        i += 1
    close()
    return steps


def suites_dir() -> Path:
    """The suites folder: a checkout's (beside the package), else the one the wheel installs
    inside it (pytest_workshop/suites)."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "suites"
    return (
        checkout
        if (checkout / "lab1").is_dir() and (package.parent / "pyproject.toml").is_file()
        else package / "suites"
    )


def guides(root: Path | None = None) -> dict[str, list[Step]]:
    """lab -> its steps, for every suite with a guide under ``root`` (default: suites_dir())."""
    base = root or suites_dir()
    return {p.parent.name: read_guide(p) for p in sorted(base.glob("lab*/README.md"))}


def step(number: str, root: Path | None = None) -> Step:
    lab = f"lab{number.split('.')[0]}"
    for found in guides(root).get(lab, []):
        if found.number == number:
            return found
    raise KeyError(number)
