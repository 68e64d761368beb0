"""What several `workshop` commands share: which lab a command acts on."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def lab_of_fleet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labs", metavar="PATH", help="a fleet (as pytest's --labs; default $WORKSHOP_LABS): act on --lab of it"
    )
    p.add_argument("--lab", metavar="NAME", help="with --labs: the attendee's lab, by its name in the fleet")


def one_lab(args: argparse.Namespace) -> Any:
    """The lab a command acts on: --lab of the --labs fleet, or the usual lab.toml search."""
    from pytest_workshop.config import resolve
    from pytest_workshop.errors import ConfigError
    from pytest_workshop.fleet import ENV_LABS, read_fleet

    fleet = getattr(args, "labs", None) or (os.environ.get(ENV_LABS) if getattr(args, "lab", None) else None)
    if not fleet:
        if getattr(args, "lab", None):
            raise ConfigError(
                "--lab", "", "names a lab of a fleet, but no fleet is given", "add --labs PATH (or set $WORKSHOP_LABS)"
            )
        return resolve(args.lab_config)
    labs = {lab.name: lab for lab in read_fleet(Path(fleet))}
    if args.lab not in labs:
        raise ConfigError(fleet, "--lab", f"no lab {args.lab!r} in this fleet", f"use one of {', '.join(sorted(labs))}")
    return labs[args.lab]


def lab_args(args: argparse.Namespace, lab: Any) -> list[str]:
    """The pytest options that pick the same lab: its fleet and name, or its lab.toml."""
    fleet = getattr(args, "labs", None) or (os.environ.get("WORKSHOP_LABS") if getattr(args, "lab", None) else None)
    if fleet:
        return ["--labs", str(fleet), "--lab", lab.name]
    if getattr(args, "lab_config", None):
        return ["--lab-config", str(args.lab_config)]
    return ["--lab-config", str(lab.path)] if lab.path else []
