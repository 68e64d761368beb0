"""The Docker engine: a docker-py client with timeouts, facts about the engine, the suites' test image."""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_workshop.components.explain import Talk, explain
from pytest_workshop.config.model import DockerConfig, Timeouts
from pytest_workshop.errors import WorkshopError

if TYPE_CHECKING:
    from docker import DockerClient

BUSYBOX = Path("/bin/busybox")
OWN_IMAGE_PREFIX = "pytest-workshop/"
OWN_TEST_IMAGE = f"{OWN_IMAGE_PREFIX}busybox:1.36"
# Not a run label: the image is built once per engine and reused by every run; `workshop janitor
# --all` removes it.
TEST_IMAGE_LABELS = {"pytest-workshop.image": "test"}


def fixtures_dir() -> Path:
    """The repository's fixtures/ folder (recipes for images and sample services)."""
    env = os.environ.get("WORKSHOP_FIXTURES")
    candidates = [Path(env)] if env else []
    package = Path(__file__).resolve().parents[1]
    candidates += [package.parent / "fixtures", package / "fixtures"]  # a checkout's, else the wheel's
    for c in candidates:
        if (c / "images").is_dir():
            return c
    raise WorkshopError(
        "the fixtures/ folder of pytest-workshop was not found",
        hint="reinstall pytest-workshop (its wheel carries them), or set WORKSHOP_FIXTURES to a checkout's fixtures/",
    )


PROVISIONAL_API = "1.24"  # only until the engine says its own (the oldest docker-py 7 speaks)


