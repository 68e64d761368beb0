"""Remove what runs left behind: Docker objects labelled with a run id, etcd keys under a run
prefix, and Neutron objects tagged with a run id.

By default only runs whose process is gone are swept (a live run on the same lab keeps its
objects); ``only_run`` sweeps one run (the plugin does this for itself at the end, which
catches what a crashed xdist worker could not tear down); ``include_live`` sweeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.config.model import LabConfig, strip_userinfo
from pytest_workshop.errors import WorkshopError
from pytest_workshop.run import (
    ETCD_ROOT,
    LABEL_RUN,
    dead_runs,
    forget_dead_runs,
    mark_swept,
    run_is_alive,
    run_is_registered,
)


@dataclass
class SweepReport:
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _wanted(run_id: str, only_run: str | None, include_live: bool | str) -> bool:
    if only_run is not None:
        return run_id == only_run
    if include_live == "known-dead":
        # Automatic sweeps only touch runs this machine knows ended: another machine's live run
        # against the same lab has no entry here and must be left alone.
        return run_is_registered(run_id) and not run_is_alive(run_id)
    return bool(include_live) or not run_is_alive(run_id)


def _name(obj: Any) -> str:
    names = obj.attrs.get("Names") if obj.attrs else None  # sparse container listings
    if names:
        return str(names[0]).lstrip("/")
    return str(getattr(obj, "name", None) or (obj.tags[0] if getattr(obj, "tags", None) else obj.short_id))


def _swarm_list(lister: Any, flt: dict[str, str]) -> list[Any]:
    """Swarm objects exist only on managers; on any other engine there is nothing to sweep."""
    try:
        return list(lister(filters=flt))
    except Exception as e:
        if "not a swarm manager" in str(e) or ("swarm" in str(e).lower() and "503" in str(e)):
            return []
        raise


def sweep_docker(
    client: Any, report: SweepReport, dry_run: bool, only_run: str | None, include_live: bool | str
) -> None:
    flt = {"label": LABEL_RUN if only_run is None else f"{LABEL_RUN}={only_run}"}
    kinds: list[tuple[str, Any, Any]] = [
        # services first: a service left behind would only start its containers again
        ("service", lambda: _swarm_list(client.services.list, flt), lambda o: o.remove()),
        (
            "container",
            lambda: client.containers.list(all=True, filters=flt, sparse=True),
            lambda o: o.remove(force=True, v=True),
        ),
        ("network", lambda: client.networks.list(filters=flt), lambda o: o.remove()),
        ("volume", lambda: client.volumes.list(filters=flt), lambda o: o.remove(force=True)),
        ("image", lambda: client.images.list(filters=flt), lambda o: client.images.remove(o.id, force=True)),
        ("secret", lambda: _swarm_list(client.secrets.list, flt), lambda o: o.remove()),
        ("config", lambda: _swarm_list(client.configs.list, flt), lambda o: o.remove()),
    ]
    for kind, lister, remover in kinds:
        try:
            objects = lister()
        except Exception as e:
            report.errors.append(f"docker {kind}s: {str(e)[:160]}")
            continue
        for obj in objects:
            attrs = obj.attrs or {}
            labels = (
                attrs.get("Labels")
                or attrs.get("Config", {}).get("Labels")
                or attrs.get("Spec", {}).get("Labels")
                or {}
            )
            run_id = labels.get(LABEL_RUN, "")
            if not run_id or not _wanted(run_id, only_run, include_live):
                continue
            name = _name(obj)
            what = f"docker {kind} {name} (run {run_id})"
            if not dry_run:
                try:
                    remover(obj)
                except Exception as e:
                    report.errors.append(f"{what}: {str(e)[:160]}")
                    continue
            report.removed.append(what)


def restore_orphaned_faults(cfg: LabConfig, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Restore the faults that runs which died left injected (never an instructor's: that one is
    the exercise). Returns (what was (or would be) restored, errors)."""
    from pytest_workshop.faults.journal import Journal

    orphans = [e for e in Journal(cfg.name).entries() if e.orphaned]
    if not orphans or dry_run:
        return [e.describe() for e in orphans], []
    from pytest_workshop.faults import Breaker

    breaker = Breaker(cfg, allowed=True)  # restoring only ever undoes what the journal says was done
    done, errors = [], []
    for entry in orphans:
        try:
            breaker.restore(entry)
            done.append(entry.describe())
        except Exception as e:  # one line per fault that could not be restored; the others go on
            errors.append(f"fault {entry.scenario}: {str(e)[:200]}")
    return done, errors


