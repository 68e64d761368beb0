"""Lab 0: ready for the workshop — is every machine fit to start? Passes on the workshop's starting
state (nothing done yet) and on a finished lab; each check that fails says what to fix first."""

from __future__ import annotations

import itertools

import pytest

pytestmark = pytest.mark.workshop_lab("lab0", "Lab 0: Ready for the workshop", requires=["docker"])

MIN_API = (1, 41)  # Docker Engine 20.10: what the guide's commands and the suites' client need
MIN_ETCD = (3, 4)  # the guide's etcd flags and `etcdctl` v3 commands
CLOCK_BOUND_S = 1.0  # etcd warns past 1 s between peers; certificates need agreeing clocks
MIN_MEMORY_MIB, MIN_DISK_MIB = 1024, 3072
KERNEL_NEEDS = ("bridge", "veth", "vxlan", "overlay")


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


@pytest.mark.check(
    "LAB0-01",
    "Every machine's Docker engine answers, Docker 20.10 (API 1.41) or newer",
    step="0.1",
    component="docker",
    hint="start the engine (`systemctl start docker`) on the machines named, or install Docker Engine 20.10 or newer (Debian/Ubuntu: `apt-get install docker.io`)",
)
def test_engines_answer(lab_survey, record_property):
    assert not lab_survey.unreachable, "engines that do not answer: " + "; ".join(
        f"{host}: {why}" for host, why in lab_survey.unreachable.items()
    )
    versions = {
        m.label: (m.info.get("ServerVersion", "?"), m.client.version()["ApiVersion"]) for m in lab_survey.machines
    }
    record_property("note", ", ".join(f"{name} Docker {v} (API {api})" for name, (v, api) in versions.items()))
    old = [f"{name} runs Docker {v} (API {api})" for name, (v, api) in versions.items() if version(api) < MIN_API]
    assert not old, "; ".join(old) + f": the workshop needs API {'.'.join(map(str, MIN_API))} or newer"


@pytest.mark.check(
    "LAB0-02",
    "No two machines share a hostname, a machine-id or a Docker engine ID",
    step="0.1",
    component="docker",
    hint="machines cloned from one image: give each its own hostname (`hostnamectl set-hostname`), machine-id (`rm /etc/machine-id && systemd-machine-id-setup`) and engine ID (stop docker, remove /etc/docker/key.json, start docker)",
)
def test_machines_told_apart(lab_survey):
    shared = []
    for what, of in (
        ("hostname", lambda m: m.facts["hostname"]),
        ("machine-id", lambda m: m.facts["machine_id"]),
        ("Docker engine ID", lambda m: m.info.get("ID", "")),
    ):
        ordered = sorted(lab_survey.machines, key=of)
        for value, same in itertools.groupby(ordered, key=of):
            hosts = [m.label for m in same]
            if value and len(hosts) > 1:
                shared.append(f"{' and '.join(hosts)} share the {what} {value}")
    assert not shared, "; ".join(shared)


@pytest.mark.check(
    "LAB0-03",
    "The machines' clocks agree within 1 s",
    step="0.1",
    component="docker",
    hint="run a time service on every machine (`timedatectl set-ntp true`, or chrony) and check `timedatectl`",
)
def test_clocks_agree(lab_survey, record_property):
    offsets = {lab_survey.label_of(host): offset for host, offset in lab_survey.clock_offsets.items()}
    record_property("note", ", ".join(f"{name} {offset:+.3f} s" for name, offset in offsets.items()))
    apart = max(offsets.values()) - min(offsets.values())
    assert apart <= CLOCK_BOUND_S, (
        f"the machines' clocks are {apart:.1f} s apart (against this machine: "
        + ", ".join(f"{name} {offset:+.1f} s" for name, offset in offsets.items())
        + f"), more than the {CLOCK_BOUND_S:g} s etcd tolerates between peers"
    )


@pytest.mark.check(
    "LAB0-04",
    "Every machine has the free memory and disk the labs need",
    step="0.1",
    component="docker",
    hint="free memory (stop what else runs) or give the VM more; free disk in Docker's data root (`docker system prune`, or a bigger disk)",
)
def test_memory_and_disk(lab_survey, record_property):
    short = []
    for m in lab_survey.machines:
        memory, disk = m.facts["mem_available_kib"] // 1024, m.facts["disk_free_kib"] // 1024
        if memory < MIN_MEMORY_MIB:
            short.append(f"{m.label} has {memory} MiB of memory available (the labs need {MIN_MEMORY_MIB})")
        if disk < MIN_DISK_MIB:
            short.append(
                f"{m.label} has {disk} MiB free in {m.info.get('DockerRootDir')} (the labs need {MIN_DISK_MIB})"
            )
    record_property(
        "note", f"{len(lab_survey.machines)} machines, at least {MIN_MEMORY_MIB} MiB and {MIN_DISK_MIB} MiB"
    )
    assert not short, "; ".join(short)


