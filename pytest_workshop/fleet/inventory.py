"""Reading a fleet: a directory of lab.toml files, a fleet file, or an Ansible inventory.

Every lab becomes a LabConfig through the same validation as a lab.toml (config/loader.py), so a
bad value is refused with the same words, plus the file and the lab it is in.

Fleet file (TOML, any name ending .toml with a ``[labs]`` table): most attendee labs differ only
in an address and a password, so labs name their differences and ``[defaults]`` says the rest::

    [defaults.docker]
    host = "ssh://root@{address}"
    [defaults.etcd]
    endpoints = ["http://{address}:2379"]
    username = "root"
    password = "{password}"

    [labs.attendee-01]
    address = "10.0.0.11"        # a variable: any key of a lab that is not a lab.toml section
    password = "s3cret"          # variables named like secrets are redacted everywhere
    [labs.attendee-02]
    address = "10.0.0.12"
    password = "other"
    swarm = { nodes = 1 }        # a section of its own, merged over [defaults.swarm]

Ansible inventory (YAML or INI): one lab per host, named by its inventory name; variables from
``all``, then its groups (outer first), then the host. The mapping (README, "Instructors"):

- ``workshop_<section>_<key>`` is ``[<section>] <key>`` of lab.toml: ``workshop_etcd_endpoints``,
  ``workshop_docker_host``, ``workshop_docker_tls_verify``, ``workshop_docker_cert_path``,
  ``workshop_openstack_cloud``, ``workshop_lab_allow_breakage``...
- ``workshop_components``: which components the lab has besides those configured that way
  (default ``[docker, etcd]``: every lab machine of the workshop runs both).
- ``ansible_host`` (default: the inventory name), ``ansible_user`` (default root) and
  ``ansible_port`` give ``[lab] host = "ssh://user@host:port"`` (testinfra), and, unless set,
  ``[docker] host = "ssh://user@host"`` and ``[etcd] endpoints = ["http://host:2379"]``.
- ``{{ var }}`` in a value is replaced by that host variable (only this form of Jinja).
- ``ansible_password``, ``ansible_ssh_pass``, ``ansible_become_pass(word)`` and any variable whose
  name says password, secret or token are redacted from every output.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_workshop.config.loader import SCHEMA, from_mapping, load_file
from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import ConfigError

ENV_LABS = "WORKSHOP_LABS"
SECTIONS = tuple(SCHEMA)  # lab, timeouts, app, docker, swarm, etcd, openstack, kuryr
DEFAULT_COMPONENTS = ("docker", "etcd")
COMPONENT_SECTIONS = ("docker", "swarm", "etcd", "openstack", "kuryr")
SECRET_WORDS = ("password", "passwd", "pass", "secret", "token")
FIX_KINDS = "give a directory of lab.toml files, a fleet file (.toml with [labs]) or an Ansible inventory (.yml, .ini)"


def read_fleet(path: Path) -> list[LabConfig]:
    """Every lab of the fleet at ``path``, validated; refuses the first problem found."""
    if path.is_dir():
        labs = _directory(path)
    elif not path.is_file():
        raise ConfigError(str(path), "", "not found (--labs or $WORKSHOP_LABS)", FIX_KINDS)
    elif path.suffix == ".toml":
        labs = _fleet_file(path)
    elif path.suffix in (".yml", ".yaml"):
        labs = list(_ansible_labs(path, _ansible_yaml_hosts(path)))
    else:
        labs = list(_ansible_labs(path, _ansible_ini_hosts(path)))
    if not labs:
        raise ConfigError(str(path), "", "describes no lab", FIX_KINDS)
    seen: dict[str, str] = {}
    for lab in labs:
        if lab.name in seen:
            raise ConfigError(
                str(path),
                f"lab {lab.name}",
                f"two labs have this name ({seen[lab.name]}, {lab.source})",
                "give each lab its own name ([lab] name, or the inventory name)",
            )
        seen[lab.name] = lab.source
    return labs


# --- a directory of lab.toml files ------------------------------------------------------------------


def _directory(path: Path) -> list[LabConfig]:
    return [load_file(f, source_label="--labs", default_name=f.stem) for f in sorted(path.glob("*.toml"))]


# --- a fleet file --------------------------------------------------------------------------------------

VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fleet_file(path: Path) -> list[LabConfig]:
    data = _toml(path)
    where = str(path)
    if "labs" not in data and set(data) <= set(SECTIONS):
        return [load_file(path, source_label="--labs", default_name=path.stem)]  # one lab.toml: a fleet of one
    unknown = sorted(set(data) - {"defaults", "labs"})
    if unknown:
        raise ConfigError(
            where, unknown[0], "unknown table in a fleet file", "a fleet file has [defaults] and [labs.NAME] only"
        )
    if not isinstance(data.get("labs"), dict) or not data["labs"]:
        raise ConfigError(
            where, "labs", "no [labs.NAME] table", "add one [labs.NAME] table per lab (README, Instructors)"
        )
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(where, "defaults", "expected a table", "write it as [defaults.SECTION] tables")
    for section, values in defaults.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(
                where,
                f"defaults.{section}",
                "not a lab.toml section",
                f"use [defaults.X] with X one of {', '.join(SECTIONS)}",
            )
    labs = []
    for name, entry in data["labs"].items():
        lab_where = f"{path}: lab {name}"
        if not isinstance(entry, dict):
            raise ConfigError(where, f"labs.{name}", "expected a table", f"write it as [labs.{name}]")
        variables = {k: v for k, v in entry.items() if k not in SECTIONS}
        for k, v in variables.items():
            if isinstance(v, dict):
                raise ConfigError(
                    lab_where,
                    k,
                    "not a lab.toml section",
                    f"use one of {', '.join(SECTIONS)}, or make it a plain value",
                )
        variables["name"] = name
        mapping: dict[str, Any] = {s: dict(v) for s, v in defaults.items()}
        for section in SECTIONS:
            if isinstance(entry.get(section), dict):
                mapping[section] = {**mapping.get(section, {}), **entry[section]}
        mapping = _substitute(mapping, variables, lab_where)
        mapping.setdefault("lab", {})["name"] = name
        secrets = tuple(str(v) for k, v in variables.items() if _secret_name(k) and v)
        labs.append(_lab(mapping, lab_where, path, f"--labs {path} (lab {name})", secrets))
    return labs


def _substitute(value: Any, variables: Mapping[str, Any], where: str, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, variables, where, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, where, key) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in variables:
            raise ConfigError(
                where,
                key,
                f"unknown variable {{{m.group(1)}}}",
                f"define {m.group(1)} = ... in the lab's table, or fix the name",
            )
        return str(variables[m.group(1)])

    return VARIABLE.sub(one, value)


# --- Ansible inventories ---------------------------------------------------------------------------------

HostVars = dict[str, dict[str, Any]]


def _ansible_yaml_hosts(path: Path) -> HostVars:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read ({e})", "make the file readable UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(path), "", f"not valid YAML{at}", "correct the syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "not an Ansible inventory (expected groups such as all:)", FIX_KINDS)
    hosts: HostVars = {}
    everyone = (data.get("all") or {}).get("vars") or {} if isinstance(data.get("all"), dict | None) else {}

    def walk(group: str, body: Any, inherited: dict[str, Any]) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(
                str(path), group, "expected a group (hosts:, vars:, children:)", "indent its hosts under hosts:"
            )
        merged = {**inherited, **(body.get("vars") or {})}
        for host, host_vars in (body.get("hosts") or {}).items():
            hosts.setdefault(str(host), {}).update({**merged, **(host_vars or {})})
        for child, child_body in (body.get("children") or {}).items():
            walk(str(child), child_body, merged)

    for group, body in data.items():  # all: and any other top-level group; all's vars are everyone's
        walk(str(group), body, dict(everyone))
    return hosts


RANGE = re.compile(r"\[(\d+):(\d+)\]")


@dataclass
class _IniInventory:
    """An INI inventory as read: each group's hosts with their own variables, its variables, its children."""

    members: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)