def sweep_test_image(client: Any, report: SweepReport, dry_run: bool) -> None:
    """The project's own images (the checks' test image, lab5's app; built offline, shared by every
    run): only ``workshop janitor --all`` removes them, as it leaves the engine as it was before the
    first run."""
    from pytest_workshop.components.docker import TEST_IMAGE_LABELS

    ((label, _),) = TEST_IMAGE_LABELS.items()
    try:
        images = client.images.list(filters={"label": label})  # any value: test, app
    except Exception as e:
        report.errors.append(f"docker images: {str(e)[:160]}")
        return
    for image in images:
        what = (
            f"docker image {', '.join(image.tags) or image.short_id} (pytest-workshop's own, {image.labels.get(label)})"
        )
        if not dry_run:
            try:
                client.images.remove(image.id, force=True)
            except Exception as e:
                report.errors.append(f"{what}: {str(e)[:160]}")
                continue
        report.removed.append(what)


def _connect_all(cfg: LabConfig, report: SweepReport) -> tuple[list[Any], Any, Any]:
    """Clients for every configured component that answers; the others are reported."""
    from dataclasses import replace

    docker_clients: list[Any] = []
    etcd_client = openstack_client = None
    hosts = [cfg.docker.host] if cfg.docker else []
    if cfg.kuryr and cfg.kuryr.docker_host and cfg.kuryr.docker_host not in hosts:
        hosts.append(cfg.kuryr.docker_host)  # the engine kuryr serves has the checks' containers too
    # every Swarm node: service tasks' leftovers and the images built on each (lab5's app)
    hosts += [h for h in (cfg.swarm_hosts if cfg.swarm else ()) if h not in hosts]
    if hosts:
        from pytest_workshop.components import docker
        from pytest_workshop.config import DockerConfig

        for host in hosts:
            try:
                docker_clients.append(docker.connect(replace(cfg.docker or DockerConfig(), host=host), cfg.timeouts))
            except WorkshopError as e:
                report.errors.append(e.message)
    if cfg.etcd:
        from pytest_workshop.components import etcd

        try:
            etcd_client = etcd.connect(cfg.etcd, cfg.timeouts)
        except WorkshopError as e:
            report.errors.append(e.message)
    if cfg.openstack:
        from pytest_workshop.components import openstack

        try:
            openstack_client = openstack.connect(cfg.openstack, cfg.timeouts, admin=True)
        except WorkshopError as e:
            report.errors.append(e.message)
    return docker_clients, etcd_client, openstack_client


def sweep_etcd(client: Any, report: SweepReport, dry_run: bool, only_run: str | None, include_live: bool | str) -> None:
    try:
        keys = client.get_prefix(ETCD_ROOT.encode(), keys_only=True)
    except WorkshopError as e:
        report.errors.append(f"etcd: {e.message}")
        return
    runs: dict[str, int] = {}
    for kv in keys:
        run_id = kv.key.decode(errors="replace")[len(ETCD_ROOT) :].split("/", 1)[0]
        runs[run_id] = runs.get(run_id, 0) + 1
    for run_id, count in sorted(runs.items()):
        if not _wanted(run_id, only_run, include_live):
            continue
        what = f"etcd {count} key(s) under {ETCD_ROOT}{run_id}/"
        if not dry_run:
            try:
                client.delete_prefix(f"{ETCD_ROOT}{run_id}/".encode())
            except WorkshopError as e:
                report.errors.append(f"{what}: {e.message}")
                continue
        report.removed.append(what)


