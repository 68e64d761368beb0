"""What went wrong when talking to the lab, as a failure of the component that said it.

Checks and fixtures call client libraries (docker-py, aetcd/gRPC, keystoneauth/openstacksdk)
directly; those raise their own exceptions. ``lab_failure`` turns every exception that *comes from
the lab* (an API error, a refused or timed-out connection) into a ``WorkshopError`` of that
component with a hint naming the cause the error shows. Anything it does not recognise is an
exception of the suite's own code, and the verdict policy keeps its traceback.

The client libraries are looked up in ``sys.modules`` only: an exception of a library that was
never imported cannot be in flight, and importing openstacksdk here would cost lab3 a second.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from pytest_workshop.components.explain import Talk, explain, neutron_refusal, quote, swarm_error
from pytest_workshop.config.model import LabConfig, strip_userinfo
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

HINT_CONTAINERD = (
    "the engine's containerd is not answering: restart it (systemctl restart containerd docker) "
    "and read `journalctl -u containerd`"
)
HINT_ENGINE_ERROR = "the engine answered with an error: read its log (journalctl -u docker) around this time"


def lab_failure(exc: BaseException, component: str, lab: LabConfig | None = None) -> WorkshopError | None:
    """A WorkshopError for an exception that came from the lab, else None (a bug in the suite).

    ``component`` is the check's component: the fallback owner of a bare connection error.
    """
    if isinstance(exc, WorkshopError):
        return exc
    for recognise in (_docker, _etcd, _openstack):
        found = recognise(exc, component, lab)
        if found is not None:
            return found
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout):
        what = "did not answer in time (hung or paused?)" if isinstance(exc, TimeoutError) else str(exc)[:160]
        return ComponentUnavailable(component, what, hint=f"check that {component} is running and reachable")
    return None


def _module(name: str) -> Any:
    return sys.modules.get(name)


# --- Docker --------------------------------------------------------------------------------


def _docker(exc: BaseException, component: str, lab: LabConfig | None) -> WorkshopError | None:
    errors, requests_exc = _module("docker.errors"), _module("requests.exceptions")
    if errors is None:
        return None
    owner = component if component in ("swarm", "kuryr") else "docker"
    host = _docker_host(lab, owner)
    if isinstance(exc, errors.APIError) and exc.status_code is not None:
        return docker_api_failure(exc.status_code, str(exc.explanation or exc), owner, host)
    docker_transport = isinstance(exc, errors.DockerException) or (
        requests_exc is not None
        and isinstance(exc, requests_exc.RequestException)
        and (_is_docker_url(getattr(getattr(exc, "request", None), "url", "") or "") or _from_docker_pool(exc, lab))
    )
    if docker_transport:
        unavailable = explain(exc, Talk.engine(host, lab.timeouts.request if lab else 5.0))
        return ComponentUnavailable(owner, unavailable.message.removeprefix("docker: "), hint=unavailable.hint)
    return None


def _docker_host(lab: LabConfig | None, owner: str) -> str:
    if lab is None:
        return "the engine"
    if owner == "kuryr" and lab.kuryr and lab.kuryr.docker_host:
        return strip_userinfo(lab.kuryr.docker_host)
    return strip_userinfo(lab.docker.host) if lab.docker else "the engine"


def _is_docker_url(url: str) -> bool:
    return url.startswith("http+docker://") or "/v1." in url


def _from_docker_pool(exc: BaseException, lab: LabConfig | None) -> bool:
    """A response body that stalls while it streams (``container.wait``, logs) raises a requests
    ConnectionError with no request, wrapping urllib3's error: its connection pool says whose it
    was (seen with kuryr paused: the probe's wait timed out as
    "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out")."""
    engines = [lab.docker.host if lab and lab.docker else "", lab.kuryr.docker_host if lab and lab.kuryr else ""]
    for arg in getattr(exc, "args", ()):
        pool = getattr(arg, "pool", None)
        if pool is None:
            continue
        if type(pool).__module__.startswith("docker."):  # a unix socket or ssh engine
            return True
        # a tcp engine: urllib3's own pool, known by the engine's address
        where = f"{getattr(pool, 'host', '')}:{getattr(pool, 'port', '')}"
        if any(where in (engine or "") for engine in engines):
            return True
    return False


def docker_api_failure(status: int, explanation: str, owner: str, host: str) -> WorkshopError:
    """An engine that answered with an HTTP error: the failure its words point at."""
    if swarm_error(explanation) is not None:
        return explain(RuntimeError(explanation), Talk.swarm(f"the engine at {host}"))
    text = quote(explanation)
    lower = text.lower()
    refused = neutron_refusal(explanation)
    if refused is not None:  # an engine's plugin (kuryr) passing on Neutron's refusal
        return CheckFailed(f"{owner}: {refused[0]} ({status}: {text})", refused[1])
    if "containerd" in lower:
        unreachable = any(w in lower for w in ("connection refused", "no such file", "unavailable", "dial unix"))
        what = "cannot reach its containerd" if unreachable else "reports a containerd error"
        return CheckFailed(f"{owner}: the engine at {host} {what} ({status}: {text})", HINT_CONTAINERD)
    if status >= 500:
        return CheckFailed(f"{owner}: the engine at {host} answered {status}: {text}", HINT_ENGINE_ERROR)
    return CheckFailed(f"{owner}: the engine at {host} refused the request ({status}: {text})", HINT_ENGINE_ERROR)


# --- etcd ----------------------------------------------------------------------------------


def _etcd(exc: BaseException, component: str, lab: LabConfig | None) -> WorkshopError | None:
    grpc, aetcd_exc = _module("grpc"), _module("aetcd.exceptions")
    ours = (grpc is not None and isinstance(exc, grpc.RpcError)) or (
        aetcd_exc is not None and isinstance(exc, aetcd_exc.ClientError)
    )
    if not ours:
        return None
    from pytest_workshop.components.etcd import describe, is_unreachable, refusal, unreachable

    timeout = lab.timeouts.request if lab else 5.0
    described = describe(exc, timeout)
    if is_unreachable(exc):
        return unreachable("request", [described])
    return refusal("request", "an endpoint", described)


# --- OpenStack -----------------------------------------------------------------------------


def _openstack(exc: BaseException, component: str, lab: LabConfig | None) -> WorkshopError | None:
    ka, sdk = _module("keystoneauth1.exceptions"), _module("openstack.exceptions")
    ours = (ka is not None and isinstance(exc, ka.ClientException)) or (
        sdk is not None and isinstance(exc, sdk.SDKException)
    )
    if not ours or lab is None or lab.openstack is None:
        return None
    return explain(exc, Talk.cloud(lab.openstack, lab.openstack.cloud, lab.timeouts.request))
