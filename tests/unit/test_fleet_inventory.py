"""Reading fleets (pure logic: files in, LabConfigs out; nothing is contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_workshop.errors import ConfigError
from pytest_workshop.fleet import parse_shard, read_fleet, shard

FLEET_FILE = """
[defaults.docker]
host = "ssh://root@{address}"
[defaults.etcd]
endpoints = ["http://{address}:2379"]
username = "root"
password = "{password}"

[labs.attendee-01]
address = "10.0.0.11"
password = "s3cret-one"

[labs.attendee-02]
address = "10.0.0.12"
password = "s3cret-two"
[labs.attendee-02.swarm]
nodes = 1
managers = 1
"""

ANSIBLE_YAML = """
all:
  vars:
    ansible_user: debian
    workshop_etcd_endpoints: ["http://{{ ansible_host }}:2379"]
  children:
    attendees:
      vars:
        workshop_components: [docker, etcd, swarm]
        workshop_swarm_nodes: 1
      hosts:
        attendee-07:
          ansible_host: 10.0.0.17
          ansible_password: hunter2-seven
        attendee-08:
          ansible_host: 10.0.0.18
          workshop_docker_host: tcp://10.0.0.18:2376
          workshop_docker_tls_verify: true
          workshop_docker_cert_path: certs/attendee-08
"""

ANSIBLE_INI = """
# the instructor's inventory
[attendees]
attendee-[01:03] ansible_user=debian

[attendees:vars]
workshop_etcd_endpoints=["http://{{ ansible_host }}:2379"]
ansible_password='pa ss'

[classroom:children]
attendees

[classroom:vars]
workshop_lab_parallel=2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_fleet_file_gives_each_lab_the_defaults_with_its_own_values(tmp_path):
    labs = read_fleet(write(tmp_path, "fleet.toml", FLEET_FILE))
    assert [lab.name for lab in labs] == ["attendee-01", "attendee-02"]
    one, two = labs
    assert one.docker is not None and one.docker.host == "ssh://root@10.0.0.11"
    assert one.etcd is not None and one.etcd.endpoints == ("http://10.0.0.11:2379",)
    assert one.etcd.password == "s3cret-one" and "s3cret-one" in one.secrets()
    assert one.swarm is None and two.swarm is not None and two.swarm.expected_nodes == 1
    assert "s3cret-two" in two.secrets() and "s3cret-one" not in two.secrets()


def test_an_ansible_yaml_inventory_maps_hosts_to_labs(tmp_path):
    write(tmp_path, "certs/attendee-08/ca.pem", "x")
    labs = {lab.name: lab for lab in read_fleet(write(tmp_path, "inventory.yml", ANSIBLE_YAML))}
    seven, eight = labs["attendee-07"], labs["attendee-08"]
    assert seven.host == "ssh://debian@10.0.0.17"
    assert seven.docker is not None and seven.docker.host == "ssh://debian@10.0.0.17"
    assert seven.etcd is not None and seven.etcd.endpoints == ("http://10.0.0.17:2379",)
    assert seven.swarm is not None and seven.swarm.expected_nodes == 1
    assert "hunter2-seven" in seven.secrets() and "hunter2-seven" not in eight.secrets()
    assert eight.docker is not None and eight.docker.host == "tcp://10.0.0.18:2376" and eight.docker.tls_verify
    assert eight.docker.cert_path == tmp_path / "certs/attendee-08"


def test_an_ansible_ini_inventory_with_a_host_range_and_group_vars(tmp_path):
    labs = read_fleet(write(tmp_path, "hosts.ini", ANSIBLE_INI))
    assert [lab.name for lab in labs] == ["attendee-01", "attendee-02", "attendee-03"]
    assert all(lab.parallel == 2 for lab in labs)  # from the parent group's vars
    assert labs[1].etcd is not None and labs[1].etcd.endpoints == ("http://attendee-02:2379",)
    assert labs[0].host == "ssh://debian@attendee-01" and "pa ss" in labs[0].secrets()


def test_a_directory_of_lab_tomls_names_labs_by_file(tmp_path):
    write(tmp_path / "labs", "attendee-01.toml", '[etcd]\nendpoints = ["http://10.0.0.11:2379"]\n')
    write(tmp_path / "labs", "b.toml", '[lab]\nname = "attendee-02"\n[etcd]\nendpoints = ["http://10.0.0.12:2379"]\n')
    assert [lab.name for lab in read_fleet(tmp_path / "labs")] == ["attendee-01", "attendee-02"]


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        (
            "fleet.toml",
            FLEET_FILE.replace("{address}:2379", "{adress}:2379"),
            "lab attendee-01: etcd.endpoints: unknown variable {adress}",
        ),
        (
            "fleet.toml",
            FLEET_FILE.replace('"10.0.0.12"', '"10.0.0.12"\netcd = { endpoints = ["10.0.0.12:2379"] }'),
            "lab attendee-02: etcd.endpoints",
        ),
        ("fleet.toml", "[labs]\n", "labs: no [labs.NAME] table"),
        (
            "inventory.yml",
            ANSIBLE_YAML.replace("workshop_swarm_nodes: 1", "workshop_swarm_nodes: many"),
            "lab attendee-07: workshop_swarm_nodes:",
        ),
        (
            "inventory.yml",
            ANSIBLE_YAML.replace("workshop_swarm_nodes", "workshop_swarms_nodes"),
            "workshop_swarms_nodes: not a workshop variable",
        ),
        (
            "inventory.yml",
            ANSIBLE_YAML.replace("{{ ansible_host }}", "{{ ansible_host | ipwrap }}"),
            "only {{ variable }} is supported",
        ),
        ("inventory.yml", "all: [1, 2\n", "not valid YAML at line"),
        ("hosts.ini", ANSIBLE_INI.replace("[classroom:vars]", "[classroom:varz]"), "unknown section kind :varz"),
        (
            "hosts.ini",
            ANSIBLE_INI.replace("workshop_lab_parallel=2", "workshop_lab_parallel=0"),
            "lab attendee-01: workshop_lab_parallel: expected a whole number",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_lab_and_key(tmp_path, name, text, words):
    write(tmp_path, "certs/attendee-08/ca.pem", "x")
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        read_fleet(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and words in message, message


def test_two_labs_of_one_name_are_refused(tmp_path):
    write(tmp_path / "labs", "a.toml", '[lab]\nname = "same"\n')
    write(tmp_path / "labs", "b.toml", '[lab]\nname = "same"\n')
    with pytest.raises(ConfigError, match="two labs have this name"):
        read_fleet(tmp_path / "labs")


def test_shards_are_deterministic_and_cover_the_fleet_once(tmp_path):
    labs = read_fleet(write(tmp_path, "hosts.ini", ANSIBLE_INI.replace("[01:03]", "[01:10]")))
    shards = [shard(labs, (k, 3)) for k in (1, 2, 3)]
    names = sorted(lab.name for s in shards for lab in s)
    assert names == sorted(lab.name for lab in labs)
    assert [lab.name for lab in shards[0]] == ["attendee-01", "attendee-04", "attendee-07", "attendee-10"]
    assert shard(list(reversed(labs)), (1, 3)) == shards[0]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", ""])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ConfigError, match="--labs-shard"):
        parse_shard(text)