def sweep_neutron(
    conn: Any, report: SweepReport, dry_run: bool, only_run: str | None, include_live: bool | str
) -> None:
    """Security groups and networks a check created itself (tagged with the run). What kuryr
    created goes away with the Docker networks, which sweep_docker removes while kuryr runs."""
    from pytest_workshop.components.openstack import RUN_TAG

    n = conn.network

    def delete_network(net: Any) -> None:
        for port in n.ports(network_id=net.id):
            n.delete_port(port)
        n.delete_network(net)

    kinds: list[tuple[str, Any, Any]] = [
        ("network", n.networks, delete_network),
        ("security group", n.security_groups, n.delete_security_group),
    ]
    for kind, lister, remover in kinds:
        try:
            objects = [o for o in lister() if any(t.startswith(RUN_TAG) for t in o.tags or [])]
        except Exception as e:
            report.errors.append(f"neutron {kind}s: {str(e)[:160]}")
            continue
        for obj in objects:
            run_id = next(t for t in obj.tags if t.startswith(RUN_TAG))[len(RUN_TAG) :]
            if not _wanted(run_id, only_run, include_live):
                continue
            what = f"neutron {kind} {obj.name} (run {run_id})"
            if not dry_run:
                try:
                    remover(obj)
                except Exception as e:
                    if "NotFound" not in type(e).__name__:
                        report.errors.append(f"{what}: {str(e)[:160]}")
                        continue
            report.removed.append(what)


def sweep(
    cfg: LabConfig,
    dry_run: bool = False,
    include_live: bool | str = False,
    only_run: str | None = None,
    docker_client: Any = None,
    etcd_client: Any = None,
    openstack_client: Any = None,
) -> SweepReport:
    """Sweep every configured component (or only the given clients, when passed)."""
    report = SweepReport()
    owned: list[Any] = []
    docker_clients = [docker_client] if docker_client is not None else []
    if docker_client is None and etcd_client is None and openstack_client is None:
        docker_clients, etcd_client, openstack_client = _connect_all(cfg, report)
        owned = [*docker_clients, etcd_client, openstack_client]
    swept: list[str] = []
    dead = dead_runs()  # before: a run that dies during this sweep is not swept by it
    try:
        for client in docker_clients:
            sweep_docker(client, report, dry_run, only_run, include_live)
            if include_live is True and only_run is None:
                sweep_test_image(client, report, dry_run)
            swept.append(sweep_target(cfg, "docker", client))
        if etcd_client is not None:
            sweep_etcd(etcd_client, report, dry_run, only_run, include_live)
            swept.append(sweep_target(cfg, "etcd", etcd_client))
        if openstack_client is not None:
            sweep_neutron(openstack_client, report, dry_run, only_run, include_live)
            swept.append(sweep_target(cfg, "openstack", openstack_client))
    finally:
        for client in owned:
            if client is not None:
                client.close()
    if not dry_run and only_run is None and not report.errors:
        for where in swept:
            mark_swept(where, dead)
        # a sweep of everything the lab has forgets every dead run; a sweep of some of its
        # components, only the dead runs all of whose components have been swept since
        forget_dead_runs(complete_only=not owned)
    return report


def sweep_target(cfg: LabConfig, kind: str, client: Any) -> str:
    """What a sweep of ``client`` covers, as runs record what they touch (Run.touched)."""
    if kind == "docker":
        host = getattr(getattr(client, "workshop_config", None), "host", None) or (
            cfg.docker.host if cfg.docker else ""
        )
        return f"docker:{strip_userinfo(host)}"
    if kind == "etcd":
        return "etcd:" + ",".join(cfg.etcd.endpoints if cfg.etcd else ())
    return f"openstack:{cfg.openstack.cloud if cfg.openstack else ''}"
