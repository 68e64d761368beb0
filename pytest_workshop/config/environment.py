"""The configuration an attendee gets with no file at all: what docker, etcdctl and openstack
would use (DOCKER_*, ETCDCTL_*, OS_CLOUD / OS_* variables, DevStack's clouds.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pytest_workshop.config.clouds import check_cloud, find_clouds_yaml, read_clouds, searched
from pytest_workshop.config.model import (
    ENV_CLOUD,
    DockerConfig,
    EtcdConfig,
    KuryrConfig,
    LabConfig,
    OpenStackConfig,
    SwarmConfig,
)
from pytest_workshop.config.values import (
    Ctx,
    check_etcd_tls,
    p_docker_host,
    p_endpoint_list,
    p_readable_dir,
    p_readable_file,
)
from pytest_workshop.errors import ConfigError

DEVSTACK_CLOUDS = Path("/etc/openstack/clouds.yaml")


def from_environment(env: Mapping[str, str]) -> LabConfig:
    """The configuration an attendee gets with no file: what docker, etcdctl and openstack would use."""
    docker = _docker_from_env(env)
    etcd = _etcd_from_env(env)
    openstack = _openstack_from_env(env)
    used = [k for k in ("DOCKER_HOST", "ETCDCTL_ENDPOINTS", "OS_CLOUD") if env.get(k)]
    source = "environment conventions" + (f" ({', '.join(used)})" if used else " (defaults)")
    return LabConfig(
        name=env.get("HOSTNAME") or os.uname().nodename,
        source=source,
        # Conventions never allow breakage: only a lab.toml written for that purpose can.
        allow_breakage=False,
        docker=docker,
        # A workshop machine's engine is its Swarm; lab2 looks at it through [docker] host.
        swarm=SwarmConfig(),
        etcd=etcd,
        openstack=openstack,
        kuryr=_kuryr_from_env(),
    )


# Where DevStack's kuryr-libnetwork plugin registers itself with Docker
KURYR_SPECS = (Path("/usr/lib/docker/plugins/kuryr/kuryr.spec"), Path("/etc/docker/plugins/kuryr.spec"))


def _kuryr_from_env() -> KuryrConfig | None:
    return KuryrConfig() if any(p.is_file() for p in KURYR_SPECS) else None


def _docker_from_env(env: Mapping[str, str]) -> DockerConfig:
    host = env.get("DOCKER_HOST") or DockerConfig.host
    ctx = Ctx("environment", Path.cwd(), "DOCKER_HOST")
    p_docker_host(host, ctx, example="export DOCKER_HOST=unix:///var/run/docker.sock (or tcp://HOST:2376)")
    # docker's own rule: DOCKER_TLS_VERIFY set to anything but "" or "0" turns verification on.
    tls_verify = env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    cert_path = None
    if tls_verify or env.get("DOCKER_CERT_PATH"):
        raw = env.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")
        cert_path = p_readable_dir(raw, Ctx("environment", Path.cwd(), "DOCKER_CERT_PATH"))
    return DockerConfig(host=host, tls_verify=tls_verify, cert_path=cert_path)


def _etcd_from_env(env: Mapping[str, str]) -> EtcdConfig:
    ctx = Ctx("environment", Path.cwd(), "ETCDCTL_ENDPOINTS")
    files: dict[str, Path] = {}
    for var, attr in (("ETCDCTL_CACERT", "cacert"), ("ETCDCTL_CERT", "cert"), ("ETCDCTL_KEY", "key")):
        if env.get(var):
            files[attr] = p_readable_file(env[var], Ctx("environment", Path.cwd(), var))
    raw = env.get("ETCDCTL_ENDPOINTS")
    if raw:
        scheme = "https" if files.get("cacert") else "http"
        # etcdctl accepts bare HOST:PORT; give it the scheme etcdctl would use.
        eps = [e if "://" in e else f"{scheme}://{e}" for e in (x.strip() for x in raw.split(",")) if e]
        endpoints = p_endpoint_list(
            eps, ctx, example="export ETCDCTL_ENDPOINTS=http://127.0.0.1:2379,http://10.0.0.8:2379"
        )
    else:
        endpoints = EtcdConfig.endpoints
    username = password = None
    user = env.get("ETCDCTL_USER")
    if user:
        username, _, password = user.partition(":")
        password = password or env.get("ETCDCTL_PASSWORD") or None
        if not password:
            raise ConfigError(
                "environment",
                "ETCDCTL_USER",
                "a user without a password",
                "write ETCDCTL_USER=name:password or set ETCDCTL_PASSWORD",
            )
    etcd = EtcdConfig(
        endpoints=endpoints,
        username=username,
        password=password,
        cacert=files.get("cacert"),
        cert=files.get("cert"),
        key=files.get("key"),
    )
    check_etcd_tls(etcd, "environment")
    return etcd


def _openstack_from_env(env: Mapping[str, str]) -> OpenStackConfig | None:
    cloud = env.get("OS_CLOUD")
    if cloud:
        clouds_yaml = find_clouds_yaml(env, "environment")
        if clouds_yaml is None:
            raise ConfigError(
                "environment",
                "OS_CLOUD",
                f"cloud {cloud!r} set but no clouds.yaml found (searched {searched(env)})",
                "create ~/.config/openstack/clouds.yaml or /etc/openstack/clouds.yaml, or unset OS_CLOUD",
            )
        check_cloud(clouds_yaml, cloud, source="environment", key="OS_CLOUD")
        admin = f"{cloud}-admin" if f"{cloud}-admin" in read_clouds(clouds_yaml, "environment", "OS_CLOUD") else None
        return OpenStackConfig(cloud=cloud, clouds_yaml=clouds_yaml, admin_cloud=admin)
    if env.get("OS_AUTH_URL"):
        # a sourced openrc: openstacksdk builds the cloud "envvars" from the OS_* variables
        for var in ("OS_USERNAME", "OS_PASSWORD"):
            if not env.get(var) and not env.get("OS_TOKEN") and not env.get("OS_APPLICATION_CREDENTIAL_SECRET"):
                raise ConfigError(
                    "environment", var, "OS_AUTH_URL is set but this is not", "source the complete openrc file"
                )
        return OpenStackConfig(cloud=ENV_CLOUD, clouds_yaml=None)
    if DEVSTACK_CLOUDS.is_file():
        # DevStack writes this file with a 'devstack' cloud; a machine with it has OpenStack.
        check_cloud(DEVSTACK_CLOUDS, "devstack", source=str(DEVSTACK_CLOUDS), key="clouds.devstack")
        return OpenStackConfig(cloud="devstack", clouds_yaml=DEVSTACK_CLOUDS, admin_cloud="devstack-admin")
    return None
