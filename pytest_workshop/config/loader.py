"""Find and load the lab configuration; every problem becomes one ConfigError line.

Order of sources: an explicit path (``--lab-config``), ``WORKSHOP_LAB_CONFIG``,
``./lab.toml``, then the ecosystem's conventions (DOCKER_*, ETCDCTL_*, OS_CLOUD,
DevStack's clouds.yaml) so an attendee needs no file at all.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_workshop.config.clouds import check_cloud, find_clouds_yaml, read_clouds, searched
from pytest_workshop.config.model import (
    ENV_CLOUD,
    DockerConfig,
    EtcdConfig,
    KuryrConfig,
    LabConfig,
    OpenStackConfig,
    SwarmConfig,
    Timeouts,
    strip_userinfo,
)
from pytest_workshop.errors import ConfigError

ENV_CONFIG = "WORKSHOP_LAB_CONFIG"
DEFAULT_FILE = "lab.toml"
CHECK_ID = re.compile(r"^LAB\d-\d\d$")
DEVSTACK_CLOUDS = Path("/etc/openstack/clouds.yaml")


def resolve(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LabConfig:
    """Return the lab configuration from the first source that exists."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if explicit:
        return load_file(_absolute(Path(explicit), cwd), source_label="--lab-config")
    if env.get(ENV_CONFIG):
        return load_file(_absolute(Path(env[ENV_CONFIG]), cwd), source_label=ENV_CONFIG)
    local = cwd / DEFAULT_FILE
    if local.is_file():
        return load_file(local, source_label="./lab.toml")
    return from_environment(env)


def _absolute(path: Path, cwd: Path) -> Path:
    return path if path.is_absolute() else cwd / path


def load_file(path: Path, source_label: str = "file") -> LabConfig:
    name = str(path)
    if path.is_dir():
        raise ConfigError(
            name,
            "",
            f"is a directory, not a lab.toml file ({source_label})",
            f"give the file's path, e.g. {path / DEFAULT_FILE}",
        )
    if not path.is_file():
        raise ConfigError(name, "", "file not found", f"check the path given by {source_label}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(name, "", f"not valid TOML ({e})", "correct the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(name, "", f"cannot read ({e})", "make the file readable UTF-8 text") from None
    return from_mapping(data, name=name, base=path.parent, source=f"{source_label} {path}", path=path)


# --- schema-driven parsing of lab.toml -------------------------------------------------------

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


SCHEMA: dict[str, tuple[type, dict[str, Parser]]] = {
    "lab": (
        object,
        {"name": p_str, "allow_breakage": p_bool, "host": p_str, "logs": p_component_logs, "control": p_control},
    ),
    "timeouts": (
        Timeouts,
        {
            "connect": p_seconds,
            "request": p_seconds,
            "check": p_seconds,
            "converge": p_seconds,
            "checks": p_check_timeouts,
        },
    ),
    "docker": (
        DockerConfig,
        {
            "host": p_docker_host,
            "tls_verify": p_bool,
            "cert_path": p_readable_dir,
            "test_image": p_str,
            "pull": p_bool,
        },
    ),
    "etcd": (
        EtcdConfig,
        {
            "endpoints": p_endpoint_list,
            "cacert": p_readable_file,
            "cert": p_readable_file,
            "key": p_readable_file,
            "username": p_str,
            "password": p_str,
            "members": p_count,
        },
    ),
    "swarm": (
        SwarmConfig,
        {"managers": p_count, "nodes": p_count, "routing_mesh": p_bool, "hosts": p_docker_host_list},
    ),
    "openstack": (OpenStackConfig, {"cloud": p_str, "clouds_yaml": p_readable_file, "admin_cloud": p_str}),
    "kuryr": (KuryrConfig, {"network_driver": p_str, "ipam_driver": p_str, "docker_host": p_docker_host}),
}


def _section(data: Mapping[str, Any], section: str, source: str, base: Path) -> dict[str, Any] | None:
    if section not in data:
        return None
    raw = data[section]
    if not isinstance(raw, dict):
        raise ConfigError(source, section, "expected a table", f"write it as a [{section}] section")
    _, fields = SCHEMA[section]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, f"{section}.{key}", "unknown key", f"remove it or use one of: {known}")
        values[key] = fields[key](value, Ctx(source, base, f"{section}.{key}"))
    return values


