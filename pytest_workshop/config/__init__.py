"""The lab model and where it comes from. Reads files and the environment; opens no connections."""

from pytest_workshop.config.loader import ENV_CONFIG, from_environment, from_mapping, load_file, resolve
from pytest_workshop.config.model import (
    COMPONENTS,
    AppConfig,
    DockerConfig,
    EtcdConfig,
    KuryrConfig,
    LabConfig,
    OpenStackConfig,
    SwarmConfig,
    Timeouts,
    strip_userinfo,
)
from pytest_workshop.config.writer import render_lab_toml

__all__ = [
    "COMPONENTS",
    "ENV_CONFIG",
    "AppConfig",
    "DockerConfig",
    "EtcdConfig",
    "KuryrConfig",
    "LabConfig",
    "OpenStackConfig",
    "SwarmConfig",
    "Timeouts",
    "from_environment",
    "from_mapping",
    "load_file",
    "render_lab_toml",
    "resolve",
    "strip_userinfo",
]
