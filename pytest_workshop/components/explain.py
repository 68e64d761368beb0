"""What the lab's errors mean: one ``explain(exc, talk)`` for what the engine, the swarm and
OpenStack answered (or did not), as a failure of the component with a hint naming the cause.

``Talk`` says what was being asked (the component, its address or the act, the bound): the same
words then read the same way wherever the call was made. etcd's errors are read in
components/etcd/errors.py (gRPC statuses, not HTTP), and components/failures.py sends every
exception of the lab to the reader of its kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pytest_workshop.config.model import OpenStackConfig
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError


@dataclass(frozen=True)
class Talk:
    """What was asked of the lab when an error came back."""

    component: str  # "docker", "swarm" or "openstack": whose words the error is in
    where: str  # the engine's address, or what was being done ("creating service web")
    timeout: float = 5.0
    bound: str = "request"  # the [timeouts] entry the call was bounded by
    openstack: OpenStackConfig | None = None
    cloud_name: str = ""

    @classmethod
    def engine(cls, host: str, timeout: float, bound: str = "request") -> Talk:
        return cls("docker", host, timeout, bound)

    @classmethod
    def swarm(cls, doing: str) -> Talk:
        return cls("swarm", doing)

    @classmethod
    def cloud(cls, cfg: OpenStackConfig, cloud: str, timeout: float) -> Talk:
        return cls("openstack", cloud, timeout, openstack=cfg, cloud_name=cloud)


def explain(exc: BaseException, talk: Talk) -> WorkshopError:
    """The failure ``exc`` shows, in the words of ``talk``'s component."""
    return READERS[talk.component](exc, talk)


def quote(text: str, limit: int = 300) -> str:
    """An error's words on one line, up to its reason: past ``limit`` it is cut at the end of a
    sentence (". ", or a closing bracket and what follows it), never inside one, and at most 200
    characters later ("Quota exceeded for resources: ['port']" is the fact that matters, not
    "Quota exceeded ")."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    end = min((i for i in (flat.find(". ", limit), flat.find("] ", limit)) if i != -1), default=-1)
    if end != -1 and end - limit <= 200:
        return flat[: end + 1] + " ..."
    return flat[: limit + 200] + " ..."


# What Neutron says when it refuses (through kuryr, or to the suites' own calls) -> what it means
# and what to run. Looked up in the error's whole text: the reason may be past its first line.
NEUTRON_REFUSALS = {
    "Quota exceeded": (
        "Neutron refused it: a quota of the project is used up",
        "see the project's quotas and usage: `openstack quota show --usage PROJECT` (kuryr's project: "
        "[neutron] project_name in kuryr.conf); raise the one named, as admin: `openstack quota set --ports N PROJECT`",
    ),
    "IpAddressGenerationFailure": (
        "the subnet has no free address left",
        "remove the ports that hold its addresses (`openstack port list --network NET`) or use a bigger subnet",
    ),
    "No more IP addresses available": (
        "the subnet has no free address left",
        "remove the ports that hold its addresses (`openstack port list --network NET`) or use a bigger subnet",
    ),
}


def neutron_refusal(text: str) -> tuple[str, str] | None:
    """(what it means, hint) when an error's text is a refusal Neutron explains, else None."""
    return next((found for phrase, found in NEUTRON_REFUSALS.items() if phrase in text), None)


# --- the engine ----------------------------------------------------------------------------

HINT_UNREACHABLE = (
    "start the Docker engine (systemctl start docker) and check that DOCKER_HOST (or [docker] host) names it"
)


