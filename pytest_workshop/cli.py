"""The `workshop` command: the embedded lab, the janitor and the check catalogue.

Same library calls as the plugin; every expected problem is one line plus a hint, no traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_workshop import cli_guide, cli_lab
from pytest_workshop.cli_common import lab_of_fleet_options, one_lab
from pytest_workshop.errors import ConfigError, WorkshopError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workshop", description="pytest-workshop: check and run the workshop lab")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_lab.add_parser(sub)
    cli_guide.add_parsers(sub)
    jan = sub.add_parser(
        "janitor", help="remove what interrupted runs left behind (labelled containers, networks, keys)"
    )
    jan.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    jan.add_argument("--all", action="store_true", help="also remove objects of runs that are still going")
    jan.add_argument("--lab-config", help="lab.toml to use (default: same search as pytest)")
    _fault_parsers(sub)
    _report_parser(sub)
    app = sub.add_parser(
        "app", help="lab5's reference app: build its image on every Swarm node, print the deploy command"
    )
    app.add_argument("app_command", choices=["build"], help="build: the image, offline, on every node of [swarm] hosts")
    app.add_argument("--lab-config", help="lab.toml of the lab (default: same search as pytest)")
    checks = sub.add_parser("checks", help="list the check catalogue (ID, component, title) without running anything")
    checks.add_argument("paths", nargs="*", default=[], help="suite folders (default: the installed suites/)")
    return parser


def _fault_parsers(sub: Any) -> None:
    """break, fix and matrix: the faults an instructor injects and restores."""
    brk = sub.add_parser("break", help="break the lab on purpose (a fault scenario), for lab6's debugging exercise")
    brk.add_argument("scenario", nargs="?", help="scenario name (see --list)")
    brk.add_argument("--list", action="store_true", help="list the scenarios and what detects each")
    brk.add_argument("--lab-config", help="lab.toml of the lab to break (it must say allow_breakage = true)")
    lab_of_fleet_options(brk)
    fix = sub.add_parser("fix", help="restore an injected fault (or --all), also after a crashed run")
    fix.add_argument("scenario", nargs="?", help="scenario to restore")
    fix.add_argument("--all", action="store_true", help="restore every fault the journal lists for this lab")
    fix.add_argument("--lab-config", help="lab.toml of the lab (default: same search as pytest)")
    lab_of_fleet_options(fix)
    mtx = sub.add_parser(
        "matrix", help="the detection matrix: inject every scenario, its checks must fail with hints, restore"
    )
    mtx.add_argument("--lab-config", help="lab.toml of the lab (it must say allow_breakage = true)")
    mtx.add_argument(
        "--out", type=Path, default=Path("reports/matrix.txt"), help="also write the table here (default %(default)s)"
    )


def _report_parser(sub: Any) -> None:
    rep = sub.add_parser("report", help="build the HTML report (Allure 2, offline) from a run's results")
    rep.add_argument("--results", type=Path, default=Path("reports/allure-results"), help="(default %(default)s)")
    rep.add_argument(
        "--out",
        type=Path,
        default=Path("reports/allure-report"),
        help="report folder; its history/ feeds the next report's trends (default %(default)s)",
    )
    rep.add_argument(
        "--single-file",
        type=Path,
        default=Path("reports/allure-report.html"),
        help="also one self-contained HTML file (default %(default)s; '' for none)",
    )
    rep.add_argument("--serve", action="store_true", help="then serve the report on 127.0.0.1 until Ctrl-C")
    rep.add_argument("--port", type=int, default=8088, help="port for --serve (default %(default)s)")
    rep.add_argument("--lab-config", help="lab.toml whose secrets must not appear (default: same search as pytest)")
    rep.add_argument("--labs", metavar="PATH", help="a fleet whose secrets must not appear (instead of --lab-config)")
    rep.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="instead: combine fleet shards' outputs (each DIR: summary.json + allure-results/) into --into",
    )
    rep.add_argument(
        "--into",
        type=Path,
        default=Path("reports"),
        help="with --merge: where the merged summary.json, allure-results/ and fleet.html go (default %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    # `workshop lab shell node1 -- CMD...`: what follows -- is the machine's, never our options
    command = given[given.index("--") + 1 :] if "--" in given else []
    args = build_parser().parse_args(given[: given.index("--")] if "--" in given else given)
    args.shell_command = command
    try:
        if args.command == "lab":
            return cli_lab.run(args)
        if args.command == "janitor":
            return _janitor(args)
        if args.command == "checks":
            return _checks(args)
        if args.command == "report":
            return _report(args)
        if args.command == "break":
            return _break(args)
        if args.command == "fix":
            return _fix(args)
        if args.command == "matrix":
            return _matrix(args)
        if args.command == "app":
            return _app(args)
        if args.command in ("solve", "check"):
            return cli_guide.run(args)
    except ConfigError as e:
        print(f"workshop: {e.message}", file=sys.stderr)
        return 4
    except WorkshopError as e:
        print(f"workshop: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("workshop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workshop break --list | head`
        sys.stderr.close()
        return 0
    return 2


def _janitor(args: argparse.Namespace) -> int:
    from pytest_workshop import janitor
    from pytest_workshop.config import resolve

    cfg = resolve(args.lab_config)
    # First what dead runs left *broken*: a fault a killed check injected stays until restored.
    restored, errors = janitor.restore_orphaned_faults(cfg, dry_run=args.dry_run)
    report = janitor.sweep(cfg, dry_run=args.dry_run, include_live=args.all)
    for line in restored:
        print(f"{'would restore' if args.dry_run else 'restored'} fault {line}")
    verb = "would remove" if args.dry_run else "removed"
    for line in report.removed:
        print(f"{verb} {line}")
    for line in [*errors, *report.errors]:
        print(f"could not clean: {line}", file=sys.stderr)
    if not report.removed and not restored:
        print("nothing left behind")
    return 1 if report.errors or errors else 0


def _break(args: argparse.Namespace) -> int:
    from pytest_workshop.faults import Breaker, scenarios

    if args.list:
        for s in scenarios.SCENARIOS:
            print(f"{s.name:<30} {s.component:<10} {s.description}")
            print(f"{'':<30} {'':<10} detected by {', '.join(s.detected_by)}")
        return 0
    if not args.scenario:
        print("workshop break: name a scenario, or --list", file=sys.stderr)
        return 2
    lab = one_lab(args)
    breaker = Breaker(lab, allowed=True)  # this command is the explicit request; lab.toml must agree
    entry = breaker.inject(args.scenario, origin="instructor")
    detail = ", ".join(f"{k} {v}" for k, v in entry.data.items() if k != "component")
    print(f"injected {entry.scenario} into {lab.name}" + (f" ({detail})" if detail else ""))
    again = f" --labs {args.labs} --lab {args.lab}" if args.labs else ""
    print(f"restore with: workshop fix {entry.scenario}{again}   (or `workshop fix --all{again}`)")
    return 0


def _fix(args: argparse.Namespace) -> int:
    from pytest_workshop.faults import Breaker

    if not args.all and not args.scenario:
        print("workshop fix: name a scenario, or --all", file=sys.stderr)
        return 2
    lab = one_lab(args)
    # Restoring is always allowed: it only ever undoes what the journal says was done.
    breaker = Breaker(lab, allowed=True)
    done = breaker.restore_all(None if args.all else args.scenario)
    print("\n".join(f"restored {name}" for name in done) if done else "nothing to restore")
    return 0


def _app(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pytest_workshop.components import docker, microservices
    from pytest_workshop.config import resolve

    lab = resolve(args.lab_config)
    if lab.docker is None:
        raise WorkshopError(f"{lab.source} has no [docker] section", hint="the app is built on the lab's engines")
    for host in lab.swarm_hosts:
        client = docker.connect(replace(lab.docker, host=host), lab.timeouts)
        try:
            print(f"{microservices.APP_IMAGE} on {host}: {microservices.ensure_app_image(client)}")
        finally:
            client.close()
    print("deploy it with:\n  " + microservices.deploy_command(lab.app.stack, lab.app.etcd_endpoints))
    return 0


def _matrix(args: argparse.Namespace) -> int:
    import tempfile

    from pytest_workshop.config import resolve
    from pytest_workshop.faults import matrix

    lab = resolve(args.lab_config)
    if lab.path is None:
        print("workshop matrix: needs a lab.toml (--lab-config) that says allow_breakage = true", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as work:
        rows, problems = matrix.run(lab, lab.path, repo, Path(work))
    text = matrix.table(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n" + "\n".join(problems) + "\n")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _report(args: argparse.Namespace) -> int:
    from pytest_workshop.config import resolve
    from pytest_workshop.report import html
    from pytest_workshop.report.redact import Redactor, config_secrets

    if args.labs:
        from pytest_workshop.fleet import read_fleet

        redact = Redactor([secret for lab in read_fleet(Path(args.labs)) for secret in config_secrets(lab)])
    else:
        redact = Redactor(config_secrets(resolve(args.lab_config)))
    if args.merge:
        from pytest_workshop.report.merge import merge

        merged = merge(args.merge, args.into, redact)
        print(
            f"merged {len(args.merge)} shards, {len(merged['labs'])} labs, into {args.into}: summary.json, fleet.html"
            + (", allure-results/" if (args.into / "allure-results").is_dir() else "")
        )
        print(f"  the Allure report of all of them: workshop report --results {args.into / 'allure-results'}")
        return 0
    single = args.single_file if str(args.single_file) not in ("", ".") else None
    t0 = time.monotonic()
    written = html.generate(args.results, args.out, single, redact)
    print(f"report written in {time.monotonic() - t0:.1f} s: " + ", ".join(str(p) for p in written))
    if args.serve:
        html.serve(args.out, args.port)
    return 0


def _checks(args: argparse.Namespace) -> int:
    import pytest

    paths = args.paths or [str(Path(__file__).resolve().parents[1] / "suites")]
    return int(pytest.main(["-q", "--workshop-checks", "-p", "no:cacheprovider", *paths]))


if __name__ == "__main__":
    sys.exit(main())
