"""OpenStack through openstacksdk: connections with timeouts, a DevStack view, one-line errors.

openstacksdk is imported on first use only (it costs about a second), so suites without
OpenStack never pay for it. Credentials come from clouds.yaml or OS_* variables; they are handed
to openstacksdk and never formatted into a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pytest_workshop.config.model import ENV_CLOUD, OpenStackConfig, Timeouts, strip_userinfo
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

HINT_KEYSTONE = "start Keystone (DevStack: `sudo systemctl restart devstack@keystone`) and check the cloud's auth_url"
HINT_NEUTRON = (
    "start the Neutron API (DevStack: `sudo systemctl restart devstack@q-svc`); if it runs, it may be stuck "
    "on its database: check MariaDB and Neutron's log (journalctl -u devstack@q-svc)"
)
HINT_SERVER_ERROR = (
    "{service} answered but failed the request: read its log (DevStack: journalctl -u devstack@{unit}) "
    "and check its database (MariaDB: systemctl status mariadb)"
)
# Tag put on the Neutron objects a check creates itself, so the janitor can find them.
RUN_TAG = "pytest-workshop.run="


def auth_url(cfg: OpenStackConfig) -> str:
    """The Keystone URL of the configured cloud (for messages; no credentials)."""
    import os

    if cfg.clouds_yaml is None:
        return strip_userinfo(os.environ.get("OS_AUTH_URL", "?"))
    from pytest_workshop.config.clouds import read_clouds

    entry = read_clouds(cfg.clouds_yaml, str(cfg.clouds_yaml)).get(cfg.cloud, {})
    return strip_userinfo(str(entry.get("auth", {}).get("auth_url", "?")))


def credentials_source(cfg: OpenStackConfig, cloud: str) -> tuple[str, str]:
    """(where the credentials came from, what to check there) — for a 401, never the values."""
    if cfg.clouds_yaml is None:
        return (
            "the OS_* variables (a sourced openrc)",
            "check OS_PASSWORD (and OS_USERNAME, OS_PROJECT_NAME): source the openrc again",
        )
    where = f"cloud {cloud!r} in {cfg.clouds_yaml}"
    return where, f"check clouds.{cloud}.auth.password (and username, project_name) in {cfg.clouds_yaml}"


def explain(exc: BaseException, cfg: OpenStackConfig, cloud: str, timeout: float) -> WorkshopError:
    """keystoneauth/openstacksdk exceptions -> one line naming the service that failed and how.

    No answer (refused, reset, timed out) is ComponentUnavailable; an answer with a server error
    is a failure of the service that gave it (its log and its database), not "start it"."""
    from keystoneauth1 import exceptions as ka

    # openstacksdk wraps keystoneauth's errors in a bare SDKException (authorize() does): the
    # evidence is the original
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ka.ClientException):
        cause = cause.__cause__ or cause.__context__
    exc = cause or exc
    url = auth_url(cfg)
    status = getattr(exc, "http_status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, ka.Unauthorized) or status == 401:
        where, fix = credentials_source(cfg, cloud)
        return CheckFailed(f"Keystone at {url} rejected the credentials of {where}", hint=fix)
    if isinstance(exc, ka.EndpointNotFound | ka.CatalogException):
        return CheckFailed(
            f"the catalogue of cloud {cloud!r} has no such endpoint: {exc}",
            hint="register the service's endpoint in Keystone (`openstack endpoint list`)",
        )
    text = " ".join(str(exc).split())[:200] if str(exc) else type(exc).__name__
    target = _service_of(exc, url)
    keystone = target.startswith("Keystone")
    if isinstance(exc, ka.ConnectTimeout) or "timed out" in text.lower():
        # keystoneauth raises ConnectTimeout for read timeouts too: the service may be up but stuck
        return ComponentUnavailable(
            "openstack",
            f"{target} did not answer within {timeout:g} s ([timeouts] request; hung, overloaded, or waiting on its database?)",
            hint=HINT_KEYSTONE if keystone else HINT_NEUTRON,
        )
    if isinstance(exc, ka.ConnectFailure | ka.ConnectionError) or _is_dropped(exc):
        return ComponentUnavailable(
            "openstack", f"{target} is not answering", hint=HINT_KEYSTONE if keystone else HINT_NEUTRON
        )
    if status and status >= 500:
        service, unit = ("Keystone", "keystone") if keystone else ("Neutron", "q-svc")
        return CheckFailed(
            f"{target} answered HTTP {status}: {text}", hint=HINT_SERVER_ERROR.format(service=service, unit=unit)
        )
    if status == 403:
        return CheckFailed(
            f"{target} refused the request (HTTP 403): {text}",
            hint="this needs the admin role: use the admin cloud ([openstack] admin_cloud)",
        )
    return CheckFailed(f"OpenStack error for cloud {cloud!r}: {text}", hint="read the service's log")


def _is_dropped(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(s in text for s in ("RemoteDisconnected", "Connection reset", "Connection aborted", "ConnectionRefused"))


def _service_of(exc: BaseException, keystone_url: str) -> str:
    """Which service an error was about: its URL is on the exception or in the message."""
    text = f"{getattr(exc, 'url', '') or ''} {exc}"
    netloc = urlsplit(keystone_url).netloc
    if (netloc and netloc in text) or "/v3" in text or "auth/tokens" in text:
        return f"Keystone at {keystone_url}"
    for word in text.split():
        if word.startswith("http"):
            parts = urlsplit(word.rstrip(":,.)"))
            name = (
                "Neutron"
                if parts.port == 9696 or "/networking" in parts.path or "/v2.0" in parts.path
                else "the service"
            )
            return f"{name} at {parts.scheme}://{parts.netloc}"
    return f"Keystone at {keystone_url}"


def connect(cfg: OpenStackConfig, timeouts: Timeouts, admin: bool = False, bound: str = "request") -> Any:
    """An authenticated openstacksdk Connection; every HTTP call bounded by ``timeouts.request``
    (or by the [timeouts] entry ``bound`` names: ``network_create`` for a connection that creates
    Neutron networks and subnets, which with ML2/OVN take seconds on a busy machine)."""
    import openstack.config
    import openstack.connection

    cloud = (cfg.admin_cloud or cfg.cloud) if admin else cfg.cloud
    files = [str(cfg.clouds_yaml)] if cfg.clouds_yaml else []
    try:
        loader = openstack.config.OpenStackConfig(config_files=files, load_envvars=cfg.cloud == ENV_CLOUD)
        region = loader.get_one(cloud=cloud, api_timeout=getattr(timeouts, bound))
        conn = openstack.connection.Connection(config=region, connect_retries=0)
    except openstack.exceptions.ConfigException as e:
        raise WorkshopError(f"cloud {cloud!r}: {e}", hint="check clouds.yaml") from None
    try:
        conn.authorize()
    except Exception as e:
        conn.close()
        raise explain(e, cfg, cloud, timeouts.request) from None
    return conn


def call(cfg: OpenStackConfig, cloud: str, timeout: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call and turn its failure into a WorkshopError (for library users and fixtures)."""
    try:
        return fn(*args, **kwargs)
    except WorkshopError:
        raise
    except Exception as e:
        raise explain(e, cfg, cloud, timeout) from None


