"""OpenStack through openstacksdk: connections with timeouts, a DevStack view, one-line errors.

openstacksdk is imported on first use only (it costs about a second), so suites without
OpenStack never pay for it. Credentials come from clouds.yaml or OS_* variables; they are handed
to openstacksdk and never formatted into a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.components.explain import Talk, explain
from pytest_workshop.config.model import ENV_CLOUD, OpenStackConfig, Timeouts
from pytest_workshop.errors import WorkshopError

# Tag put on the Neutron objects a check creates itself, so the janitor can find them.
RUN_TAG = "pytest-workshop.run="


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
        raise explain(e, Talk.cloud(cfg, cloud, timeouts.request)) from None
    return conn


def call(cfg: OpenStackConfig, cloud: str, timeout: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call and turn its failure into a WorkshopError (for library users and fixtures)."""
    try:
        return fn(*args, **kwargs)
    except WorkshopError:
        raise
    except Exception as e:
        raise explain(e, Talk.cloud(cfg, cloud, timeout)) from None


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
        auth_url=cfg.auth_url,
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