def from_mapping(data: Mapping[str, Any], name: str, base: Path, source: str, path: Path | None = None) -> LabConfig:
    """Build a LabConfig from parsed TOML. A component is present when its section is."""
    for section in data:
        if section not in SCHEMA:
            known = ", ".join(f"[{s}]" for s in SCHEMA)
            raise ConfigError(name, section, "unknown section", f"remove it or use one of: {known}")
    lab = _section(data, "lab", name, base) or {}
    timeouts = Timeouts(**(_section(data, "timeouts", name, base) or {}))
    parts: dict[str, Any] = {}
    for component in ("docker", "swarm", "etcd", "openstack", "kuryr"):
        values = _section(data, component, name, base)
        if values is not None:
            parts[component] = SCHEMA[component][0](**values)
    docker = parts.get("docker")
    if docker and docker.tls_verify and docker.cert_path is None:
        raise ConfigError(
            name,
            "docker.cert_path",
            "tls_verify = true needs the client certificates",
            'add cert_path = "/path/to/certs"',
        )
    etcd = parts.get("etcd")
    if etcd:
        _check_etcd_tls(etcd, name)
    swarm = parts.get("swarm")
    if swarm:
        _check_swarm(swarm, docker, name)
    openstack = parts.get("openstack")
    if openstack:
        clouds_yaml = openstack.clouds_yaml or find_clouds_yaml({}, name)
        if clouds_yaml is None:
            raise ConfigError(
                name, "openstack", f"no clouds.yaml for cloud {openstack.cloud!r} (searched {searched({})})",
                'set clouds_yaml = "/path/to/clouds.yaml" in [openstack], or create one of those files',
            )  # fmt: skip
        for key, cloud in (
            ("openstack.cloud", openstack.cloud),
            ("openstack.admin_cloud", openstack.admin_cloud),
        ):
            if cloud:
                check_cloud(clouds_yaml, cloud, source=name, key=key)
        parts["openstack"] = OpenStackConfig(openstack.cloud, clouds_yaml, openstack.admin_cloud)
    return LabConfig(
        name=lab.get("name", path.parent.name if path else "lab"),
        source=source,
        path=path,
        allow_breakage=lab.get("allow_breakage", False),
        host=lab.get("host", "local://"),
        logs=lab.get("logs", {}),
        control=lab.get("control"),
        timeouts=timeouts,
        **parts,
    )


def _check_swarm(swarm: SwarmConfig, docker: DockerConfig | None, source: str) -> None:
    if docker is None and not swarm.hosts:
        raise ConfigError(
            source, "swarm", "a swarm with no engine to reach it by",
            'add a [docker] section (host = a manager\'s engine) or [swarm] hosts = ["tcp://NODE:2376", ...]',
        )  # fmt: skip
    if swarm.expected_managers > swarm.expected_nodes:
        raise ConfigError(
            source, "swarm.managers", f"{swarm.expected_managers} managers in a swarm of {swarm.expected_nodes} nodes",
            "managers are nodes too: at most [swarm] nodes",
        )  # fmt: skip


def _check_etcd_tls(etcd: EtcdConfig, source: str) -> None:
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


# --- conventions: no file at all ------------------------------------------------------------


def from_environment(env: Mapping[str, str]) -> LabConfig:
    """The configuration an attendee gets with no file: what docker, etcdctl and openstack would use."""
    docker = _docker_from_env(env)
    etcd = _etcd_from_env(env)
    openstack = _openstack_from_env(env)
    used = [k for k in ("DOCKER_HOST", "ETCDCTL_ENDPOINTS", "OS_CLOUD") if env.get(k)]
    source = "environment conventions" + (f" ({', '.join(used)})" if used else " (defaults)")
    return LabConfig(
        name=env.get("HOSTNAME") or os.uname().nodename,
        source=source,
        # Conventions never allow breakage: only a lab.toml written for that purpose can.
        allow_breakage=False,
        docker=docker,
        # A workshop machine's engine is its Swarm; lab2 looks at it through [docker] host.
        swarm=SwarmConfig(),
        etcd=etcd,
        openstack=openstack,
        kuryr=_kuryr_from_env(),
    )


# Where DevStack's kuryr-libnetwork plugin registers itself with Docker
KURYR_SPECS = (Path("/usr/lib/docker/plugins/kuryr/kuryr.spec"), Path("/etc/docker/plugins/kuryr.spec"))


def _kuryr_from_env() -> KuryrConfig | None:
    return KuryrConfig() if any(p.is_file() for p in KURYR_SPECS) else None


