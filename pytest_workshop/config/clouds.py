"""clouds.yaml: find it the way openstacksdk does and check a cloud exists. Never returns secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_workshop.errors import ConfigError


def search_path(env: Mapping[str, str]) -> list[Path]:
    """openstacksdk's order: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack, /etc/openstack."""
    paths = []
    if env.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(env["OS_CLIENT_CONFIG_FILE"]))
    paths += [
        Path.cwd() / "clouds.yaml",
        Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]
    return paths


def find_clouds_yaml(env: Mapping[str, str], source: str) -> Path | None:
    for path in search_path(env or os.environ):
        if path.is_file():
            return path
    return None


def searched(env: Mapping[str, str]) -> str:
    """The clouds.yaml paths openstacksdk looks at, for a message that says where nothing was found."""
    return ", ".join(str(p) for p in search_path(env or os.environ))


def read_clouds(path: Path, source: str, key: str = "") -> dict[str, Any]:
    """The ``clouds:`` mapping. ``source``/``key``: what pointed at this file, named in errors."""
    import yaml  # PyYAML; imported here so lab1/lab3 pay nothing for it

    via = f" (named by {source}: {key})" if key and source != str(path) else ""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read ({e.strerror}){via}", "make clouds.yaml readable") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or "syntax error"
        # PyYAML places errors found at the end of the input one line past the last line.
        where = f" at line {min(mark.line + 1, max(1, len(text.splitlines())))}" if mark else ""
        raise ConfigError(str(path), "", f"not valid YAML{where}: {problem}{via}", "correct the syntax there") from None
    if not isinstance(data, dict) or not isinstance(data.get("clouds"), dict):
        raise ConfigError(
            str(path),
            "clouds",
            "no 'clouds:' mapping",
            "start the file with 'clouds:' and one entry per cloud",
        )
    clouds: dict[str, Any] = data["clouds"]
    return clouds


def check_cloud(path: Path, cloud: str, source: str, key: str) -> None:
    clouds = read_clouds(path, source, key)
    if cloud not in clouds:
        names = ", ".join(sorted(clouds)) or "none"
        raise ConfigError(
            source,
            key,
            f"cloud {cloud!r} is not in {path} (clouds there: {names})",
            f"use one of: {names}, or point at the clouds.yaml that has {cloud!r}",
        )
    entry = clouds[cloud]
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), dict) or "auth_url" not in entry["auth"]:
        raise ConfigError(
            str(path),
            f"clouds.{cloud}.auth.auth_url",
            "missing",
            "add the Keystone URL, e.g. http://HOST/identity",
        )


SECRET_KEYS = ("password", "token", "application_credential_secret", "secret")


def secrets_in(path: Path) -> list[str]:
    """Every credential value in a clouds.yaml (all clouds), for redaction. Unreadable: none."""
    try:
        clouds = read_clouds(path, str(path))
    except ConfigError:
        return []
    found: list[str] = []
    for entry in clouds.values():
        auth = entry.get("auth") if isinstance(entry, dict) else None
        if isinstance(auth, dict):
            found += [str(v) for k, v in auth.items() if k in SECRET_KEYS and v]
    return found
