"""Secrets never leave the process: every text that goes to the terminal, JUnit, Allure results,
the summary or the HTML report passes through a Redactor first.

Secrets come from the lab's configuration (clouds.yaml of every cloud, etcd password, user:password@
in Docker/etcd/testinfra URLs), from openrc variables (OS_PASSWORD, OS_TOKEN, ...), from
``--redact VALUE``, and from tokens issued during the run (the openstack fixtures add theirs).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "*****"
MIN_LENGTH = 4  # shorter "secrets" (e.g. "pw") would mask ordinary words everywhere
ENV_SECRETS = re.compile(r"^OS_(PASSWORD|TOKEN|APPLICATION_CREDENTIAL_SECRET)$|^ETCDCTL_PASSWORD$")


class Redactor:
    """Replaces every known secret with ``*****``. Thread-safe; secrets can be added later."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._rx: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            # longest first: a secret that contains another must be masked whole
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._rx = re.compile("|".join(re.escape(s) for s in ordered))

    def __bool__(self) -> bool:
        return self._rx is not None

    def text(self, value: str) -> str:
        rx = self._rx
        return rx.sub(MASK, value) if rx is not None else value

    def contains(self, value: Any) -> bool:
        rx = self._rx
        return bool(rx is not None and rx.search(str(value)))

    def deep(self, value: Any) -> Any:
        """Redact strings inside lists, tuples and dicts (user properties, JSON data)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.deep(v) for v in value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        return value


def environment_secrets(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return [v for k, v in env.items() if ENV_SECRETS.match(k) and v]


def config_secrets(lab: Any) -> list[str]:
    """Every secret a LabConfig knows of (plus the environment's openrc ones)."""
    found = list(lab.secrets()) if lab is not None else []
    return found + environment_secrets()