def _docker_from_env(env: Mapping[str, str]) -> DockerConfig:
    host = env.get("DOCKER_HOST") or DockerConfig.host
    ctx = Ctx("environment", Path.cwd(), "DOCKER_HOST")
    p_docker_host(host, ctx, example="export DOCKER_HOST=unix:///var/run/docker.sock (or tcp://HOST:2376)")
    # docker's own rule: DOCKER_TLS_VERIFY set to anything but "" or "0" turns verification on.
    tls_verify = env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    cert_path = None
    if tls_verify or env.get("DOCKER_CERT_PATH"):
        raw = env.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")
        cert_path = p_readable_dir(raw, Ctx("environment", Path.cwd(), "DOCKER_CERT_PATH"))
    return DockerConfig(host=host, tls_verify=tls_verify, cert_path=cert_path)


def _etcd_from_env(env: Mapping[str, str]) -> EtcdConfig:
    ctx = Ctx("environment", Path.cwd(), "ETCDCTL_ENDPOINTS")
    files: dict[str, Path] = {}
    for var, attr in (("ETCDCTL_CACERT", "cacert"), ("ETCDCTL_CERT", "cert"), ("ETCDCTL_KEY", "key")):
        if env.get(var):
            files[attr] = p_readable_file(env[var], Ctx("environment", Path.cwd(), var))
    raw = env.get("ETCDCTL_ENDPOINTS")
    if raw:
        scheme = "https" if files.get("cacert") else "http"
        # etcdctl accepts bare HOST:PORT; give it the scheme etcdctl would use.
        eps = [e if "://" in e else f"{scheme}://{e}" for e in (x.strip() for x in raw.split(",")) if e]
        endpoints = p_endpoint_list(
            eps, ctx, example="export ETCDCTL_ENDPOINTS=http://127.0.0.1:2379,http://10.0.0.8:2379"
        )
    else:
        endpoints = EtcdConfig.endpoints
    username = password = None
    user = env.get("ETCDCTL_USER")
    if user:
        username, _, password = user.partition(":")
        password = password or env.get("ETCDCTL_PASSWORD") or None
        if not password:
            raise ConfigError(
                "environment",
                "ETCDCTL_USER",
                "a user without a password",
                "write ETCDCTL_USER=name:password or set ETCDCTL_PASSWORD",
            )
    etcd = EtcdConfig(
        endpoints=endpoints,
        username=username,
        password=password,
        cacert=files.get("cacert"),
        cert=files.get("cert"),
        key=files.get("key"),
    )
    _check_etcd_tls(etcd, "environment")
    return etcd


def _openstack_from_env(env: Mapping[str, str]) -> OpenStackConfig | None:
    cloud = env.get("OS_CLOUD")
    if cloud:
        clouds_yaml = find_clouds_yaml(env, "environment")
        if clouds_yaml is None:
            raise ConfigError(
                "environment",
                "OS_CLOUD",
                f"cloud {cloud!r} set but no clouds.yaml found (searched {searched(env)})",
                "create ~/.config/openstack/clouds.yaml or /etc/openstack/clouds.yaml, or unset OS_CLOUD",
            )
        check_cloud(clouds_yaml, cloud, source="environment", key="OS_CLOUD")
        admin = f"{cloud}-admin" if f"{cloud}-admin" in read_clouds(clouds_yaml, "environment", "OS_CLOUD") else None
        return OpenStackConfig(cloud=cloud, clouds_yaml=clouds_yaml, admin_cloud=admin)
    if env.get("OS_AUTH_URL"):
        # a sourced openrc: openstacksdk builds the cloud "envvars" from the OS_* variables
        for var in ("OS_USERNAME", "OS_PASSWORD"):
            if not env.get(var) and not env.get("OS_TOKEN") and not env.get("OS_APPLICATION_CREDENTIAL_SECRET"):
                raise ConfigError(
                    "environment", var, "OS_AUTH_URL is set but this is not", "source the complete openrc file"
                )
        return OpenStackConfig(cloud=ENV_CLOUD, clouds_yaml=None)
    if DEVSTACK_CLOUDS.is_file():
        # DevStack writes this file with a 'devstack' cloud; a machine with it has OpenStack.
        check_cloud(DEVSTACK_CLOUDS, "devstack", source=str(DEVSTACK_CLOUDS), key="clouds.devstack")
        return OpenStackConfig(cloud="devstack", clouds_yaml=DEVSTACK_CLOUDS, admin_cloud="devstack-admin")
    return None