@pytest.mark.check(
    "LAB0-05",
    "The kernel has what the labs need (ip_vs: as the lab says)",
    step="0.1",
    component="docker",
    hint="load the modules (`modprobe vxlan overlay`) or use a kernel that has them; without ip_vs, say routing_mesh = false in lab.toml's [swarm]",
)
def test_kernel_features(kernel_features, lab, record_property):
    missing = [f"{f} ({kernel_features.needed_for(f)})" for f in KERNEL_NEEDS if not kernel_features.present[f]]
    assert not missing, f"kernel {kernel_features.release} has no " + ", ".join(missing)
    if not kernel_features.present["ip_vs"]:
        routing_mesh = bool(lab.swarm and lab.swarm.routing_mesh)
        assert not routing_mesh, (
            f"kernel {kernel_features.release} has no ip_vs ({kernel_features.how['ip_vs']}), and the lab "
            "expects Swarm's routing mesh (routing_mesh = true)"
        )
        record_property("note", "no ip_vs: no routing mesh or VIP endpoints (the lab says routing_mesh = false)")


@pytest.mark.check(
    "LAB0-06",
    "etcd and etcdctl are installed on every machine, 3.4 or newer, of one version",
    step="0.1",
    component="etcd",
    hint="install etcd's release binaries (etcd and etcdctl, the same version) in /usr/local/bin, or Debian's etcd-server and etcd-client",
)
def test_etcd_binaries(lab_survey, record_property):
    problems, seen = [], set()
    for m in lab_survey.machines:
        for name, found in m.facts["binaries"].items():
            if not found["path"]:
                problems.append(f"{m.label} has no {name} on its PATH")
            elif version(found["version"]) < MIN_ETCD:
                problems.append(f"{m.label}'s {found['path']} is version {found['version'] or '(unknown)'}")
            seen.add(found["version"])
    record_property("note", "etcd " + ", ".join(sorted(v for v in seen if v)))
    assert not problems, "; ".join(problems) + f" (the workshop needs {'.'.join(map(str, MIN_ETCD))} or newer)"
    assert len(seen) == 1, f"the machines have different etcd versions: {', '.join(sorted(seen))}"


@pytest.mark.check(
    "LAB0-07",
    "The workshop's ports are free on every machine, or held by their own service",
    step="0.1",
    component="docker",
    hint="stop what holds the port (the message names it), or move it elsewhere: Swarm and etcd cannot use another port in the guide",
)
def test_ports_free(lab_survey, workshop_ports):
    taken = []
    for m in lab_survey.machines:
        for port in workshop_ports:
            foreign = [owner for owner in m.held(port) if owner.split(" ")[0] not in port.owners]
            if foreign:
                taken.append(f"{m.label}: {port} is held by {', '.join(foreign)}")
    assert not taken, "; ".join(taken)


@pytest.mark.check(
    "LAB0-08",
    "The workshop's ports pass between the machines",
    step="0.1",
    component="docker",
    hint="open the ports between the machines (firewall, security group of the VMs): TCP 2377, 7946, 2379, 2380 and UDP 7946, 4789",
)
def test_ports_pass(lab_survey, workshop_ports, lab, record_property):
    if len(lab.swarm_hosts) < 2:
        pytest.skip(f"{lab.source} lists one machine: nothing passes between machines")
    paths = [p for p in lab_survey.paths() if p.port in workshop_ports]
    record_property("note", f"{len(paths)} paths probed")
    blocked: dict[tuple[str, str, str], list[str]] = {}  # (port, to, what happened) -> from
    for p in paths:
        if not p.passes:
            blocked.setdefault((str(p.port), p.target, p.outcome), []).append(p.source)
    blocked_text = [f"{port} to {to} from {', '.join(froms)}: {what}" for (port, to, what), froms in blocked.items()]
    assert not blocked_text, "; ".join(blocked_text)


@pytest.mark.check(
    "LAB0-09",
    "The images the guide uses are on every machine",
    step="0.1",
    component="docker",
    hint="no registry at the event: load the images on each machine before (`docker load`, or `workshop app build` for lab5's app)",
)
def test_guide_images(lab_survey):
    missing = [
        f"{lab_survey.label_of(host)} lacked {', '.join(refs)}"
        for host, refs in lab_survey.images_missing.items()
        if refs
    ]
    built = f" ({lab_survey.probe_image} was built on them just now, for lab0's own probes)"
    assert not missing, "; ".join(missing) + (built if any(lab_survey.probe_image in m for m in missing) else "")


@pytest.mark.check(
    "LAB0-10",
    "DevStack's Keystone and Neutron answer, and the OVN agent is alive",
    step="0.2",
    component="openstack",
    hint="start DevStack's services (`sudo systemctl restart devstack@keystone devstack@q-svc ovn-controller`) and read their logs",
)
def test_devstack_up(devstack, lab):
    answers = [devstack.endpoint_answers(service, lab.timeouts.request) for service in ("identity", "network")]
    problems = [detail for ok, detail in answers if not ok]
    ovn = [a for a in devstack.agents if "ovn controller" in a.agent_type.lower()]
    if not ovn:
        problems.append("no OVN controller agent is registered")
    problems += [f"the OVN controller agent on {a.host} is not alive" for a in ovn if not a.alive]
    assert not problems, "; ".join(problems)


@pytest.mark.check(
    "LAB0-11",
    "kuryr-libnetwork's plugin spec file is in place and kuryr answers Docker",
    step="0.2",
    component="kuryr",
    hint="kuryr-libnetwork must run and /usr/lib/docker/plugins/kuryr/kuryr.spec must hold its URL (DevStack: `sudo systemctl status devstack@kuryr-libnetwork`)",
)
def test_kuryr_ready(kuryr_plugin):
    assert kuryr_plugin.problem() is None, kuryr_plugin.problem()
