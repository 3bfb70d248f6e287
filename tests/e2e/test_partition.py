"""A network partition, in network namespaces: the primary's host loses the store and its
peers but not its clients. It must stop taking writes within the lease, a new primary is
elected, and a client that keeps writing to every node never has a commit acknowledged
by the old primary after the new one acknowledged its first.

Each node (PostgreSQL and its agent) runs in a namespace of its own with two links: one to
a "cluster" bridge (the store, the peers) and one to a "client" bridge (the writer). The
partition takes the primary's cluster link down. Addresses are 10.201.0.0/24 (cluster)
and 10.202.0.0/24 (clients), inside the test's own namespaces only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.lab import lifecycle
from pgherd.lab.etcd_server import EtcdTls
from pgherd.pg import osuser, process, tlsfiles
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.hosts.network import ip, unavailable
from tests.support import postgres_processes, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL = 3.0
CLUSTER_NET = "10.201.0"
CLIENT_NET = "10.202.0"
NODES = 3


@dataclass
class Net:
    prefix: str
    namespaces: list[str] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def add(self, name: str) -> str:
        ns = self.ns(name)
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def bridge(self, ns: str, name: str, address: str) -> None:
        ip("-n", ns, "link", "add", name, "type", "bridge")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", name)
        ip("-n", ns, "link", "set", name, "up")

    def wire(self, node_ns: str, address: str, hub_ns: str, bridge: str, tag: str) -> str:
        """A veth pair: ``address`` on the node's end, the other end in ``bridge``."""
        inner, outer = f"{self.prefix}{tag}i", f"{self.prefix}{tag}o"
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", node_ns)
        ip("link", "set", outer, "netns", hub_ns)
        ip("-n", node_ns, "addr", "add", f"{address}/24", "dev", inner)
        ip("-n", node_ns, "link", "set", inner, "up")
        ip("-n", hub_ns, "link", "set", outer, "master", bridge)
        ip("-n", hub_ns, "link", "set", outer, "up")
        return outer

    def remove(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def pgherd_in(ns: str, config_path: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        in_ns(ns, sys.executable, "-m", "pgherd", *args, "--config", str(config_path)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"pgherd {' '.join(args)}: {done.stdout}\n{done.stderr}")
    return done.stdout


def partition_config(workdir: Path, user: osuser.OsUser) -> ClusterConfig:
    raw: dict[str, Any] = {
        "cluster": "part",
        "os_user": user.name,
        "passfile": str(workdir / "secrets" / "pgpass"),
        "api_token_file": str(workdir / "secrets" / "api-token"),
        # Clients reach the nodes on another network than the cluster's.
        "settings": {"listen_addresses": "*"},
        "failover": "automatic",
        # etcd over TLS with client certificates, as the lab's (certificates below)
        "ha": {
            "dcs": {
                "etcd": [f"https://{CLUSTER_NET}.254:2379"],
                "cert": str(workdir / "secrets" / "tls" / "dcs-client.crt"),
                "key": str(workdir / "secrets" / "tls" / "dcs-client.key"),
            }
        },
        "nodes": [
            {
                "name": f"node{i}",
                "host": f"{CLUSTER_NET}.{i}",
                "port": 5432,
                "api_host": f"{CLUSTER_NET}.{i}",
                "api_port": 8008,
                "data_dir": str(workdir / f"node{i}" / "data"),
            }
            for i in range(1, NODES + 1)
        ],
    }
    config = config_mod.parse(raw)
    lifecycle.write_lab_files(config, workdir / "pgherd.yaml", user)
    hub = [tlsfiles.Member("etcd", (f"{CLUSTER_NET}.254",))]
    hub.append(tlsfiles.Member("dcs-client", ("127.0.0.1",)))
    tlsfiles.ensure(config, user, hub)
    return config


WRITER = textwrap.dedent(
    """
    import sys, time, psycopg
    hosts, passfile, out, stop = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
    conns, next_id = {}, 1
    import os
    with open(out, "a") as log:
        while not os.path.exists(stop):
            for host in hosts:
                try:
                    if host not in conns:
                        conns[host] = psycopg.connect(
                            host=host, port=5432, user="postgres", dbname="postgres",
                            passfile=passfile, connect_timeout=1, autocommit=True,
                            target_session_attrs="read-write",
                        )
                    conns[host].execute("INSERT INTO part VALUES (%s, %s)", (next_id, host))
                    log.write(f"{time.time()} {host} {next_id}\\n")
                    log.flush()
                except psycopg.Error:
                    old = conns.pop(host, None)
                    if old is not None:
                        old.close()
                next_id += 1
            time.sleep(0.01)
    """
)


@dataclass
class Cluster:
    net: Net
    config: ClusterConfig
    config_path: Path
    workdir: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    etcd: subprocess.Popen[bytes] | None = None

    def node_ns(self, name: str) -> str:
        return self.net.ns(name)

    def start_agent(self, name: str) -> None:
        node = self.config.node(name)
        node.home_dir.mkdir(parents=True, exist_ok=True)
        log = os.open(node.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.agents[name] = subprocess.Popen(
                in_ns(
                    self.node_ns(name),
                    sys.executable,
                    "-m",
                    "pgherd",
                    "agent",
                    "run",
                    "--node",
                    name,
                    "--config",
                    str(self.config_path),
                ),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(log)

    def show(self) -> dict[str, Any]:
        out = pgherd_in(
            self.net.ns("hub"), self.config_path, "cluster", "show", "--json", check=False
        )
        data: dict[str, Any] = json.loads(out)
        return data

    def stop(self) -> None:
        for agent in self.agents.values():
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
        for agent in self.agents.values():
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(10)
        for node in self.config.nodes:
            LocalNode.open(self.config, node.name).instance.stop("immediate")
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            self.etcd.wait(20)


@pytest.fixture(scope="module")
def cluster(module_dir: Path, os_user: osuser.OsUser) -> Iterator[Cluster]:
    why = unavailable()
    if why is not None:
        pytest.skip(f"no network namespaces: {why}")
    net = Net(f"ph{os.getpid() % 100000}")
    workdir = module_dir / "part"
    os_user.make_dir(workdir)
    config = partition_config(workdir, os_user)
    result = Cluster(net, config, workdir / "pgherd.yaml", workdir)
    try:
        _build(result)
        yield result
    finally:
        result.stop()
        net.remove()
        process.reap_zombie_children()
        left = postgres_processes(workdir)
        assert not left, f"processes left behind: {left}"


def _build(cluster: Cluster) -> None:
    net, config = cluster.net, cluster.config
    hub, clients = net.add("hub"), net.add("cl")
    net.bridge(hub, "br0", f"{CLUSTER_NET}.254")
    net.bridge(clients, "br1", f"{CLIENT_NET}.254")
    for i in range(1, NODES + 1):
        ns = net.add(f"node{i}")
        net.wire(ns, f"{CLUSTER_NET}.{i}", hub, "br0", f"a{i}")
        net.wire(ns, f"{CLIENT_NET}.{i}", clients, "br1", f"c{i}")
    etcd_dir = cluster.workdir / "etcd"
    etcd_dir.mkdir(mode=0o700)
    url = f"https://{CLUSTER_NET}.254"
    assert config.ca_file is not None
    tls = EtcdTls(config.ca_file, *config.cert_files("etcd"), *config.cert_files("dcs-client"))
    with (cluster.workdir / "etcd.log").open("ab") as log:
        cluster.etcd = subprocess.Popen(
            in_ns(
                hub,
                "etcd",
                "--name=hub",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls={url}:2379",
                f"--advertise-client-urls={url}:2379",
                f"--listen-peer-urls={url}:2380",
                f"--initial-advertise-peer-urls={url}:2380",
                f"--initial-cluster=hub={url}:2380",
                "--heartbeat-interval=50",
                "--election-timeout=500",
                *tls.flags(),
            ),
            stdout=log,
            stderr=log,
        )
    primary = LocalNode.open(config, "node1")
    bootstrap.init_primary(primary)
    hba = config.node("node1").data_dir / "pg_hba.conf"
    with hba.open("a") as rules:  # the writer's network, below pgherd's block
        rules.write(f"host all {config.superuser} {CLIENT_NET}.0/24 scram-sha-256\n")
    cluster.start_agent("node1")
    wait_until(lambda: primary.instance.is_running and _ready(primary), 60, what="node1")
    bootstrap.create_replication_role(primary)
    with primary.instance.connect() as conn:
        conn.execute("CREATE TABLE part (id bigint PRIMARY KEY, host text)")
    for name in ("node2", "node3"):
        pgherd_in(
            net.ns(name),
            cluster.config_path,
            "standby",
            "clone",
            "--upstream",
            "node1",
            "--node",
            name,
        )
        cluster.start_agent(name)

    def settled() -> bool:
        data = cluster.show()
        return data["primary"] == "node1" and not data["problems"]

    wait_until(settled, 90, what="the cluster in namespaces to be healthy")


def _ready(local: LocalNode) -> bool:
    pm = process.read_postmaster_pid(local.node.data_dir)
    return pm is not None and pm.status == "ready"


def test_a_cut_off_primary_stops_before_another_one_starts(cluster: Cluster) -> None:
    net, workdir = cluster.net, cluster.workdir
    hosts = [f"{CLIENT_NET}.{i}" for i in range(1, NODES + 1)]
    out, stop = workdir / "writes.log", workdir / "writes.stop"
    writer = subprocess.Popen(
        in_ns(
            net.ns("cl"),
            sys.executable,
            "-c",
            WRITER,
            ",".join(hosts),
            str(cluster.config.passfile),
            str(out),
            str(stop),
        )
    )
    try:
        wait_until(
            lambda: out.exists() and len(out.read_text().splitlines()) > 50, 30, what="writes"
        )
        cut_at = time.time()
        ip("-n", net.ns("hub"), "link", "set", f"{net.prefix}a1o", "down")

        def new_primary() -> str:
            name = cluster.show()["primary"]
            return name if name in ("node2", "node3") else ""

        new = wait_until(new_primary, 30, what="a new primary")
        new_host = f"{CLIENT_NET}.{new[-1]}"
        wait_until(lambda: new_host in out.read_text(), 30, what="writes on the new primary")
        time.sleep(1)
    finally:
        stop.touch()
        writer.wait(30)
    acks = [line.split() for line in out.read_text().splitlines()]
    on_old = [float(t) for t, host, _ in acks if host == hosts[0]]
    on_new = [float(t) for t, host, _ in acks if host == new_host]
    assert on_old, "the old primary took no write before the cut"
    last_old, first_new = max(on_old), min(on_new)
    assert last_old < first_new, (
        f"commits acknowledged by both: the old primary until {last_old - cut_at:.2f} s after "
        f"the cut, the new one from {first_new - cut_at:.2f} s"
    )
    assert last_old - cut_at < TTL, f"the old primary took writes {last_old - cut_at:.2f} s on"

    # The partition heals: the old primary comes back as a standby by itself.
    ip("-n", net.ns("hub"), "link", "set", f"{net.prefix}a1o", "up")

    def rejoined() -> bool:
        rows = {row["name"]: row for row in cluster.show()["nodes"]}
        return bool(rows["node1"]["role"] == "standby" and rows["node1"]["upstream"] == new)

    wait_until(rejoined, 60, what="node1 to rejoin as a standby")


def test_a_primary_cut_from_the_store_only_is_replaced(cluster: Cluster) -> None:
    """Asynchronous mode, the primary cut from the store but not from its peers: it
    demotes itself and runs on as a standby that every agent still reaches, exactly as
    far as the others and the last leader (it wins ties). The others must not wait for
    it: it cannot take the lease (found by bench/faults.py; docs/reliability.md)."""
    old = cluster.show()["primary"]
    assert old in {n.name for n in cluster.config.nodes}, cluster.show()
    ns = cluster.node_ns(old)
    rule = ("OUTPUT", "-d", f"{CLUSTER_NET}.254", "-p", "tcp", "--dport", "2379", "-j", "DROP")
    subprocess.run(in_ns(ns, "iptables", "-A", *rule), check=True, timeout=20)
    try:

        def replaced() -> str:
            name = cluster.show()["primary"]
            return name if name not in (None, old) else ""

        new = wait_until(replaced, 30, what=f"another primary than {old}")
    finally:
        subprocess.run(in_ns(ns, "iptables", "-D", *rule), check=True, timeout=20)

    def rejoined() -> bool:
        rows = {row["name"]: row for row in cluster.show()["nodes"]}
        return bool(rows[old]["role"] == "standby" and rows[old]["upstream"] == new)

    wait_until(rejoined, 60, what=f"{old} to stream from {new}")
