"""A service's own account of its last failure: the last error in its log, and what it means.

A service that runs and answers may still fail every request (kuryr-libnetwork whose
credentials Keystone refuses answers Docker with a bare HTTP 500): the reason is in its log
only. ``last_error`` finds the newest error of the last few minutes in the log files the lab
names (``[lab.logs]``); ``meaning`` reads it like explain.py reads an API's error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pytest_workshop.components.explain import neutron_refusal, quote
from pytest_workshop.components.service_path import StateOf

RECENT = timedelta(minutes=5)  # an older error is another fault's, not this one's
JUST_NOW = timedelta(seconds=30)  # what a service logs of a request that failed now
TAIL_BYTES = 64 * 1024
# oslo.log, Python logging and most daemons: "2026-12-04 18:56:53.123 ..." (or with a T)
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)")
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL|Traceback \(most recent call last\))")
# the last line of a traceback: "keystoneauth1.exceptions.http.Unauthorized: The request ..."
EXCEPTION_LINE = re.compile(
    r"^(?:\S+ )*?([A-Za-z_][\w.]*(?:Error|Exception|Unauthorized|Forbidden|Failure|NotFound)): (.+)"
)


@dataclass(frozen=True)
class LogError:
    path: Path
    line: str
    when: datetime | None

    def quoted(self, limit: int = 220) -> str:
        return quote(self.line, limit)


def last_error(
    paths: tuple[Path, ...] | list[Path], now: datetime | None = None, within: timedelta = RECENT
) -> LogError | None:
    """The newest error line (a traceback's exception line where there is one) of the last
    ``within`` in any of ``paths``; None if there is none, or no log can be read."""
    now = now or datetime.now()
    found: list[LogError] = []
    for path in paths:
        text = tail(path)
        if text is not None:
            error = _last_in(path, text.splitlines())
            if error is not None and error.when is None:  # a log without stamps: its last write dates it
                error = LogError(error.path, error.line, _modified(path))
            if error is not None and (error.when is None or now - error.when <= within):
                found.append(error)
    if not found:
        return None
    return max(found, key=lambda e: e.when or datetime.min)


def _modified(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime)
    except OSError:
        return None


def tail(path: Path) -> str | None:
    """The last ``TAIL_BYTES`` of a log (also report/evidence.py's), or None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _last_in(path: Path, lines: list[str]) -> LogError | None:
    when: datetime | None = None
    last: LogError | None = None
    for line in lines:
        stamp = STAMP.match(line)
        if stamp:
            try:
                when = datetime.fromisoformat(stamp.group(1).replace("T", " "))
            except ValueError:
                pass
        exception = EXCEPTION_LINE.match(line.strip())
        if exception:  # a traceback's last line (or a logged exception) says most
            last = LogError(path, f"{exception.group(1)}: {exception.group(2)}", when)
        elif ERROR_LINE.search(line) and "Traceback" not in line:
            last = LogError(path, line.strip(), when)
    return last


def meaning(error: LogError, service: str, config_hint: str, refusals: bool = True) -> tuple[str, str] | None:
    """(what the error says happened, what to do) for the errors a lab's services log when
    something around them is wrong; None for the others (the line itself is then the evidence).
    ``config_hint`` names where the service's own credentials are (kuryr.conf's [neutron]);
    ``refusals``: Neutron's refusals of a request count (not for a service that does not answer)."""
    text = error.line
    if re.search(r"HTTP 401|Unauthorized|requires authentication", text):
        return (
            f"Keystone refuses {service}'s own credentials (HTTP 401)",
            f"fix the credentials {config_hint} (a Keystone user's: `openstack user show`), then restart {service}",
        )
    if re.search(r"HTTP 403|Forbidden", text):
        return (
            f"{service}'s user lacks a role it needs (HTTP 403)",
            f"give the user {config_hint} the admin role (`openstack role add --user USER --project PROJECT admin`)",
        )
    if re.search(r"EndpointNotFound|endpoint for \w+ service in .* not found", text):
        return (
            f"{service} finds no endpoint it needs in Keystone's catalogue (for its region and interface)",
            f"set region_name and endpoint_type {config_hint} to the catalogue's (`openstack endpoint list`), "
            f"then restart {service}",
        )
    refused = neutron_refusal(text) if refusals else None
    if refused is not None:
        return refused
    if re.search(r"Connection refused|Failed to establish a new connection|Unable to establish connection", text):
        return (
            f"{service} cannot reach a service it uses",
            f"the URL in its log is the one it cannot reach: start that service, or fix the URL {config_hint}",
        )
    return None


# how a message says what the lab's control reported of a service (verdict.py then adds no
# "see `workshop lab status`", but still what else the control reports down)
CONTROL_SAYS = "says the lab's control"


@dataclass(frozen=True)
class Witness:
    """What the lab says of one service beside its own answers: the lab control's state of it
    (None where the lab cannot tell) and its log's last error."""

    component: str
    member: str
    state_of: StateOf | None = None
    logs: tuple[Path, ...] = ()

    def state(self) -> str | None:
        return self.state_of(self.component, self.member) if self.state_of is not None else None

    def last_error(self, within: timedelta = RECENT) -> LogError | None:
        return last_error(self.logs, within=within)
