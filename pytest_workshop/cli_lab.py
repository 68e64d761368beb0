"""`workshop lab`: the embedded reference lab (up, down, status) and the embedded fleet."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_workshop.lab.settings import LabSettings

if TYPE_CHECKING:
    from pytest_workshop.lab.embedded import EmbeddedLab


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pytest_workshop.lab.embedded import DEFAULT_STATE_DIR
    from pytest_workshop.lab.fleet import FLEET_DIR

    lab = sub.add_parser("lab", help="the embedded reference lab (Linux, root)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    d = LabSettings()
    up = lab_sub.add_parser(
        "up", help="start N lab machines (Docker engines in a Swarm) and an etcd cluster; write lab.toml"
    )
    _up_options(up, d)
    shell = lab_sub.add_parser("shell", help="a shell on one of the lab's machines (node1.., devstack)")
    shell.add_argument("machine", help="node1, node2, ... or devstack")
    shell.epilog = "workshop lab shell MACHINE [-- COMMAND...]: a command to run there instead of a login shell"
    for name in ("up", "down", "status", "shell"):
        helps = {
            "down": "stop the embedded lab and remove everything it started",
            "status": "show the embedded lab's machines and members",
        }
        p = {"up": up, "shell": shell}.get(name) or lab_sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument(
            "--dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help=f"lab state directory (default {DEFAULT_STATE_DIR})",
        )
        if name == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name in ("down", "status"):
            p.add_argument("--fleet", action="store_true", help="the embedded fleet (`lab up --fleet N`), all of it")
        p.add_argument(
            "--fleet-dir", type=Path, default=FLEET_DIR, help=f"the embedded fleet's state (default {FLEET_DIR})"
        )


def _up_options(up: argparse.ArgumentParser, d: LabSettings) -> None:
    up.add_argument(
        "--config", type=Path, default=Path("lab.toml"), help="where to write lab.toml (default ./lab.toml)"
    )
    up.add_argument("--nodes", type=int, default=d.nodes, metavar="N", help=f"lab machines (default {d.nodes})")
    up.add_argument(
        "--managers",
        type=int,
        default=None,
        metavar="M",
        help="how many of them are Swarm managers (default: min(3, N))",
    )
    up.add_argument(
        "--etcd-members",
        type=int,
        default=None,
        metavar="K",
        help="etcd members, member i on node i (default: min(3, N))",
    )
    up.add_argument(
        "--etcd-port-base",
        type=int,
        default=d.etcd_port_base,
        metavar="PORT",
        help=f"member i is reachable from this machine on 127.0.0.1:PORT+i (default {d.etcd_port_base})",
    )
    assert d.etcd_quota_bytes is not None
    up.add_argument(
        "--etcd-quota-mib",
        type=int,
        default=d.etcd_quota_bytes >> 20,
        metavar="MIB",
        help=f"etcd's --quota-backend-bytes in MiB; small so the out-of-space exercise is quick "
        f"(default {d.etcd_quota_bytes >> 20})",
    )
    up.add_argument(
        "--prefix", default=d.prefix, help=f"names of the lab's namespaces and cgroups (default {d.prefix})"
    )
    up.add_argument(
        "--segment", default=d.segment, help=f"the lab network, inside its namespaces (default {d.segment})"
    )
    up.add_argument(
        "--swarm-pool", default=d.swarm_pool, help=f"Swarm's address pool for overlays (default {d.swarm_pool})"
    )
    up.add_argument("--test-image", default=d.test_image, help=f"tag of the suites' image (default {d.test_image})")
    _extra_up_options(up, d)
    _fleet_up_options(up)


def _extra_up_options(up: argparse.ArgumentParser, d: LabSettings) -> None:
    """What the lab has besides its machines: OpenStack, or nothing set up at all (--bare)."""
    up.add_argument(
        "--with",
        dest="extras",
        action="append",
        default=[],
        choices=["openstack"],
        help="also start OpenStack: a DevStack machine with Keystone, Neutron (ML2/OVN) and kuryr",
    )
    up.add_argument(
        "--keystone-port",
        type=int,
        default=d.keystone_port,
        metavar="PORT",
        help=f"Keystone on 127.0.0.1:PORT (default {d.keystone_port})",
    )
    up.add_argument(
        "--neutron-port",
        type=int,
        default=d.neutron_port,
        metavar="PORT",
        help=f"the Neutron API on 127.0.0.1:PORT (default {d.neutron_port})",
    )
    up.add_argument(
        "--bare",
        action="store_true",
        help="the workshop's starting state: engines in no Swarm, no etcd cluster, the guide's images; "
        "the attendee does the rest (suites/lab*/README.md)",
    )


def _fleet_up_options(up: argparse.ArgumentParser) -> None:
    up.add_argument(
        "--fleet",
        type=int,
        default=None,
        metavar="N",
        help="instead: N independent small labs (attendee-01..), for fleet runs; writes --out/labs/*.toml, "
        "fleet.toml and inventory.yml",
    )
    up.add_argument(
        "--multi-node",
        type=int,
        default=1,
        metavar="K",
        help="with --fleet: how many labs have three machines (default 1; the others have one)",
    )
    up.add_argument(
        "--out", type=Path, default=Path("fleet"), help="with --fleet: where to write the inventories (default ./fleet)"
    )
    up.add_argument(
        "--ssh",
        type=int,
        default=0,
        metavar="K",
        help="with --fleet: how many labs are reached over SSH (machine and engine); their clients need "
        "HOME=OUT/ssh-home (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    from pytest_workshop.lab.embedded import EmbeddedLab

    if getattr(args, "fleet", None) not in (None, False):
        return _fleet(args)
    lab = EmbeddedLab(args.dir)
    if args.lab_command == "shell":
        import subprocess

        return subprocess.call(lab.shell_argv(args.machine, getattr(args, "shell_command", None) or None))
    if args.lab_command == "up":
        return _up(lab, args)
    if args.lab_command == "down":
        done = lab.down()
        print("\n".join(done) if done else "nothing to stop")
        return 0
    status = lab.status()
    if status.get("name"):
        from pytest_workshop.faults.journal import Journal

        status["faults"] = [
            {"scenario": e.scenario, "since": time.strftime("%H:%M:%S", time.localtime(e.since)), "data": e.data}
            for e in Journal(status["name"]).entries()
        ]
    if args.json:
        print(json.dumps(status, indent=2))
    elif status["state"] == "down":
        print(f"no lab in {args.dir}")
    else:
        print_status(status)
    return 0 if status["state"] in ("up", "down") else 1


def _fleet(args: argparse.Namespace) -> int:
    from pytest_workshop.lab.fleet import EmbeddedFleet, FleetSpec

    fleet = EmbeddedFleet(args.fleet_dir)
    if args.lab_command == "up":
        result = fleet.up(FleetSpec(args.fleet, args.multi_node, ssh=args.ssh), args.out)
        out = Path(result["out"]).resolve()
        print(
            f"fleet of {len(result['labs'])} labs up in {result['seconds']} s: "
            + ", ".join(f"{name} {s} s" for name, s in result["labs"].items())
        )
        print(
            f"  one lab.toml each: {out / 'labs'}/\n  fleet file: {out / 'fleet.toml'}\n  Ansible: {out / 'inventory.yml'}"
        )
        home = f"HOME={result['ssh_home']} " if result.get("ssh_home") else ""
        print(f"  check them: {home}pytest suites/lab1 suites/lab3 --labs {out / 'fleet.toml'} -n 8")
        return 0
    if args.lab_command == "down":
        done = fleet.down()
        print("\n".join(done) if done else "no fleet to stop")
        return 0
    memory = fleet.memory_mib()
    if args.json:
        print(json.dumps({"labs": memory}, indent=2))
    elif not memory:
        print(f"no fleet in {args.fleet_dir}")
    for name, mib in memory.items():
        print(f"  {name}: {mib} MiB")
    return 0


def _up(lab: EmbeddedLab, args: argparse.Namespace) -> int:
    settings = LabSettings(
        nodes=args.nodes,
        managers=args.managers if args.managers is not None else min(3, args.nodes),
        etcd_members=args.etcd_members if args.etcd_members is not None else min(3, args.nodes),
        etcd_port_base=args.etcd_port_base,
        etcd_quota_bytes=args.etcd_quota_mib << 20,
        prefix=args.prefix,
        segment=args.segment,
        swarm_pool=args.swarm_pool,
        test_image=args.test_image,
        openstack="openstack" in args.extras,
        keystone_port=args.keystone_port,
        neutron_port=args.neutron_port,
        bare=args.bare,
    )
    result = lab.up(settings, args.config)
    if result.get("already_running"):
        print(f"lab already running in {args.dir}; wrote {args.config.resolve()}")
    elif "seconds" not in result:
        print(f"OpenStack added in {result['openstack']['seconds']} s; wrote {args.config.resolve()}")
    else:
        print(
            f"lab up in {result['seconds']} s (etcd healthy after {result['etcd_ready_s']} s; "
            f"test image {result['image']}); wrote {args.config.resolve()}"
        )
    if "openstack" in result:
        print("  openstack: " + ", ".join(f"{k} {v} s" for k, v in result["openstack"].items()))
    return 0


def print_status(status: dict[str, Any]) -> None:
    """`workshop lab status` as a person reads it."""
    print(f"lab {status['name']}: {status['state']} ({status['dir']})")
    for n in status["nodes"]:
        leader = " leader" if n["leader"] else ""
        print(
            f"  {n['name']:<6} {n['address']:<13} machine {n['machine']:<11} docker {n['docker']:<10} "
            f"swarm {n['role']}/{n['state']}/{n['availability']}{leader}  {n['rss_mib']} MiB"
        )
    for m in status["etcd"]:
        print(f"  {m['name']:<6} on {m['node']:<6} {m['endpoint']:<24} {m['health']}")
    if status.get("forwarder") == "paused":  # what reaches the lab from 127.0.0.1
        print(f"  forwarder paused: 127.0.0.1 cannot reach the lab (resume it: kill -CONT {status['forwarder_pid']})")
    elif status.get("forwarder") == "stopped":
        print("  forwarder stopped: 127.0.0.1 cannot reach the lab (`workshop lab up` starts the lab again)")
    for fault in status.get("faults", []):
        print(
            f"  INJECTED {fault['scenario']} since {fault['since']} ({fault['data']}): `workshop fix {fault['scenario']}`"
        )
    if "openstack" in status:
        o = status["openstack"]
        print(
            f"  {o['machine']} ({'running' if o['running'] else 'crashed'}, {o['rss_mib']} MiB): "
            f"keystone {o['keystone']}, neutron {o['neutron']}, docker {o['docker']}"
        )
        for svc in o["services"]:
            print(f"    {svc['name']:<15} {svc['state']}")
