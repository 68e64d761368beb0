"""Pure logic: where the configuration comes from and how bad input is reported."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from pytest_workshop.config import from_environment, load_file, render_lab_toml, resolve
from pytest_workshop.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_explicit_beats_env_beats_local_file_beats_conventions(tmp_path: Path) -> None:
    explicit = write(tmp_path / "a.toml", '[lab]\nname = "explicit"\n')
    from_env = write(tmp_path / "b.toml", '[lab]\nname = "from-env"\n')
    write(tmp_path / "lab.toml", '[lab]\nname = "local"\n')
    env = {"WORKSHOP_LAB_CONFIG": str(from_env)}
    assert resolve(explicit, env, tmp_path).name == "explicit"
    assert resolve(None, env, tmp_path).name == "from-env"
    assert resolve(None, {}, tmp_path).name == "local"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve(None, {}, empty).source == "environment conventions (defaults)"


def test_conventions_follow_docker_and_etcdctl() -> None:
    cfg = from_environment(
        {"DOCKER_HOST": "tcp://10.0.0.5:2375", "ETCDCTL_ENDPOINTS": "127.0.0.1:2379,127.0.0.1:22379"}
    )
    assert cfg.docker is not None and cfg.docker.host == "tcp://10.0.0.5:2375"
    assert cfg.etcd is not None and cfg.etcd.endpoints == ("http://127.0.0.1:2379", "http://127.0.0.1:22379")
    assert cfg.allow_breakage is False
    defaults = from_environment({})
    assert defaults.docker and defaults.docker.host == "unix:///var/run/docker.sock"
    assert defaults.etcd and defaults.etcd.endpoints == ("http://127.0.0.1:2379",)


def test_convention_with_missing_cert_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        from_environment({"ETCDCTL_CACERT": str(tmp_path / "nope.crt")})
    assert e.value.key == "ETCDCTL_CACERT" and "nope.crt" in e.value.message


def test_etcd_password_never_in_description() -> None:
    cfg = from_environment(
        {"ETCDCTL_USER": "root:s3cr3t-canary", "ETCDCTL_ENDPOINTS": "http://u:pw-canary@127.0.0.1:2379"}
    )
    text = "\n".join(cfg.describe()) + repr(cfg)
    assert "s3cr3t-canary" not in text and "pw-canary" not in text
    assert "s3cr3t-canary" in cfg.secrets()


@pytest.mark.parametrize(
    ("content", "key", "words"),
    [
        ("[etcd\nendpoints = 1", "", "not valid TOML"),
        ('[etcd]\nendpoint = ["http://127.0.0.1:2379"]\n', "etcd.endpoint", "unknown key"),
        ('[etcdd]\nendpoints = ["http://127.0.0.1:2379"]\n', "etcdd", "unknown section"),
        ('[etcd]\nendpoints = "http://127.0.0.1:2379"\n', "etcd.endpoints", "expected a non-empty list"),
        ('[etcd]\nendpoints = ["127.0.0.1:2379"]\n', "etcd.endpoints", "not a URL"),
        ('[lab]\nallow_breakage = "yes"\n', "lab.allow_breakage", "true or false"),
        ("[timeouts]\nrequest = -1\n", "timeouts.request", "seconds > 0"),
        ('[timeouts.checks]\n"lab3-7" = 3\n', "timeouts.checks.lab3-7", "not a check ID"),
        ('[etcd]\nendpoints = ["https://127.0.0.1:2379"]\n', "etcd.cacert", "need the cluster's CA"),
        ('[etcd]\ncacert = "missing.crt"\n', "etcd.cacert", "cannot read file"),
        ('[docker]\nhost = "/var/run/docker.sock"\n', "docker.host", "not a Docker host URL"),
    ],
)
def test_bad_lab_toml_is_one_line_with_file_key_and_fix(tmp_path: Path, content: str, key: str, words: str) -> None:
    path = write(tmp_path / "lab.toml", content)
    with pytest.raises(ConfigError) as e:
        load_file(path)
    message = e.value.message
    assert "\n" not in message
    assert str(path) in message and words in message and "fix:" in message
    assert e.value.key == key


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_file(tmp_path / "nope.toml", source_label="--lab-config")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; the unreadable case needs a normal user")
def test_unreadable_cert(tmp_path: Path) -> None:
    cert = write(tmp_path / "ca.crt", "x")
    cert.chmod(0)
    path = write(tmp_path / "lab.toml", '[etcd]\ncacert = "ca.crt"\n')
    with pytest.raises(ConfigError, match="cannot read file"):
        load_file(path)


def test_unreadable_cert_by_directory(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").mkdir()  # a directory where a file must be: unreadable as a cert, even for root
    path = write(tmp_path / "lab.toml", '[etcd]\ncacert = "ca.crt"\n')
    with pytest.raises(ConfigError, match="cannot read file"):
        load_file(path)


def test_unknown_cloud_lists_the_known_ones(tmp_path: Path) -> None:
    clouds = write(
        tmp_path / "clouds.yaml",
        "clouds:\n  devstack:\n    auth:\n      auth_url: http://127.0.0.1/identity\n      password: canary\n",
    )
    path = write(tmp_path / "lab.toml", f'[openstack]\ncloud = "devstak"\nclouds_yaml = "{clouds}"\n')
    with pytest.raises(ConfigError) as e:
        load_file(path)
    assert e.value.key == "openstack.cloud" and "devstack" in e.value.message and "canary" not in e.value.message
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert (
        resolve(None, {"OS_CLOUD": "devstack", "OS_CLIENT_CONFIG_FILE": str(clouds)}, elsewhere).openstack is not None
    )
    with pytest.raises(ConfigError, match="OS_CLOUD"):
        resolve(None, {"OS_CLOUD": "nope", "OS_CLIENT_CONFIG_FILE": str(clouds)}, elsewhere)


def test_component_present_only_when_its_section_is(tmp_path: Path) -> None:
    cfg = load_file(write(tmp_path / "lab.toml", '[etcd]\nendpoints = ["http://127.0.0.1:2379"]\n'))
    assert cfg.components == ("etcd",)
    assert not cfg.has("docker")
    with pytest.raises(ValueError):
        cfg.has("dockr")


def test_per_check_timeouts(tmp_path: Path) -> None:
    cfg = load_file(write(tmp_path / "lab.toml", '[timeouts]\ncheck = 20\n[timeouts.checks]\n"LAB3-10" = 5\n'))
    assert cfg.timeouts.for_check("LAB3-10") == 5.0 and cfg.timeouts.for_check("LAB3-01") == 20.0


def test_rendered_lab_toml_round_trips(tmp_path: Path) -> None:
    text = render_lab_toml(
        {"lab": {"name": 'quote"d', "allow_breakage": True}, "timeouts": {"request": 3.0, "checks": {"LAB3-10": 4.0}},
         "etcd": {"endpoints": ["http://127.0.0.1:1"], "members": 1}},
        header="two\nlines",
    )  # fmt: skip
    data = tomllib.loads(text)
    assert data["lab"]["name"] == 'quote"d' and data["timeouts"]["checks"]["LAB3-10"] == 4.0
    cfg = load_file(write(tmp_path / "lab.toml", text))
    assert cfg.etcd and cfg.etcd.expected_members == 1 and cfg.allow_breakage


def test_openstack_secrets_kuryr_engine_and_header(tmp_path: Path) -> None:
    clouds = write(
        tmp_path / "clouds.yaml",
        "clouds:\n"
        "  devstack:\n    auth: {auth_url: 'http://127.0.0.1:5000/v3', username: demo, password: canary-demo}\n"
        "  devstack-admin:\n    auth: {auth_url: 'http://127.0.0.1:5000/v3', username: admin, password: canary-admin}\n",
    )
    path = write(
        tmp_path / "lab.toml",
        f'[openstack]\ncloud = "devstack"\nadmin_cloud = "devstack-admin"\nclouds_yaml = "{clouds}"\n'
        '[kuryr]\ndocker_host = "unix:///run/devstack/docker.sock"\n',
    )
    cfg = load_file(path)
    assert cfg.kuryr is not None and cfg.kuryr.docker_host == "unix:///run/devstack/docker.sock"
    assert {"canary-demo", "canary-admin"} <= set(cfg.secrets())  # both clouds, for redaction
    header = "\n".join(cfg.describe())
    assert "devstack-admin" in header and "unix:///run/devstack/docker.sock" in header and "canary" not in header
    with pytest.raises(ConfigError) as e:
        load_file(write(tmp_path / "bad.toml", '[kuryr]\ndocker_host = "ftp://x"\n'))
    assert e.value.key == "kuryr.docker_host"


def test_openrc_variables_and_os_cloud_admin(tmp_path: Path) -> None:
    clouds = write(
        tmp_path / "clouds.yaml",
        "clouds:\n  lab:\n    auth: {auth_url: 'http://h/v3'}\n  lab-admin:\n    auth: {auth_url: 'http://h/v3'}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg = resolve(None, {"OS_CLOUD": "lab", "OS_CLIENT_CONFIG_FILE": str(clouds)}, elsewhere)
    assert cfg.openstack is not None and cfg.openstack.admin_cloud == "lab-admin"
    openrc = {"OS_AUTH_URL": "http://h/v3", "OS_USERNAME": "demo", "OS_PASSWORD": "pw"}
    from_openrc = resolve(None, openrc, elsewhere).openstack
    assert from_openrc is not None and from_openrc.cloud == "envvars" and from_openrc.clouds_yaml is None
    with pytest.raises(ConfigError) as e:
        resolve(None, {"OS_AUTH_URL": "http://h/v3", "OS_USERNAME": "demo"}, elsewhere)
    assert e.value.key == "OS_PASSWORD" and "openrc" in e.value.fix
