"""Find and load the lab configuration; every problem becomes one ConfigError line.

Order of sources: an explicit path (``--lab-config``), ``WORKSHOP_LAB_CONFIG``,
``./lab.toml``, then the ecosystem's conventions (DOCKER_*, ETCDCTL_*, OS_CLOUD,
DevStack's clouds.yaml) so an attendee needs no file at all.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_workshop.config.clouds import check_cloud, find_clouds_yaml, searched
from pytest_workshop.config.environment import from_environment
from pytest_workshop.config.model import (
    LAB_SECTION_KEYS,
    LAB_TOML,
    AppConfig,
    DockerConfig,
    EtcdConfig,
    KuryrConfig,
    LabConfig,
    OpenStackConfig,
    SwarmConfig,
    Timeouts,
)
from pytest_workshop.config.values import (
    Ctx,
    Parser,
    check_etcd_tls,
    p_app_mode,
    p_bool,
    p_check_timeouts,
    p_component_logs,
    p_control,
    p_count,
    p_docker_host,
    p_docker_host_list,
    p_endpoint_list,
    p_parallel,
    p_readable_dir,
    p_readable_file,
    p_seconds,
    p_str,
    p_str_list,
)
from pytest_workshop.errors import ConfigError

__all__ = ["ENV_CONFIG", "from_environment", "from_mapping", "load_file", "resolve"]

ENV_CONFIG = "WORKSHOP_LAB_CONFIG"
DEFAULT_FILE = "lab.toml"


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


def load_file(path: Path, source_label: str = "file", default_name: str | None = None) -> LabConfig:
    """A lab.toml; its lab is named by [lab] name, else ``default_name``, else its folder."""
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
    if default_name is not None and isinstance(data.get("lab", {}), dict):
        data.setdefault("lab", {}).setdefault("name", default_name)
    return from_mapping(data, name=name, base=path.parent, source=f"{source_label} {path}", path=path)


# How each lab.toml value is read: by the field's type, unless the model's field metadata names a
# stricter reader (LAB_TOML). The sections and keys are the model's dataclasses and fields, so a
# field added there is a key here, checked the same way.
PARSERS_BY_TYPE: dict[str, Parser] = {
    "str": p_str,
    "str | None": p_str,
    "bool": p_bool,
    "float": p_seconds,
    "int | None": p_count,
    "Path | None": p_readable_file,
    "tuple[str, ...]": p_str_list,
}
PARSERS_BY_NAME: dict[str, Parser] = {
    "docker_host": p_docker_host,
    "docker_hosts": p_docker_host_list,
    "endpoints": p_endpoint_list,
    "directory": p_readable_dir,
    "check_timeouts": p_check_timeouts,
    "component_logs": p_component_logs,
    "control": p_control,
    "app_mode": p_app_mode,
    "parallel": p_parallel,
}


def _parsers(cls: type, only: tuple[str, ...] | None = None) -> dict[str, Parser]:
    out: dict[str, Parser] = {}
    for f in dataclasses.fields(cls):
        if only is None or f.name in only:
            kind = f.metadata.get(LAB_TOML)
            out[f.name] = PARSERS_BY_NAME[kind] if kind else PARSERS_BY_TYPE[str(f.type)]
    return out


SECTIONS: dict[str, type] = {
    "docker": DockerConfig,
    "swarm": SwarmConfig,
    "etcd": EtcdConfig,
    "openstack": OpenStackConfig,
    "kuryr": KuryrConfig,
}
SCHEMA: dict[str, tuple[type, dict[str, Parser]]] = {
    "lab": (object, _parsers(LabConfig, LAB_SECTION_KEYS)),
    "timeouts": (Timeouts, _parsers(Timeouts)),
    "app": (AppConfig, _parsers(AppConfig)),
    **{name: (cls, _parsers(cls)) for name, cls in SECTIONS.items()},
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
    app = AppConfig(**(_section(data, "app", name, base) or {}))
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
        check_etcd_tls(etcd, name)
    swarm = parts.get("swarm")
    if swarm:
        _check_swarm(swarm, docker, name)
    openstack = parts.get("openstack")
    if openstack:
        clouds_yaml = openstack.clouds_yaml or find_clouds_yaml({}, name)
        if clouds_yaml is None:
            raise ConfigError(
                name,
                "openstack",
                f"no clouds.yaml for cloud {openstack.cloud!r} (searched {searched({})})",
                'set clouds_yaml = "/path/to/clouds.yaml" in [openstack], or create one of those files',
            )
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
        allow_solve=lab.get("allow_solve", False),
        host=lab.get("host", "local://"),
        logs=lab.get("logs", {}),
        control=lab.get("control"),
        parallel=lab.get("parallel", LabConfig.parallel),
        timeouts=timeouts,
        app=app,
        **parts,
    )


def _check_swarm(swarm: SwarmConfig, docker: DockerConfig | None, source: str) -> None:
    if docker is None and not swarm.hosts:
        raise ConfigError(
            source,
            "swarm",
            "a swarm with no engine to reach it by",
            'add a [docker] section (host = a manager\'s engine) or [swarm] hosts = ["tcp://NODE:2376", ...]',
        )
    if swarm.expected_managers > swarm.expected_nodes:
        raise ConfigError(
            source,
            "swarm.managers",
            f"{swarm.expected_managers} managers in a swarm of {swarm.expected_nodes} nodes",
            "managers are nodes too: at most [swarm] nodes",
        )
