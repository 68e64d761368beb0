"""Reading one lab.toml (or environment) value: each reader checks its type and its sense and
fails with one line naming the source, the key and the fix (a ConfigError)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_workshop.config.model import APP_MODES, EtcdConfig, strip_userinfo
from pytest_workshop.errors import ConfigError

CHECK_ID = re.compile(r"^LAB\d-\d\d$")


Parser = Callable[[Any, "Ctx"], Any]


class Ctx:
    """Where a value came from, so errors can name the file and the key."""

    def __init__(self, source: str, base: Path, key: str) -> None:
        self.source, self.base, self.key = source, base, key

    def fail(self, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.source, self.key, problem, fix)


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )


def p_str(v: Any, c: Ctx) -> str:
    if not isinstance(v, str):
        raise c.fail(
            f"expected a string, got {_type_name(v)}",
            f'write it in quotes, e.g. {c.key.split(".")[-1]} = "..."',
        )
    return v


def p_bool(v: Any, c: Ctx) -> bool:
    if not isinstance(v, bool):
        raise c.fail(f"expected true or false, got {_type_name(v)} {v!r}", "write true or false without quotes")
    return v


def p_int(v: Any, c: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise c.fail(f"expected a whole number >= 0, got {v!r}", "write a number without quotes, e.g. 3")
    return v


def p_count(v: Any, c: Ctx) -> int:
    """A count of machines or members: at least one."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise c.fail(f"expected a whole number >= 1, got {v!r}", "write how many there are, e.g. 3 (a reduced lab: 1)")
    return v


def p_parallel(v: Any, c: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise c.fail(
            f"expected a whole number >= 1, got {v!r}",
            "write how many suites may run against this lab at once, e.g. 4 for a 2-core lab machine",
        )
    return v


def p_seconds(v: Any, c: Ctx) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise c.fail(f"expected a number of seconds > 0, got {v!r}", "write a number without quotes, e.g. 2.5")
    return float(v)


def p_str_list(v: Any, c: Ctx) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise c.fail(f"expected a non-empty list of strings, got {v!r}", 'write e.g. ["http://127.0.0.1:2379"]')
    return tuple(v)


def p_readable_file(v: Any, c: Ctx) -> Path:
    path = Path(p_str(v, c)).expanduser()
    if not path.is_absolute():
        path = c.base / path
    if not path.is_file() or not os.access(path, os.R_OK):
        raise c.fail(
            f"cannot read file {path}",
            "point it at an existing, readable file (relative paths start at lab.toml)",
        )
    return path


def p_readable_dir(v: Any, c: Ctx) -> Path:
    path = Path(p_str(v, c)).expanduser()
    if not path.is_absolute():
        path = c.base / path
    if not path.is_dir():
        raise c.fail(f"not a directory: {path}", "point it at the folder holding ca.pem, cert.pem and key.pem")
    return path


def p_endpoint_list(v: Any, c: Ctx, example: str = '["http://127.0.0.1:2379"]') -> tuple[str, ...]:
    eps = p_str_list(v, c)
    seen: set[str] = set()
    for ep in eps:
        if not re.match(r"^https?://[^/\s]+:\d+/?$", ep):
            raise c.fail(f"{strip_userinfo(ep)!r} is not a URL like http://HOST:PORT", f"write e.g. {example}")
        _check_port(ep, c, example)
        if ep.rstrip("/") in seen:
            raise c.fail(f"{strip_userinfo(ep)!r} is listed twice", "list each member's endpoint once")
        seen.add(ep.rstrip("/"))
    return tuple(ep.rstrip("/") for ep in eps)


def _check_port(url: str, c: Ctx, example: str) -> None:
    try:
        port = urlsplit(url).port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise c.fail(f"{strip_userinfo(url)!r} has a port outside 1-65535", f"write e.g. {example}")


DOCKER_HOST_EXAMPLE = '"unix:///var/run/docker.sock" or "tcp://HOST:2376"'


def p_docker_host(v: Any, c: Ctx, example: str = DOCKER_HOST_EXAMPLE) -> str:
    host = p_str(v, c)
    match = re.match(r"^(unix|tcp|ssh|npipe)://(.*)$", host)
    if not match:
        raise c.fail(f"{strip_userinfo(host)!r} is not a Docker host URL", f"write e.g. {example}")
    scheme, rest = match.groups()
    address = rest.split("@", 1)[-1]
    if not address.strip("/") or (scheme != "unix" and not urlsplit(host).hostname):
        raise c.fail(f"{strip_userinfo(host)!r} names no address", f"write e.g. {example}")
    _check_port(host, c, example)
    return host


def p_docker_host_list(v: Any, c: Ctx) -> tuple[str, ...]:
    return tuple(p_docker_host(h, c) for h in p_str_list(v, c))


def p_component_logs(v: Any, c: Ctx) -> dict[str, tuple[Path, ...]]:
    """[lab.logs] component = ["/path/to/log", ...]: tails attached to failed checks as evidence."""
    from pytest_workshop.config.model import COMPONENTS

    if not isinstance(v, dict):
        raise c.fail("expected a table of component = [log files]", '[lab.logs] then etcd = ["/var/log/etcd.log"]')
    out = {}
    for component, files in v.items():
        if component not in COMPONENTS:
            raise c.fail(f"unknown component {component!r}", f"use one of: {', '.join(COMPONENTS)}")
        paths = [Path(f).expanduser() for f in p_str_list(files, Ctx(c.source, c.base, f"{c.key}.{component}"))]
        out[component] = tuple(p if p.is_absolute() else c.base / p for p in paths)
    return out


def p_control(v: Any, c: Ctx) -> str:
    value = p_str(v, c)
    if not (value == "systemd" or value.startswith("embedded:/")):
        raise c.fail(f"{value!r} is not a lab control", 'write "systemd" or "embedded:/var/tmp/workshop-lab"')
    return value


def p_app_mode(v: Any, c: Ctx) -> str:
    value = p_str(v, c)
    if value not in APP_MODES:
        raise c.fail(
            f"{value!r} is not a mode",
            'write "attendee" (check the stack you deployed) or "reference" (the suite deploys the reference app)',
        )
    return value


def p_check_timeouts(v: Any, c: Ctx) -> dict[str, float]:
    if not isinstance(v, dict):
        raise c.fail("expected a table of check ID = seconds", '[timeouts.checks] then "LAB3-08" = 10')
    out: dict[str, float] = {}
    for check_id, seconds in v.items():
        sub = Ctx(c.source, c.base, f"{c.key}.{check_id}")
        if not CHECK_ID.match(check_id):
            raise sub.fail("not a check ID", "use an ID like LAB3-08 (see `workshop checks`)")
        out[check_id] = p_seconds(seconds, sub)
    return out


def check_etcd_tls(etcd: EtcdConfig, source: str) -> None:
    if bool(etcd.cert) != bool(etcd.key):
        raise ConfigError(
            source,
            "etcd.cert" if etcd.key else "etcd.key",
            "cert and key come as a pair",
            "set both cert and key, or neither",
        )
    if any(e.startswith("https://") for e in etcd.endpoints) and etcd.cacert is None:
        raise ConfigError(
            source, "etcd.cacert", "https endpoints need the cluster's CA", 'add cacert = "/path/to/ca.crt"'
        )
    if bool(etcd.username) != bool(etcd.password):
        raise ConfigError(
            source,
            "etcd.password" if etcd.username else "etcd.username",
            "username and password come as a pair",
            "set both, or neither",
        )