@dataclass(frozen=True)
class Endpoint:
    service_type: str
    service_name: str
    interface: str
    url: str


@dataclass(frozen=True)
class Agent:
    agent_type: str
    host: str
    binary: str
    alive: bool
    admin_state_up: bool


@dataclass
class DevStackView:
    """What an attendee looks at on a DevStack: who they are, the catalogue, Neutron's extensions
    and agents. Read once when built; `agents` and `extensions` need admin on most clouds."""

    cloud: str
    auth_url: str
    user_id: str
    project_id: str
    endpoints: list[Endpoint] = field(default_factory=list)
    extensions: set[str] = field(default_factory=set)
    agents: list[Agent] = field(default_factory=list)

    def endpoint(self, service_type: str, interface: str = "public") -> Endpoint | None:
        return next((e for e in self.endpoints if e.service_type == service_type and e.interface == interface), None)

    def endpoint_answers(self, service_type: str, timeout: float) -> tuple[bool, str]:
        """Whether the public endpoint of ``service_type`` answers a plain GET (its version document)."""
        ep = self.endpoint(service_type)
        if ep is None:
            return False, f"no {service_type} endpoint in the catalogue"
        ok, detail = endpoint_answers(ep.url, timeout)
        return ok, f"{service_type} at {ep.url}: {detail}"

    def alive_agents(self, agent_type_contains: str) -> list[Agent]:
        return [a for a in self.agents if agent_type_contains.lower() in a.agent_type.lower() and a.alive]


def view(conn: Any, cfg: OpenStackConfig, admin_conn: Any | None = None) -> DevStackView:
    """Build a DevStackView. The catalogue comes from the token (no extra call)."""
    cloud = cfg.cloud
    token = conn.session.auth.get_access(conn.session)
    endpoints = []
    for service in token.service_catalog.catalog:
        for ep in service.get("endpoints", []):
            endpoints.append(Endpoint(service["type"], service.get("name", ""), ep["interface"], ep["url"]))
    reader = admin_conn or conn
    timeout = float(conn.config.config.get("api_timeout") or 5)
    extensions = {e.alias for e in call(cfg, cloud, timeout, lambda: list(reader.network.extensions()))}
    # Listing agents is admin-only: a refusal (403) is a failure naming the admin cloud, never an
    # empty list a check could take for "no agent is dead".
    agents = [
        Agent(a.agent_type, a.host, a.binary or "", bool(a.is_alive), bool(a.is_admin_state_up))
        for a in call(cfg, cloud, timeout, lambda: list(reader.network.agents()))
    ]
    return DevStackView(
        cloud=cloud,
        auth_url=auth_url(cfg),
        user_id=token.user_id,
        project_id=token.project_id,
        endpoints=endpoints,
        extensions=extensions,
        agents=agents,
    )


def http_status(url: str, timeout: float, method: str = "GET") -> tuple[int | None, str]:
    """One bounded plain HTTP request: (status, "HTTP n"), or (None, why nothing answered)."""
    from pytest_workshop.components import http

    answer = http.request(url, timeout, method)
    return answer.status, answer.detail


def endpoint_answers(url: str, timeout: float) -> tuple[bool, str]:
    """GET the endpoint's root (version document). Any HTTP status below 500 means the service answers."""
    status, detail = http_status(url, timeout)
    return status is not None and status < 500, detail
