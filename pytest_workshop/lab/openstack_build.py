"""Bringing the DevStack machine up, step by step: OVS/OVN, MariaDB and Neutron's schema, Keystone
and its identity objects, the Neutron API, kuryr, and the chassis registration (the two slow
branches, database schema and Keystone, side by side). The machine's layout, configs and
processes are in openstack.py."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_workshop.lab import nodes
from pytest_workshop.lab.openstack import (
    HOSTNAME,
    OVN_SB_PORT,
    REGION,
    OpenStackSpec,
    http_status,
    kuryr_answers,
    read_passwords,
    run_step,
    start_service,
    wait_ready,
)
from pytest_workshop.lab.process import ProcessRecord


class Builder:
    """Brings the OpenStack services up on a booted DevStack machine, in dependency order,
    running the two slow branches (database schema, Keystone) side by side."""

    def __init__(
        self,
        spec: OpenStackSpec,
        machine: nodes.NodeSpec,
        init: ProcessRecord,
        record: Callable[[str, ProcessRecord], None],
        running: Callable[[], str | None],
    ) -> None:
        self.spec, self.machine, self.init = spec, machine, init
        self.record, self.running = record, running  # running(): name of a recorded service that died
        self.pw = read_passwords(spec)
        self.timings: dict[str, float] = {}
        self.t0 = time.monotonic()

    def _mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self.t0, 2)

    def start(self, name: str) -> None:
        self.record(name, start_service(self.spec, self.init, name))

    def build(self) -> dict[str, float]:
        self.ovs_ovn()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            db = pool.submit(self.database)
            ks = pool.submit(self.keystone)
            for fut in (db, ks):
                fut.result()
        self.neutron()
        self.kuryr()
        self.wait_chassis()
        self.ovn_agent()
        return self.timings

    def ovs_ovn(self) -> None:
        s, run = self.spec, f"{self.spec.dir}/run"
        run_step(
            s,
            ["ovsdb-tool", "create", f"{s.dir}/ovs/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"],
            "ovsdb-tool",
        )
        self.start("ovsdb-server")
        vsctl = ["ovs-vsctl", f"--db=unix:{run}/ovs/db.sock", "--timeout=10"]
        wait_ready("ovsdb-server", lambda: Path(f"{run}/ovs/db.sock").exists(), 10, self.running, f"read {s.dir}/logs")
        # Userspace TSO before ovs-vswitchd starts (read at start): the netdev datapath then keeps
        # the checksum-offload metadata of veth packets. Without it a container's TCP segments
        # reach the other container with unfinished checksums and are dropped: ping works, TCP
        # does not (measured: HTTP between two kuryr containers timed out; with it, 200).
        run_step(
            s,
            [*vsctl, "--no-wait", "init", "--", "set", "open", ".", "other_config:userspace-tso-enable=true"],
            "ovs-vsctl init",
        )
        self.start("ovs-vswitchd")
        for db in ("nb", "sb"):
            run_step(
                s,
                ["ovsdb-tool", "create", f"{s.dir}/ovn/ovn{db}_db.db", f"/usr/share/ovn/ovn-{db}.ovsschema"],
                "ovsdb-tool",
            )
            self.start(f"ovn-{db}")
        self.start("ovn-northd")
        run_step(
            s,
            [
                *vsctl,
                "--no-wait",
                "set",
                "open",
                ".",
                f"external_ids:system-id={HOSTNAME}",
                f"external_ids:hostname={HOSTNAME}",
                f"external_ids:ovn-remote=tcp:127.0.0.1:{OVN_SB_PORT}",
                "external_ids:ovn-encap-type=geneve",
                "external_ids:ovn-encap-ip=127.0.0.1",
                "external_ids:ovn-bridge-datapath-type=netdev",  # no openvswitch kernel module
                "external_ids:ovn-cms-options=enable-chassis-as-gw",
            ],
            "ovs-vsctl set",
        )
        self.start("ovn-controller")
        self._mark("ovs_ovn")

    def database(self) -> None:
        s = self.spec
        run_step(
            s,
            [
                "mariadb-install-db",
                f"--defaults-file={s.dir}/etc/my.cnf",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            "mariadb-install-db",
        )
        self.start("mariadb")
        ping = ["mariadb-admin", f"--socket={s.db_socket}", "--connect-timeout=2", "ping"]
        wait_ready(
            "MariaDB",
            lambda: subprocess.run(ping, capture_output=True, timeout=5).returncode == 0,
            60,
            self.running,
            f"read {s.dir}/logs/mysqld.err",
        )
        sql = (
            "CREATE DATABASE neutron; "
            f"CREATE USER 'neutron'@'localhost' IDENTIFIED BY '{self.pw['database']}'; "
            "GRANT ALL ON neutron.* TO 'neutron'@'localhost';"
        )
        run_step(
            s, ["mariadb", f"--socket={s.db_socket}"], "mariadb create database", stdin=sql
        )  # password via stdin, not argv
        self._mark("mariadb")
        run_step(
            s,
            [
                s.bin("neutron-db-manage"),
                "--config-file",
                f"{s.dir}/etc/neutron.conf",
                "--config-file",
                f"{s.dir}/etc/ml2_conf.ini",
                "upgrade",
                "heads",
            ],
            "neutron-db-manage",
            timeout=240,
        )
        self._mark("neutron_schema")

    def keystone(self) -> None:
        s = self.spec
        manage = [s.bin("keystone-manage"), "--config-file", f"{s.dir}/etc/keystone.conf"]
        run_step(s, [*manage, "db_sync"], "keystone-manage db_sync")
        run_step(
            s,
            [*manage, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            "keystone-manage fernet_setup",
        )
        run_step(
            s,
            [*manage, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            "keystone-manage credential_setup",
        )
        url = f"{s.keystone_url}/"
        # the password goes through the environment (OS_BOOTSTRAP_PASSWORD), never argv
        env_pw = f"OS_BOOTSTRAP_PASSWORD={self.pw['admin']}"
        run_step(
            s,
            [
                "env",
                env_pw,
                *manage,
                "bootstrap",
                "--bootstrap-region-id",
                REGION,
                "--bootstrap-admin-url",
                url,
                "--bootstrap-internal-url",
                url,
                "--bootstrap-public-url",
                url,
            ],
            "keystone-manage bootstrap",
        )
        self.start("keystone")
        wait_ready(
            "Keystone",
            lambda: http_status(s.keystone_port, "/v3") == 200,
            60,
            self.running,
            f"read {s.dir}/logs/keystone-uwsgi.log",
        )
        self.identity_objects()
        self._mark("keystone")

    def identity_objects(self) -> None:
        """Projects, users, roles, the network service and its endpoints (DevStack's layout)."""
        import openstack

        conn = openstack.connect(
            auth_url=self.spec.keystone_url,
            username="admin",
            password=self.pw["admin"],
            project_name="admin",
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
            api_timeout=30,
        )
        try:
            idn: Any = conn.identity  # the v3 proxy; its v2|v3 union type is no help here
            domain = idn.find_domain("default")
            roles = {r.name: r for r in idn.roles()}
            service_project = idn.create_project(name="service", domain_id=domain.id)
            for name in ("neutron", "kuryr"):
                user = idn.create_user(
                    name=name, password=self.pw["service"], domain_id=domain.id, default_project_id=service_project.id
                )
                for role in ("admin", "service"):
                    idn.assign_project_role_to_user(service_project, user, roles[role])
            service = idn.create_service(name="neutron", type="network")
            for interface in ("public", "internal", "admin"):
                idn.create_endpoint(
                    service_id=service.id, interface=interface, url=self.spec.neutron_url, region_id=REGION
                )
            demo = idn.create_project(name="demo", domain_id=domain.id)
            user = idn.create_user(
                name="demo", password=self.pw["demo"], domain_id=domain.id, default_project_id=demo.id
            )
            idn.assign_project_role_to_user(demo, user, roles["member"])
        finally:
            conn.close()

    def neutron(self) -> None:
        self.start("neutron-api")
        wait_ready(
            "the Neutron API",
            lambda: http_status(self.spec.neutron_port, "/") == 200,
            120,
            self.running,
            f"read {self.spec.dir}/logs/neutron-api.log",
        )
        self._mark("neutron_api")

    def kuryr(self) -> None:
        self.start("kuryr")
        wait_ready(
            "kuryr-libnetwork",
            lambda: kuryr_answers(self.machine.netns),
            60,
            self.running,
            f"read {self.spec.dir}/logs/kuryr.log",
        )
        self._mark("kuryr")

    def ovn_agent(self) -> None:
        """DevStack's ML2/OVN default: the OVN agent with its metadata extension, registered on the chassis."""
        s = self.spec
        self.start("ovn-agent")
        sbctl = [
            "ovn-sbctl",
            f"--db=unix:{s.dir}/run/ovn/ovnsb_db.sock",
            "--timeout=5",
            "--bare",
            "--columns=external_ids",
            "list",
            "Chassis_Private",
        ]

        def registered() -> bool:
            r = subprocess.run(sbctl, capture_output=True, text=True, timeout=10)
            return "neutron:ovn-neutron-agent-id" in r.stdout

        wait_ready("the OVN agent", registered, 60, self.running, f"read {s.dir}/logs/ovn-agent.log")
        self._mark("ovn_agent")

    def wait_chassis(self) -> None:
        s = self.spec
        sbctl = [
            "ovn-sbctl",
            f"--db=unix:{s.dir}/run/ovn/ovnsb_db.sock",
            "--timeout=5",
            "--bare",
            "--columns=hostname",
            "list",
            "Chassis",
        ]

        def registered() -> bool:
            r = subprocess.run(sbctl, capture_output=True, text=True, timeout=10)
            return HOSTNAME in r.stdout.split()

        wait_ready("the OVN chassis", registered, 60, self.running, f"read {s.dir}/logs/ovn-controller.log")
        self._mark("chassis")