def _engine(exc: BaseException, talk: Talk) -> WorkshopError:
    """docker-py/requests errors -> one line an attendee understands."""
    host, timeout, bound = talk.where, talk.timeout, talk.bound
    text = f"{type(exc).__name__}: {exc}"
    if "FileNotFoundError" in text or "No such file" in text:
        msg = f"no engine socket at {host.removeprefix('unix://')}"
    elif "Read timed out" in text or "timed out" in text.lower():
        msg = f"the engine at {host} did not answer within {timeout:g} s ([timeouts] {bound}): hung, paused, or overloaded"
        return ComponentUnavailable("docker", msg, hint=HINT_SLOW_OR_HUNG.format(bound=bound))
    elif "Connection refused" in text or "ConnectionRefused" in text:
        msg = f"connection refused at {host}"
    elif "Permission denied" in text:
        msg = f"permission denied on {host}"
        return ComponentUnavailable("docker", msg, hint="run as root or add your user to the docker group")
    elif host.startswith("ssh://") and (meaning := _meaning(SSH_TROUBLE, text)):
        msg = f"ssh to the engine's machine at {host} failed ({meaning})"
        return ComponentUnavailable("docker", msg, hint=HINT_SSH)
    elif meaning := _meaning(TLS_TROUBLE, text):
        msg = f"TLS with the engine at {host} failed ({meaning})"
        return ComponentUnavailable("docker", msg, hint=HINT_TLS)
    else:
        msg = f"cannot talk to the engine at {host}: {text.splitlines()[0][:200]}"
    return ComponentUnavailable("docker", msg, hint=HINT_UNREACHABLE)


def _meaning(table: dict[str, str], text: str) -> str | None:
    """What the first of the table's phrases found in the error text means."""
    return next((meaning for phrase, meaning in table.items() if phrase in text), None)


# what requests/urllib3/the engine say -> what it means
TLS_TROUBLE = {
    "CERTIFICATE_VERIFY_FAILED": "its certificate is not signed by the ca.pem given, or names another address",
    "HTTP request to an HTTPS server": "the engine wants TLS; this client spoke plain HTTP",
    "WRONG_VERSION_NUMBER": "the engine speaks plain HTTP; this client spoke TLS",
    "wrong version number": "the engine speaks plain HTTP; this client spoke TLS",
    "certificate required": "the engine wants a client certificate, and got none it trusts",
    "CERTIFICATE_REQUIRED": "the engine wants a client certificate, and got none it trusts",
    "bad certificate": "the engine refused the client certificate",
    "SSLError": "the TLS handshake failed",
}
HINT_TLS = (
    "an engine reached over TLS (tcp://HOST:2376) needs [docker] tls_verify = true and cert_path = the "
    "folder with ca.pem, cert.pem and key.pem (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH); its certificate "
    "must be signed by that ca.pem and name the address used; compare with `docker --tlsverify info`"
)
SSH_TROUBLE = {
    "Name or service not known": "the host name does not resolve: no such host, and no Host alias in ~/.ssh/config",
    "not found in known_hosts": "its host key is not in ~/.ssh/known_hosts",
    "Authentication failed": "no key it accepts (~/.ssh/config IdentityFile, the ssh agent)",
    "Unable to connect": "nothing answers on its SSH port",
    "NoValidConnectionsError": "nothing answers on its SSH port",
    "dial-stdio": "the docker command on that machine could not reach its engine",
    "ChannelException": "the SSH server refused another session: its MaxSessions (10 by default) is too low "
    "for one session per connection",
}
HINT_SSH = (
    "an engine reached over ssh:// runs `docker system dial-stdio` on that machine over ssh: "
    "`ssh HOST docker version` must work without a password from this machine (keys, aliases and "
    "known hosts come from ~/.ssh: config, known_hosts, the agent; the embedded fleet's are in its ssh-home)"
)
HINT_SLOW_OR_HUNG = (
    "if `docker info` answers at once, the machine was only busy: run fewer checks at once (-n) or raise "
    "[timeouts] {bound} in lab.toml; if it hangs too, restart the engine (systemctl restart docker)"
)


# --- the swarm -----------------------------------------------------------------------------

HINT_NO_LEADER = (
    "the swarm has lost quorum: start the managers that are down (more than half must run), "
    "or on a survivor run `docker swarm init --force-new-cluster`"
)
HINT_NOT_IN_SWARM = (
    "this engine is not in a swarm: `docker swarm init` on the first manager, then "
    "`docker swarm join --token TOKEN MANAGER:2377` on the others (`docker swarm join-token manager` prints it)"
)
HINT_WORKER = (
    "this engine is a worker: point [docker] host at a manager, or `docker node promote` this node on a manager"
)


