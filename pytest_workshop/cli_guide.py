"""`workshop solve` and `workshop check`: the guide's path, for instructors and attendees.

solve LAB [--step N.M]      run the guide's commands of every step on the way to that one, on
                            the lab's machines (a lab that says allow_solve = true)
check LAB [--step N.M]      the lab's checks, from the installed suites (an attendee's command)
      [--watch]             again every few seconds, until the step's checks are all green
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import time
from pathlib import Path
from typing import Any

from pytest_workshop.cli_common import lab_args, lab_of_fleet_options, one_lab
from pytest_workshop.errors import ConfigError, WorkshopError

WATCH_EVERY_S = 5.0
NOTHING = "nothing to catch up on"  # solve.py's word for a step whose commands leave nothing behind
INTERRUPTED = 2  # pytest's ExitCode.INTERRUPTED


def add_parsers(sub: Any) -> None:
    solve = sub.add_parser("solve", help="fast-forward a lab: run the guide's commands up to a step")
    check = sub.add_parser("check", help="run a lab's checks (the installed suites), or --watch a step turn green")
    for p in (solve, check):
        p.add_argument("suite", help="the lab of the guide: lab1 ... lab6 (lab0: the organizers' readiness)")
        p.add_argument(
            "--step", metavar="N.M", help="solve: up to this step (default: the whole lab); check: this step"
        )
        p.add_argument("--lab-config", help="lab.toml of the lab (default: same search as pytest)")
        lab_of_fleet_options(p)
    check.add_argument("--watch", action="store_true", help="re-run the step's checks until they are all green")
    check.add_argument(
        "--every",
        type=float,
        default=WATCH_EVERY_S,
        metavar="S",
        help="with --watch: seconds between rounds (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from pytest_workshop.guide import guides

    known = guides()
    if args.suite not in known:
        raise ConfigError(args.suite, "", "is no lab of the guide", f"use one of {', '.join(sorted(known))}")
    if args.step and args.step not in {s.number for s in known[args.suite]}:
        numbers = ", ".join(s.number for s in known[args.suite])
        raise ConfigError("--step", args.step, f"is no step of {args.suite}", f"use one of {numbers}")
    if args.command == "solve":
        return _solve(args, known)
    if args.watch:
        return watch(args.suite, args.step, _lab_args_of(args), args.every)
    return _pytest([suite_path(args.suite), *(["--step", args.step] if args.step else []), *_lab_args_of(args)])


def suite_path(suite: str) -> str:
    from pytest_workshop.guide import suites_dir

    return str(suites_dir() / suite)


def _lab_args_of(args: argparse.Namespace) -> list[str]:
    if not (args.lab_config or args.labs or args.lab):
        return []  # the same search as pytest's, in the child as here
    return lab_args(args, one_lab(args))


def _pytest(argv: list[str]) -> int:
    import pytest

    return int(pytest.main([*argv, "-p", "no:cacheprovider"]))


def _solve(args: argparse.Namespace, known: dict[str, Any]) -> int:
    from pytest_workshop.guide.solve import path_to, solve

    lab = one_lab(args)
    if not lab.allow_solve:
        raise WorkshopError(
            f"solving this lab is not allowed: {lab.source} does not say allow_solve = true",
            hint="solve runs the guide's commands on the attendee's machines: set allow_solve = true under [lab] "
            "of that lab's lab.toml (in an inventory: workshop_lab_allow_solve=true)",
        )
    target = args.step or known[args.suite][-1].number
    steps = path_to(known, args.suite, target)
    machines = _machines(lab, lab_args(args, lab))
    print(f"workshop solve: {lab.name}, up to step {target} ({len(steps)} steps on the way)")
    outcomes = solve(steps, machines, say=lambda line: None if NOTHING in line else print(f"  {line}", flush=True))
    quiet = [o.step.number for o in outcomes if NOTHING in o.what]
    if quiet:
        print(f"  {len(quiet)} steps have {NOTHING} ({', '.join(quiet)})")
    final = next(s for s in steps if s.number == target)
    done = machines.check_passes(final)
    print(f"step {target}: {'its check passes' if done else 'its check fails'} (`{final.check}`)")
    return 0 if done else 1


def _machines(lab: Any, lab_pytest_args: list[str]) -> Any:
    """The embedded lab's machines through its control, a real lab's over SSH."""
    from pytest_workshop.guide.machines import SSHMachines

    if lab.control and lab.control.startswith("embedded:"):
        from pytest_workshop.lab.guide_machines import GuideMachines

        if lab.path is None:
            raise WorkshopError("the embedded lab's lab.toml was not found", hint="give --lab-config")
        return GuideMachines(Path(lab.control.removeprefix("embedded:")), lab.path, Path.cwd())
    return SSHMachines(lab, lab_pytest_args)


# --- watch ---------------------------------------------------------------------------------------


def watch(suite: str, step: str | None, lab_pytest_args: list[str], every: float, rounds: int = 0) -> int:
    """The step's checks again every ``every`` seconds, in this process (a round costs the checks,
    not a new interpreter), until they are all green (0), or Ctrl-C (130). Without a step: the
    first step of the lab whose checks are not all green. ``rounds`` > 0 stops after that many (1)."""
    if step is None:
        step = _first_red_step(suite, lab_pytest_args)
        if step is None:
            print(f"{suite}: every step's checks are green")
            return 0
    shown, done = "", 0
    try:
        while True:
            code, checklist = _round([suite_path(suite), "--step", step, *lab_pytest_args])
            if code == INTERRUPTED:
                return 130
            if checklist != shown:
                stamp = time.strftime("%H:%M:%S")
                print(f"\n== step {step}, {stamp} (again every {every:g} s; Ctrl-C stops)\n{checklist}", flush=True)
                shown = checklist
            if code == 0:
                print(f"step {step}: all green")
                return 0
            done += 1
            if rounds and done >= rounds:
                return 1
            time.sleep(every)
    except KeyboardInterrupt:
        print(f"\nwatch of step {step} stopped")
        return 130


def _round(argv: list[str]) -> tuple[int, str]:
    """One pytest run in this process, quiet: its exit code and its workshop checklist."""
    import pytest

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = int(pytest.main([*argv, "-p", "no:cacheprovider", "--no-allure", "-q", "--tb=no", "-p", "no:warnings"]))
    text = out.getvalue()
    found = re.search(r"=+ workshop checklist =+\n(.*?)(?:\n=+ |\Z)", text, re.S)
    return code, (found.group(1).rstrip() if found else text.strip()[-2000:])


def _first_red_step(suite: str, lab_pytest_args: list[str]) -> str | None:
    """The first step whose checks fail now: every failure's hint names its step."""
    code, checklist = _round([suite_path(suite), *lab_pytest_args])
    if code == 0:
        return None
    red = sorted(set(re.findall(r"guide step (\d+\.\d+)", checklist)), key=lambda n: tuple(map(int, n.split("."))))
    if not red:
        print(checklist, file=sys.stderr)
        raise WorkshopError(
            f"{suite}'s checks do not pass, and no failure names a step", hint=f"run `pytest {suite_path(suite)}`"
        )
    return str(red[0])
