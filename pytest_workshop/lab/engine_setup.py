"""What the embedded lab does with its machines' engines once they answer: the test image and the
reference app's image on each (built offline, no registry), and the Swarm formed over them."""

from __future__ import annotations

from typing import Any

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import LabError
from pytest_workshop.lab.nodes import NodeSpec
from pytest_workshop.lab.settings import LabSettings


def distribute_test_image(clients: list[Any], settings: LabSettings) -> str:
    """Build once (offline) on the first node, `docker load` it on the others: same image ID everywhere."""
    from pytest_workshop.components import docker as docker_component
    from pytest_workshop.config import DockerConfig

    ref, how = docker_component.ensure_test_image(clients[0], DockerConfig(test_image=settings.test_image, pull=False))
    if ref != settings.test_image:
        clients[0].images.get(ref).tag(settings.test_image)  # the lab's own engines: the name asked for
    if len(clients) > 1:
        blob = b"".join(clients[0].images.get(settings.test_image).save(named=True))
        for client in clients[1:]:
            client.images.load(blob)
    return how


def distribute_app_image(clients: list[Any]) -> None:
    """lab5's guide deploys the reference app's stack: its image on every node, built offline."""
    import concurrent.futures

    from pytest_workshop.components.app_image import ensure_app_image

    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(ensure_app_image, clients))


def form_swarm(clients: list[Any], specs: list[NodeSpec], settings: LabSettings, timeout: float = 60) -> None:
    first, first_spec = clients[0], specs[0]
    first.swarm.init(
        advertise_addr=first_spec.address,
        listen_addr=f"{first_spec.address}:2377",
        default_addr_pool=[settings.swarm_pool],
        subnet_size=24,
    )
    tokens = first.swarm.attrs["JoinTokens"]
    for i, (client, spec) in enumerate(zip(clients[1:], specs[1:], strict=True), start=2):
        token = tokens["Manager"] if i <= settings.managers else tokens["Worker"]
        client.swarm.join(
            remote_addrs=[f"{first_spec.address}:2377"],
            join_token=token,
            advertise_addr=spec.address,
            listen_addr=f"{spec.address}:2377",
        )

    def all_ready() -> bool:
        listed = first.nodes.list()
        return len(listed) == len(specs) and all(n.attrs["Status"]["State"] == "ready" for n in listed)

    wait_for(
        f"the swarm did not have {len(specs)} ready nodes",
        all_ready,
        timeout,
        error=LabError,
        observe=lambda: "",
        hint="read the nodes' dockerd.log",
    )