def swarm_error(text: str) -> tuple[str, str] | None:
    """(what, hint) when an engine's error is about the swarm itself, else None."""
    if "does not have a leader" in text or "lost leader" in text or "context deadline exceeded" in text:
        return "the swarm does not have a leader", HINT_NO_LEADER
    if "not a swarm manager" in text or "not part of a swarm" in text:
        if "Worker nodes" in text:
            return "this engine is a swarm worker, not a manager", HINT_WORKER
        return "this engine is not in a swarm", HINT_NOT_IN_SWARM
    return None


def _swarm(exc: BaseException, talk: Talk) -> WorkshopError:
    """An engine's error about its swarm (no leader, not a manager) or its silence."""
    where = talk.where
    text = str(getattr(exc, "explanation", None) or exc)
    first = " ".join(text.split())[:160]
    found = swarm_error(text)
    if found is not None:
        what, hint = found
        if hint is HINT_NO_LEADER:
            return ComponentUnavailable("swarm", f"{where}: {what} ({first})", hint)
        return CheckFailed(f"{where}: {what} ({first})", hint=hint)
    if "timed out" in text.lower():
        return ComponentUnavailable("swarm", f"{where}: no answer in time ({first[:120]})", HINT_NO_LEADER)
    return CheckFailed(f"{where}: {first}", hint="read the engine's log on that node")


# --- OpenStack -----------------------------------------------------------------------------

HINT_KEYSTONE = "start Keystone (DevStack: `sudo systemctl restart devstack@keystone`) and check the cloud's auth_url"
HINT_NEUTRON = (
    "start the Neutron API (DevStack: `sudo systemctl restart devstack@q-svc`); if it runs, it may be stuck "
    "on its database: check MariaDB and Neutron's log (journalctl -u devstack@q-svc)"
)
HINT_SERVER_ERROR = (
    "{service} answered but failed the request: read its log (DevStack: journalctl -u devstack@{unit}) "
    "and check its database (MariaDB: systemctl status mariadb)"
)


def credentials_source(cfg: OpenStackConfig, cloud: str) -> tuple[str, str]:
    """(where the credentials came from, what to check there) — for a 401, never the values."""
    if cfg.clouds_yaml is None:
        return (
            "the OS_* variables (a sourced openrc)",
            "check OS_PASSWORD (and OS_USERNAME, OS_PROJECT_NAME): source the openrc again",
        )
    where = f"cloud {cloud!r} in {cfg.clouds_yaml}"
    return where, f"check clouds.{cloud}.auth.password (and username, project_name) in {cfg.clouds_yaml}"


def _cloud(exc: BaseException, talk: Talk) -> WorkshopError:
    """keystoneauth/openstacksdk exceptions -> one line naming the service that failed and how.

    No answer (refused, reset, timed out) is ComponentUnavailable; an answer with a server error
    is a failure of the service that gave it (its log and its database), not "start it"."""
    from keystoneauth1 import exceptions as ka

    assert talk.openstack is not None
    cfg, cloud, timeout = talk.openstack, talk.cloud_name, talk.timeout

    # openstacksdk wraps keystoneauth's errors in a bare SDKException (authorize() does): the
    # evidence is the original
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ka.ClientException):
        cause = cause.__cause__ or cause.__context__
    exc = cause or exc
    url = cfg.auth_url
    status = getattr(exc, "http_status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, ka.Unauthorized) or status == 401:
        where, fix = credentials_source(cfg, cloud)
        return CheckFailed(f"Keystone at {url} rejected the credentials of {where}", hint=fix)
    if isinstance(exc, ka.EndpointNotFound | ka.CatalogException):
        return CheckFailed(
            f"the catalogue of cloud {cloud!r} has no such endpoint: {exc}",
            hint="register the service's endpoint in Keystone (`openstack endpoint list`)",
        )
    text = quote(str(exc), 200) if str(exc) else type(exc).__name__
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
    refused = neutron_refusal(str(exc))
    if refused is not None:
        return CheckFailed(f"{target}: {refused[0]}: {text}", hint=refused[1])
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


READERS: dict[str, Callable[[BaseException, Talk], WorkshopError]] = {
    "docker": _engine,
    "swarm": _swarm,
    "openstack": _cloud,
}