def _client(cfg: DockerConfig, seconds: float) -> DockerClient:
    import docker
    import docker.tls

    tls: Any = False
    if cfg.tls_verify and cfg.cert_path:
        tls = docker.tls.TLSConfig(
            client_cert=(str(cfg.cert_path / "cert.pem"), str(cfg.cert_path / "key.pem")),
            ca_cert=str(cfg.cert_path / "ca.pem"),
            verify=True,
        )
    timeout = math.ceil(max(1.0, seconds))
    if not tls:
        client = docker.DockerClient(base_url=cfg.host, timeout=timeout)
        # requests reads the proxy variables for every call (trust_env): it iterates os.environ,
        # which raises KeyError when another thread deletes a variable meanwhile - and pytest
        # deletes PYTEST_CURRENT_TEST after every check while lab2's and lab5's experiments call
        # the engine from background threads. An engine on a socket or over ssh has no use for a
        # proxy; a tcp engine is reached directly, as the TLS one below already is.
        client.api.trust_env = False
    else:
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA (its issue
        # 3829): with either set, as on many machines, the engine's certificate was checked against
        # the system CAs and refused ("unable to get local issuer certificate"). The lab's CA is
        # the one that counts: the session must not read the environment, from its first call on
        # (docker-py asks the engine's API version in its constructor, so that waits until now).
        client = docker.DockerClient(base_url=cfg.host, tls=tls, timeout=timeout, version=PROVISIONAL_API)
        client.api.trust_env = False
        client.api._version = str(client.api.version(api_version=False)["ApiVersion"])
    # What bounded() needs to open a client to the same engine with another bound.
    client.workshop_config = cfg
    return client


def connect(cfg: DockerConfig, timeouts: Timeouts) -> DockerClient:
    """A client whose every HTTP call is bounded by ``timeouts.request``; fails fast if the engine is down."""
    try:
        client = _client(cfg, timeouts.request)
        client.ping()
    except Exception as e:  # docker-py raises DockerException, requests errors, OSError...
        raise explain(e, Talk.engine(cfg.host, timeouts.request)) from e
    return client


_bounded_lock = threading.Lock()


def bounded(client: DockerClient, seconds: float) -> DockerClient:
    """A client to ``client``'s engine whose calls may take up to ``seconds``: for the operations
    that legitimately take longer than one request (``[timeouts] container_start``,
    ``network_create``). docker-py has one timeout per client, and setting it on a shared client
    races with the other threads using it; so each bound gets its own client, made once."""
    with _bounded_lock:
        made: dict[float, DockerClient] = client.__dict__.setdefault("workshop_bounded", {})
        if seconds not in made:
            made[seconds] = _client(client.workshop_config, seconds)
        return made[seconds]


@dataclass
class NodeEngines:
    """The engines of several hosts: hostname -> client for those that answered ``info``, configured
    host -> why for those that did not, and the clients opened here (``close()`` closes only those)."""

    clients: dict[str, DockerClient] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    opened: list[DockerClient] = field(default_factory=list)

    def close(self) -> None:
        for client in self.opened:
            client.close()


def connect_each(
    cfg: DockerConfig, hosts: Iterable[str], timeouts: Timeouts, reuse: dict[str, DockerClient] | None = None
) -> NodeEngines:
    """Connect to each host's engine (reusing ``reuse[host]`` where given) and learn its hostname."""
    engines = NodeEngines()
    for host in hosts:
        client = (reuse or {}).get(host)
        if client is None:
            try:
                client = connect(replace(cfg, host=host), timeouts)
            except WorkshopError as e:
                engines.unreachable[host] = e.message
                continue
            engines.opened.append(client)
        try:
            engines.clients[client.info()["Name"]] = client
        except Exception as e:  # a restarted Swarm manager answers ping but times out on info
            engines.unreachable[host] = str(e)[:160]
    return engines


def image_exists(client: DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_test_image(client: DockerClient, cfg: DockerConfig) -> tuple[str, str]:
    """Make sure the suites' image exists. Returns (ref, how): present, pulled or built offline.

    A ``test_image`` the lab names is used as is, pulled when the configuration allows it. Anything
    built here gets a name of the project's own (``OWN_TEST_IMAGE``) and the label the janitor's
    ``--all`` removes: an attendee's ``busybox:1.36`` is never shadowed by an image of ours.
    """
    ref = test_image_ref(cfg)
    if image_exists(client, ref):
        return ref, "present"
    pull_error = ""
    if cfg.test_image and cfg.pull:
        try:
            client.images.pull(cfg.test_image)
            return ref, "pulled"
        except Exception as e:
            pull_error = f"{cfg.test_image} could not be pulled: {type(e).__name__}: {str(e)[:120]}"
    own = ref if ref.startswith(OWN_IMAGE_PREFIX) else OWN_TEST_IMAGE
    if own != ref and image_exists(client, own):
        return own, f"present (instead of {ref}: {pull_error or 'pulls are off'})"
    build_busybox_image(client, own, labels=TEST_IMAGE_LABELS)
    return own, "built offline from the host's busybox" + (f" ({pull_error})" if pull_error else "")


def test_image_ref(cfg: DockerConfig) -> str:
    """The image the suites run: the lab's ``test_image``, else the project's own."""
    return cfg.test_image or OWN_TEST_IMAGE


def build_busybox_image(client: DockerClient, ref: str, labels: dict[str, str] | None = None) -> None:
    """FROM scratch + the host's static busybox: no registry needed."""
    if not BUSYBOX.is_file():
        raise WorkshopError(
            f"cannot build {ref} offline: {BUSYBOX} is missing",
            hint="apt-get install busybox-static (or make the image pullable and set pull = true)",
        )
    recipe = fixtures_dir() / "images" / "busybox"
    with tempfile.TemporaryDirectory(prefix="workshop-image-") as ctx:
        shutil.copy(recipe / "Dockerfile", ctx)
        shutil.copy(BUSYBOX, Path(ctx) / "busybox")
        client.images.build(path=ctx, tag=ref, rm=True, forcerm=True, labels=labels or {})


def engine_summary(client: DockerClient) -> dict[str, Any]:
    """What an instructor looks at first: versions, storage, cgroups, swarm state."""
    info = client.info()
    version = client.version()
    return {
        "server_version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "min_api_version": version.get("MinAPIVersion"),
        "storage_driver": info.get("Driver"),
        "cgroup_driver": info.get("CgroupDriver"),
        "cgroup_version": info.get("CgroupVersion"),
        "kernel": info.get("KernelVersion"),
        "swarm": (info.get("Swarm") or {}).get("LocalNodeState"),
        "warnings": info.get("Warnings") or [],
        "containers_running": info.get("ContainersRunning"),
    }


class DockerResources:
    """Creates containers, networks, volumes and images with the run's label and a name prefix,
    and removes them all on ``cleanup()`` (containers first: networks and volumes in use can't go)."""

    def __init__(self, client: DockerClient, labels: dict[str, str], name_prefix: str) -> None:
        self.client = client
        self.labels = dict(labels)
        self.name_prefix = name_prefix
        self._containers: list[Any] = []
        self._networks: list[Any] = []
        self._volumes: list[Any] = []
        self._images: list[str] = []

    def name(self, what: str) -> str:
        # Random, not a counter: several tests and xdist workers of one run share the prefix.
        return f"{self.name_prefix}{what}-{secrets.token_hex(3)}"

    def run(self, image: str, command: Any = None, **kwargs: Any) -> Any:
        """``client.containers.run`` detached, labelled and tracked. Returns the Container."""
        kwargs.setdefault("name", self.name("c"))
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        container = self.client.containers.run(image, command, detach=True, **kwargs)
        self._containers.append(container)
        return container

    def network(self, **kwargs: Any) -> Any:
        kwargs.setdefault("name", self.name("net"))
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        net = self.client.networks.create(**kwargs)
        self._networks.append(net)
        return net

    def volume(self, **kwargs: Any) -> Any:
        kwargs.setdefault("name", self.name("vol"))
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        vol = self.client.volumes.create(**kwargs)
        self._volumes.append(vol)
        return vol

    def build(self, path: str, **kwargs: Any) -> Any:
        tag = kwargs.setdefault("tag", f"{self.name_prefix.rstrip('-')}/{self.name('img')}:latest")
        kwargs["labels"] = {**self.labels, **kwargs.get("labels", {})}
        self._images.append(tag)
        image, _logs = self.client.images.build(path=path, rm=True, forcerm=True, **kwargs)
        return image

    def cleanup(self) -> list[str]:
        """Remove everything created here; returns what could not be removed."""
        problems: list[str] = []

        def attempt(what: str, fn: Any) -> None:
            try:
                fn()
            except Exception as e:
                if "404" not in str(e) and "No such" not in str(e):
                    problems.append(f"{what}: {str(e)[:160]}")

        for c in reversed(self._containers):
            attempt(f"container {c.name}", lambda c=c: c.remove(force=True, v=True))
        for n in reversed(self._networks):
            attempt(f"network {n.name}", n.remove)
        for v in reversed(self._volumes):
            attempt(f"volume {v.name}", lambda v=v: v.remove(force=True))
        for tag in reversed(self._images):
            attempt(f"image {tag}", lambda tag=tag: self.client.images.remove(tag, force=True))
        for tracked in (self._containers, self._networks, self._volumes, self._images):
            tracked.clear()
        return problems
