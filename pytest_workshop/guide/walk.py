"""Running a guide's commands, as an attendee types them: block by block, on each machine a block
names, each block with the lab's environment file loaded and stopping at its first failing
command. What runs a script on a machine is the caller's (the embedded lab's shell, SSH); this
module only knows the guide.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from pytest_workshop.errors import WorkshopError
from pytest_workshop.guide import Commands, Step

ENV_FILE = "/etc/workshop/lab.env"
FAILED_MARK = "guide-walk: failed: "
# runs `script` on `machine`, with these variables set; returns (exit status, stdout and stderr)
RunOn = Callable[[str, str], tuple[int, str]]


class StepFailed(WorkshopError):
    """A guide's command failed, or printed something of another shape than the guide shows."""


@dataclass(frozen=True)
class Ran:
    step: str
    machine: str
    block: Commands
    output: str


def wrapped(script: str, saved: dict[str, str], machine: str) -> str:
    """The block as bash runs it: the lab's environment loaded (not on the instructor's machine),
    the values copied from earlier blocks set, stopping at (and naming) the first failing command."""
    lines = ["set -e", f"trap 'echo \"{FAILED_MARK}$BASH_COMMAND\" >&2' ERR"]
    if machine != "instructor":
        lines.insert(0, f"set -a; . {ENV_FILE}; set +a")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in saved.items()]
    return "\n".join([*lines, script])


def failing_command(output: str) -> str:
    found = re.findall(rf"^{re.escape(FAILED_MARK)}(.*)$", output, re.M)
    return found[-1] if found else "(the block)"


def run_step(step: Step, run_on: RunOn, saved: dict[str, str], first: int = 0, last: int | None = None) -> list[Ran]:
    """Run the step's blocks ``first`` to ``last`` (all by default) on their machines; the values a
    ``save=`` block prints go into ``saved`` for the next blocks. Raises StepFailed, naming the
    step, the machine and the command."""
    ran = []
    for block in step.commands[first:last]:
        for machine in block.machines:
            status, output = run_on(machine, wrapped(block.script, saved, machine))
            if status != 0:
                raise StepFailed(
                    f"step {step.number} ({step.title}), on {machine}: `{failing_command(output)}` exited {status}: "
                    f"{' '.join(output.split())[-300:]}",
                    hint=f"{step.guide}:{block.line}: the guide's command; run it by hand to see why",
                )
            missing = block.shape_matches(output)
            if missing is not None:
                raise StepFailed(
                    f"step {step.number}, on {machine}: the output has no line like {missing!r}: "
                    f"{' '.join(output.split())[-300:]}",
                    hint=f"{step.guide}:{block.line}: the guide shows another output than the command prints",
                )
            if block.save:
                saved[block.save] = output.strip().splitlines()[-1] if output.strip() else ""
            ran.append(Ran(step.number, machine, block, output))
    return ran
