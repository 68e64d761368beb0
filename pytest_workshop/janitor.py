"""Remove what runs left behind: Docker objects labelled with a run id and etcd keys under a run prefix.

By default only runs whose process is gone are swept (a live run on the same lab keeps its
objects); ``only_run`` sweeps one run (the plugin does this for itself at the end, which
catches what a crashed xdist worker could not tear down); ``include_live`` sweeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.run import ETCD_ROOT, LABEL_RUN, forget_dead_runs, run_is_alive, run_is_registered


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


def sweep(
    cfg: LabConfig,
    dry_run: bool = False,
    include_live: bool | str = False,
    only_run: str | None = None,
    docker_client: Any = None,
    etcd_client: Any = None,
) -> SweepReport:
    """Sweep every configured component (or only the given clients, when passed)."""
    report = SweepReport()
    own_docker = own_etcd = False
    if docker_client is None and etcd_client is None:
        if cfg.docker:
            from pytest_workshop.components import docker

            try:
                docker_client, own_docker = docker.connect(cfg.docker, cfg.timeouts), True
            except WorkshopError as e:
                report.errors.append(e.message)
        if cfg.etcd:
            from pytest_workshop.components import etcd

            try:
                etcd_client, own_etcd = etcd.connect(cfg.etcd, cfg.timeouts), True
            except WorkshopError as e:
                report.errors.append(e.message)
    try:
        if docker_client is not None:
            sweep_docker(docker_client, report, dry_run, only_run, include_live)
        if etcd_client is not None:
            sweep_etcd(etcd_client, report, dry_run, only_run, include_live)
    finally:
        if own_docker:
            docker_client.close()
        if own_etcd:
            etcd_client.close()
    if not dry_run and only_run is None and not report.errors:
        forget_dead_runs()
    return report