def _ansible_ini_hosts(path: Path) -> HostVars:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read ({e})", "make the file readable UTF-8 text") from None
    read = _IniInventory()
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = (str(path), f"line {number}")
        if line.startswith("["):
            group, kind = _ini_section(line, where)
        else:
            _ini_entry(read, group, kind, line, where)
    return _ini_resolved(read)


def _ini_section(line: str, where: tuple[str, str]) -> tuple[str, str]:
    if not line.endswith("]"):
        raise ConfigError(
            *where, f"unclosed section header {line!r}", "write [group], [group:vars] or [group:children]"
        )
    group, _, kind = line[1:-1].partition(":")
    kind = kind or "hosts"
    if kind not in ("hosts", "vars", "children"):
        raise ConfigError(*where, f"unknown section kind :{kind}", "use [group], [group:vars] or [group:children]")
    return group, kind


def _ini_entry(read: _IniInventory, group: str, kind: str, line: str, where: tuple[str, str]) -> None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError as e:
        raise ConfigError(*where, f"cannot read ({e})", "close the quotes on that line") from None
    if kind == "children":
        read.children.setdefault(group, []).append(words[0])
    elif kind == "vars":
        key, eq, value = line.partition("=")
        if not eq:
            raise ConfigError(*where, "expected key=value", f"write variables of [{group}:vars] as key=value")
        read.group_vars.setdefault(group, {})[key.strip()] = _ini_value(value.strip())
    else:
        host_vars = {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq:
                raise ConfigError(
                    *where, f"expected key=value after the host, got {word!r}", "write host variables as key=value"
                )
            host_vars[key] = _ini_value(value)
        read.members.setdefault(group, []).extend((h, host_vars) for h in _expand(words[0]))


def _ini_resolved(read: _IniInventory) -> HostVars:
    """Each host's variables: all's, then its groups' from the outermost ancestor in, then its own."""
    parents: dict[str, list[str]] = {}
    for parent, kids in read.children.items():
        for kid in kids:
            parents.setdefault(kid, []).append(parent)

    def chain(g: str, seen: frozenset[str] = frozenset()) -> list[str]:
        """The group's ancestors, outermost first, then the group itself."""
        out: list[str] = []
        for p in parents.get(g, []):
            if p not in seen:
                out += [a for a in chain(p, seen | {g}) if a not in out]
        return [*out, g]

    hosts: HostVars = {}
    for g, entries in read.members.items():
        for host, own in entries:
            merged = dict(read.group_vars.get("all", {}))
            for a in chain(g):
                merged.update(read.group_vars.get(a, {}))
            hosts.setdefault(host, {}).update({**merged, **own})
    return hosts


def _ini_value(text: str) -> Any:
    """As Ansible reads INI values: Python literals (numbers, quoted strings, lists), else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _expand(pattern: str) -> list[str]:
    """attendee-[01:20] -> attendee-01 ... attendee-20 (Ansible's numeric host ranges)."""
    m = RANGE.search(pattern)
    if not m:
        return [pattern]
    width = len(m.group(1))
    return [
        name
        for i in range(int(m.group(1)), int(m.group(2)) + 1)
        for name in _expand(pattern[: m.start()] + str(i).zfill(width) + pattern[m.end() :])
    ]


TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
ANSIBLE_SECRETS = ("ansible_password", "ansible_ssh_pass", "ansible_become_pass", "ansible_become_password")


def _ansible_labs(path: Path, hosts: HostVars) -> Iterator[LabConfig]:
    for name, raw in hosts.items():
        where = f"{path}: lab {name}"
        host_vars = _templated({"inventory_hostname": name, "ansible_host": name, **raw}, where)
        mapping = _workshop_mapping(host_vars, where)
        address = str(host_vars.get("ansible_host", name))
        user = str(host_vars.get("ansible_user", "root"))
        port = host_vars.get("ansible_port")
        lab = mapping.setdefault("lab", {})
        lab["name"] = name
        lab.setdefault("host", f"ssh://{user}@{address}" + (f":{port}" if port else ""))
        components = host_vars.get("workshop_components", DEFAULT_COMPONENTS)
        if isinstance(components, str):
            components = [c.strip() for c in components.split(",") if c.strip()]
        for component in components:
            if component not in COMPONENT_SECTIONS:
                raise ConfigError(
                    where,
                    "workshop_components",
                    f"unknown component {component!r}",
                    f"use some of {', '.join(COMPONENT_SECTIONS)}",
                )
            mapping.setdefault(component, {})
        if "docker" in mapping:
            mapping["docker"].setdefault("host", f"ssh://{user}@{address}")
        if "etcd" in mapping:
            mapping["etcd"].setdefault("endpoints", [f"http://{address}:2379"])
        secrets = tuple(str(v) for k, v in host_vars.items() if (k in ANSIBLE_SECRETS or _secret_name(k)) and v)
        yield _lab(mapping, where, path, f"--labs {path} (host {name})", secrets, ansible=True)


def _templated(host_vars: dict[str, Any], where: str) -> dict[str, Any]:
    """``{{ var }}`` replaced by the host's variable, a few rounds deep (a var may use another)."""

    def fill(value: Any, key: str, depth: int = 0) -> Any:
        if isinstance(value, list):
            return [fill(v, key, depth) for v in value]
        if isinstance(value, dict):
            return {k: fill(v, key, depth) for k, v in value.items()}
        if not isinstance(value, str) or "{{" not in value:
            return value
        if depth > 5:
            raise ConfigError(where, key, "variables refer to each other in a loop", "break the loop")

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(
                    where,
                    key,
                    f"only {{{{ variable }}}} is supported here, not {{{{ {name} }}}}",
                    "give the value itself, or a plain variable",
                )
            if name not in host_vars:
                raise ConfigError(
                    where, key, f"{{{{ {name} }}}} is not a variable of this host", "define it, or fix the name"
                )
            return str(fill(host_vars[name], name, depth + 1))

        return TEMPLATE.sub(one, value)

    return {k: fill(v, k) for k, v in host_vars.items()}


def _workshop_mapping(host_vars: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    mapping: dict[str, dict[str, Any]] = {}
    for key, value in host_vars.items():
        if not key.startswith("workshop_") or key == "workshop_components":
            continue
        rest = key.removeprefix("workshop_")
        section = next((s for s in SECTIONS if rest.startswith(f"{s}_")), None)
        if section is None:
            raise ConfigError(
                where,
                key,
                "not a workshop variable",
                f"use workshop_<section>_<key> with a section of {', '.join(SECTIONS)} (e.g. workshop_etcd_endpoints), or workshop_components",
            )
        mapping.setdefault(section, {})[rest.removeprefix(f"{section}_")] = value
    return mapping


# --- shared ------------------------------------------------------------------------------------------------


def _lab(
    mapping: dict[str, Any], where: str, path: Path, source: str, secrets: tuple[str, ...], ansible: bool = False
) -> LabConfig:
    try:
        lab = from_mapping(mapping, name=where, base=path.parent, source=source)
    except ConfigError as e:
        if ansible and e.key and "." in e.key:
            # name the inventory variable the instructor wrote, not the lab.toml key it became
            raise ConfigError(e.source, f"workshop_{e.key.replace('.', '_')}", e.problem, e.fix) from None
        raise
    from dataclasses import replace

    return replace(lab, inventory_secrets=secrets) if secrets else lab


def _secret_name(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML ({e})", "correct the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read ({e})", "make the file readable UTF-8 text") from None
