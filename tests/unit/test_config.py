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
        ("[lab]\nparallel = 0\n", "lab.parallel", "whole number >= 1"),
        ("[timeouts]\nrequest = -1\n", "timeouts.request", "seconds > 0"),
        ('[timeouts.checks]\n"lab3-7" = 3\n', "timeouts.checks.lab3-7", "not a check ID"),
        ('[etcd]\nendpoints = ["https://127.0.0.1:2379"]\n', "etcd.cacert", "need the cluster's CA"),
        ('[etcd]\ncacert = "missing.crt"\n', "etcd.cacert", "cannot read file"),
        ('[docker]\nhost = "/var/run/docker.sock"\n', "docker.host", "not a Docker host URL"),
        # issue 10, section 6: accepted before, failing later with misleading hints
        ('[docker]\nhost = "tcp://"\n', "docker.host", "names no address"),
        ('[docker]\nhost = "unix://"\n', "docker.host", "names no address"),
        ('[docker]\nhost = "tcp://10.0.0.7:99999"\n', "docker.host", "port outside 1-65535"),
        ('[etcd]\nendpoints = ["http://127.0.0.1:0"]\n', "etcd.endpoints", "port outside 1-65535"),
        ('[etcd]\nendpoints = ["http://a:2379", "http://a:2379/"]\n', "etcd.endpoints", "listed twice"),
        ("[etcd]\nmembers = 0\n", "etcd.members", "whole number >= 1"),
        ("[swarm]\nmanagers = 0\n", "swarm.managers", "whole number >= 1"),
        (
            '[swarm]\nnodes = 1\nmanagers = 3\n[docker]\nhost = "unix:///x.sock"\n',
            "swarm.managers",
            "3 managers in a swarm of 1",
        ),
        ("[swarm]\nnodes = 3\n", "swarm", "no engine"),
        ('[swarm]\nhosts = ["tcp://10.0.0.7:65536"]\n', "swarm.hosts", "port outside 1-65535"),
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


def test_directory_as_config_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory, not a lab\.toml file") as e:
        load_file(tmp_path, source_label="WORKSHOP_LAB_CONFIG")
    assert str(tmp_path / "lab.toml") in e.value.message and "WORKSHOP_LAB_CONFIG" in e.value.message


def test_workshop_shape_is_standard_not_the_number_of_endpoints(tmp_path: Path) -> None:
    one = load_file(write(tmp_path / "one.toml", '[etcd]\nendpoints = ["http://127.0.0.1:2379"]\n[docker]\n[swarm]\n'))
    assert one.etcd is not None and one.etcd.expected_members == 3
    assert one.swarm is not None and (one.swarm.expected_nodes, one.swarm.expected_managers) == (3, 3)
    reduced = load_file(write(tmp_path / "r.toml", "[etcd]\nmembers = 1\n[docker]\n[swarm]\nnodes = 1\nmanagers = 1\n"))
    assert reduced.etcd is not None and reduced.etcd.expected_members == 1
    assert reduced.swarm is not None and (reduced.swarm.expected_nodes, reduced.swarm.expected_managers) == (1, 1)
    assert from_environment({"ETCDCTL_ENDPOINTS": "127.0.0.1:2379"}).etcd.expected_members == 3  # type: ignore[union-attr]


def test_bad_environment_gets_a_shell_fix() -> None:
    with pytest.raises(ConfigError) as e:
        from_environment({"ETCDCTL_ENDPOINTS": "http://127.0.0.1:2379/v3/x"})
    assert e.value.key == "ETCDCTL_ENDPOINTS" and "export ETCDCTL_ENDPOINTS=" in e.value.fix
    with pytest.raises(ConfigError) as e:
        from_environment({"DOCKER_HOST": "tcp://"})
    assert e.value.key == "DOCKER_HOST" and "export DOCKER_HOST=" in e.value.fix


def test_clouds_yaml_errors_name_the_line_and_the_key_that_pointed_at_it(tmp_path: Path) -> None:
    clouds = write(tmp_path / "clouds.yaml", 'clouds:\n  devstack:\n    auth: {auth_url: "http://x/identity\n')
    lab = write(tmp_path / "lab.toml", f'[openstack]\nclouds_yaml = "{clouds}"\n')
    with pytest.raises(ConfigError) as e:
        load_file(lab)
    lines = len(clouds.read_text().splitlines())
    line = int(e.value.message.split("at line ")[1].split(":")[0])
    assert 1 <= line <= lines
    assert "openstack.cloud" in e.value.message and str(lab) in e.value.message


def test_no_clouds_yaml_lists_the_paths_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    lab = write(tmp_path / "lab.toml", '[openstack]\ncloud = "mycloud"\n')
    if Path("/etc/openstack/clouds.yaml").exists():
        pytest.skip("this machine has /etc/openstack/clouds.yaml")
    with pytest.raises(ConfigError) as e:
        load_file(lab)
    assert e.value.key == "openstack" and "/etc/openstack/clouds.yaml" in e.value.message
    assert str(tmp_path / ".config" / "openstack" / "clouds.yaml") in e.value.message


def test_unreadable_cert() -> None:
    """Root reads every file, and CI runs as root: the load runs as the unprivileged user nobody
    (setpriv), with the system's Python (the project's may live under /root, closed to nobody)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() == 0:
        python, setpriv = shutil.which("python3", path="/usr/bin:/bin"), shutil.which("setpriv")
        if not python or not setpriv:
            pytest.fail("the unreadable-file test needs /usr/bin/python3 and setpriv (util-linux) to drop root")
        prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", python]
    else:
        prefix = [sys.executable]
    repo = Path(__file__).resolve().parents[2]
    folder = Path(tempfile.mkdtemp(prefix="workshop-unreadable-"))
    try:
        folder.chmod(0o755)
        write(folder / "ca.crt", "x").chmod(0)
        path = write(folder / "lab.toml", '[etcd]\ncacert = "ca.crt"\n')
        path.chmod(0o644)
        code = "from pytest_workshop.config import load_file; load_file(__import__('pathlib').Path(__import__('sys').argv[1]))"
        result = subprocess.run(
            [*prefix, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
            cwd="/",
        )
        assert result.returncode != 0, "an unreadable cacert was accepted"
        assert "cannot read file" in result.stderr and str(folder / "ca.crt") in result.stderr, result.stderr[-1500:]
    finally:
        shutil.rmtree(folder)


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
        {
            "lab": {"name": 'quote"d', "allow_breakage": True},
            "timeouts": {"request": 3.0, "checks": {"LAB3-10": 4.0}},
            "etcd": {"endpoints": ["http://127.0.0.1:1"], "members": 1},
        },
        header="two\nlines",
    )
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
