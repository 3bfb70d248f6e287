"""The cluster the fault suite breaks: pgherd deployed on test hosts (tests/hosts) as
docs/deploy.md deploys it, each data node on a disk of its own, the WAL archive on a small
file system of its own, clients and HAProxy on a fourth host, and an observer that looks
at the cluster twice a second from there.

    host1  host2  host3        an etcd member, a pgherd agent and its PostgreSQL each;
                               the node's home (data, logs, sockets) on the host's disk
    host4                      the clients (libpq multi-host URI; HAProxy's write port),
                               HAProxy, the observer

Everything is removed on the way out, failed test or not (``deploy``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgherd.model.watchdog import timeout_for
from pgherd.pg import osuser
from tests.faults import client as client_mod
from tests.faults import observer
from tests.faults.checker import Final, Member, Mode, Observation, settled, whole
from tests.faults.fake_watchdog import FakeWatchdog
from tests.hosts.agents import Unit, start_agent
from tests.hosts.deployment import Deployment, Hosts, provision_hosts
from tests.hosts.storage import LoopDisk, Tmpfs

DATA_HOSTS = ("host1", "host2", "host3")
CLIENT_HOST = "host4"
NODES = ("node1", "node2", "node3")
HAPROXY_PORT = 5000
DISK_MB = 1024
ARCHIVE_MB = 96


def cluster_yaml(
    directory: Path, hosts: Hosts, mode: Mode, watchdog: bool = False, **ha: Any
) -> dict[str, Any]:
    """pgherd.yaml: three nodes on host1..3, etcd on the same three, the archive; with
    ``watchdog``, each node's device a FIFO the suite serves (fake_watchdog.py).

    ``tls: off``: the test hosts' etcd (tests/hosts/etcd.py) speaks plain HTTP until that
    harness makes certificates for its members; the faults here are of the network,
    processes, disks and clocks, which TLS does not change (a handshake more per new
    connection)."""
    return {
        "cluster": "faults",
        "tls": False,
        "passfile": str(directory / "secrets" / "pgpass"),
        "api_token_file": str(directory / "secrets" / "api-token"),
        "failover": "automatic",
        "ha": {
            "dcs": {"etcd": hosts.etcd.endpoints},
            "synchronous": mode is Mode.SYNC,
            **ha,
        },
        "archive": {"path": str(directory / "archive")},
        "nodes": [
            {
                "name": f"node{i}",
                "host": hosts[f"host{i}"].address,
                "api_host": hosts[f"host{i}"].address,
                "data_dir": str(directory / f"node{i}" / "data"),
                **({"watchdog": str(directory / f"node{i}.watchdog")} if watchdog else {}),
            }
            for i in (1, 2, 3)
        ],
    }


@dataclass
class FaultCluster:
    deployment: Deployment
    directory: Path
    mode: Mode
    disks: dict[str, LoopDisk] = field(default_factory=dict)
    archive: Tmpfs | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    observer: subprocess.Popen[bytes] | None = None
    backup_label: str | None = None
    watchdogs: dict[str, FakeWatchdog] = field(default_factory=dict)
    resets: list[tuple[float, str]] = field(default_factory=list)
    _booting: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hosts(self) -> Hosts:
        return self.deployment.hosts

    @property
    def seen_path(self) -> Path:
        return self.directory / "observer.jsonl"

    # ---- what the observer saw -----------------------------------------------------------

    def observations(self, since: float = 0.0) -> tuple[Observation, ...]:
        return tuple(o for o in observer.read(self.seen_path) if o.at >= since)

    def latest(self) -> Observation | None:
        found = observer.read(self.seen_path)
        return found[-1] if found else None

    def wait_settled(
        self, timeout: float, since: float | None = None, strict: bool = False
    ) -> Observation:
        """The first observation (after ``since``, default now) in which the cluster looks
        settled (checker.settled), or ``strict``: whole (every member streaming)."""
        start = time.time() if since is None else since
        test = whole if strict else settled
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((o for o in self.observations(start) if test(o)), None)
            if found is not None:
                return found
            time.sleep(0.5)
        last = self.latest()
        raise AssertionError(
            f"the cluster did not {'heal' if strict else 'settle'} within {timeout:.0f} s; "
            f"last seen: {last.line() if last else 'nothing'}\n{self.deployment.tails()}"
        )

    def primary(self, timeout: float = 120) -> str:
        """The leader, once every member streams from it."""
        seen = self.wait_settled(timeout, strict=True)
        assert seen.leader is not None
        return seen.leader

    def standbys(self, primary: str) -> list[str]:
        return [n for n in NODES if n != primary]

    # ---- clients ---------------------------------------------------------------------------

    def conninfo_uri(self) -> str:
        config = self.deployment.config
        hosts = ",".join(config.node(n).host for n in NODES)
        ports = ",".join(str(config.node(n).port) for n in NODES)
        return (
            f"host={hosts} port={ports} user={config.superuser} dbname=postgres "
            f"passfile={config.passfile} target_session_attrs=read-write connect_timeout=2 "
            # a client gives a connection up 2 s after its server went silent (a cut link
            # sends no reset), as an application's pool should
            "tcp_user_timeout=2000 keepalives_idle=1 keepalives_interval=1 keepalives_count=2"
        )

    def conninfo_haproxy(self) -> str:
        config = self.deployment.config
        return (
            f"host={self.hosts[CLIENT_HOST].address} port={HAPROXY_PORT} "
            f"user={config.superuser} dbname=postgres passfile={config.passfile} "
            "connect_timeout=2 tcp_user_timeout=2000 keepalives_idle=1 keepalives_interval=1 "
            "keepalives_count=2"
        )

    def start_client(
        self, name: str, conninfo: str, first_key: int, out: Path, stop: Path
    ) -> subprocess.Popen[bytes]:
        config = self.deployment.config
        nodes = [f"--node={config.node(n).host}={n}" for n in NODES]
        log = out.with_suffix(".log").open("ab")
        try:
            return subprocess.Popen(
                self.hosts[CLIENT_HOST].argv(
                    sys.executable,
                    "-m",
                    "tests.faults.client",
                    "--name",
                    name,
                    "--conninfo",
                    conninfo,
                    "--first-key",
                    str(first_key),
                    "--out",
                    str(out),
                    "--stop",
                    str(stop),
                    *nodes,
                ),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],
            )
        finally:
            log.close()

    # ---- the members at the end ----------------------------------------------------------

    def final(self, keys: tuple[int, int], timeout: float = 60) -> Final:
        """Every member's rows among ``keys`` (lo, hi), once each standby that streams has
        replayed all the primary wrote."""
        seen = self.wait_settled(timeout)
        leader = seen.leader
        assert leader is not None
        d = self.deployment
        lsn = d.sql(leader, "SELECT pg_current_wal_lsn()")[0][0]
        timeline = int(d.sql(leader, TIMELINE)[0][0])
        rows = {m.name: m for m in seen.members}
        members = []
        for name in NODES:
            streaming = name != leader and rows[name].state == "streaming"
            if streaming:
                with contextlib.suppress(AssertionError):
                    d.wait(
                        lambda n=name: (
                            d.sql(n, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")[0][0]
                            == "t"
                        ),
                        timeout,
                        f"{name} to replay up to {lsn}",
                    )
            try:
                got = d.sql(name, KEYS.format(table=client_mod.TABLE, lo=keys[0], hi=keys[1]))
            except AssertionError:
                members.append(Member(name, None, False, rows[name].problem or "cannot be read"))
                continue
            members.append(
                Member(name, frozenset(int(r[0]) for r in got), streaming, rows[name].problem)
            )
        return Final(leader, timeline, tuple(members))

    # ---- commands on hosts -----------------------------------------------------------------

    def cli_json(self, *args: str, on: str = CLIENT_HOST) -> tuple[int, Any]:
        done = self.deployment.pgherd(*args, "--json", on=on, check=False)
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            return done.returncode, {"stdout": done.stdout, "stderr": done.stderr}

    def host_of(self, node: str) -> str:
        return self.deployment.host_of(node).name

    # ---- an agent with a clock of its own ------------------------------------------------

    def clock_file(self, node: str) -> Path:
        return self.directory / f"{node}.clock"

    def set_clock(self, node: str, monotonic: float = 0.0, wall: float = 0.0) -> None:
        """Shift ``node``'s agent's clocks (it must run as :meth:`start_skewed_agent`)."""
        path = self.clock_file(node)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{monotonic} {wall}\n")
        tmp.replace(path)

    def start_skewed_agent(self, node: str) -> None:
        """Restart ``node``'s agent (SIGTERM: its PostgreSQL runs on) as the same agent with
        the clock of tests/faults/skewed_agent.py, as the unit would run it otherwise."""
        d = self.deployment
        script = self.directory / "skewed_agent.py"
        shutil.copyfile(Path(__file__).with_name("skewed_agent.py"), script)
        script.chmod(0o644)
        self.set_clock(node)
        d.stop_agent(node)
        unit = d.units[node]
        skewed = Unit(
            (
                sys.executable,
                str(script),
                "--offsets",
                str(self.clock_file(node)),
                "--node",
                node,
                "--config",
                str(d.config_path),
            ),
            unit.user,
            unit.umask,
        )
        d.agents[node] = start_agent(skewed, d.node(node), d.user, on=d.host_of(node).argv)

    # ---- hosts going down and up -----------------------------------------------------------

    def boot(self, node: str) -> None:
        """``node``'s host comes up (its etcd member, its agent), unless it is up."""
        with self._booting:
            agent = self.deployment.agents.get(node)
            if agent is None or not agent.alive():
                self.deployment.boot(node)

    def reset_host(self, node: str, reboot_after: float = 3.0) -> None:
        """What a watchdog does: the machine stops at once; it boots again later."""
        self.resets.append((time.time(), node))
        with self._booting:
            self.deployment.shut_down(node, power_off=True)
        threading.Timer(reboot_after, self.boot, args=(node,)).start()

    def restart_agent(self, node: str) -> None:
        """``node``'s agent as its unit runs it (SIGTERM to the one running)."""
        self.deployment.stop_agent(node)
        self.deployment.start_agent(node)

    def close(self) -> None:
        for dog in self.watchdogs.values():
            dog.stop()
        for proc in (self.observer, self.haproxy):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


KEYS = "SELECT key FROM {table} WHERE key >= {lo} AND key < {hi}"
TIMELINE = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


def _allow_clients(cluster: FaultCluster) -> None:
    """The operator's rule for the application host, below pgherd's block on every node
    (a clone copies it, pg_rewind too); reloaded."""
    d = cluster.deployment
    client = cluster.hosts[CLIENT_HOST].address
    line = f"host all {d.config.superuser} {client}/32 scram-sha-256\n"
    for name in NODES:
        hba = d.node(name).data_dir / "pg_hba.conf"
        if line not in hba.read_text():
            with hba.open("a") as rules:
                rules.write(line)
        d.sql(name, "SELECT pg_reload_conf()")


def _start_haproxy(cluster: FaultCluster) -> None:
    d = cluster.deployment
    host = cluster.hosts[CLIENT_HOST]
    text = d.pgherd(
        "agent",
        "haproxy",
        "--bind",
        host.address,
        "--primary-port",
        str(HAPROXY_PORT),
        "--replica-port",
        str(HAPROXY_PORT + 1),
        on=CLIENT_HOST,
    ).stdout
    config = cluster.directory / "haproxy.cfg"
    config.write_text(text)
    log = (cluster.directory / "haproxy.log").open("ab")
    try:
        cluster.haproxy = subprocess.Popen(
            host.argv("haproxy", "-db", "-f", str(config)),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()


def _start_observer(cluster: FaultCluster) -> None:
    stop = cluster.directory / "observer.stop"
    stop.unlink(missing_ok=True)
    log = (cluster.directory / "observer.log").open("ab")
    try:
        cluster.observer = subprocess.Popen(
            cluster.hosts[CLIENT_HOST].argv(
                sys.executable,
                "-m",
                "tests.faults.observer",
                "--config",
                str(cluster.deployment.config_path),
                "--out",
                str(cluster.seen_path),
                "--stop",
                str(stop),
            ),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        log.close()


@contextlib.contextmanager
def deploy(
    directory: Path, user: osuser.OsUser, mode: Mode, watchdog: bool = False, **ha: Any
) -> Iterator[FaultCluster]:
    """The cluster, healthy, with the clients' table and a first base backup; with
    ``watchdog``, a fake device per node (fake_watchdog.py) that resets its host."""
    user.make_dir(directory)
    with provision_hosts(directory, 4) as hosts:
        deployment = Deployment(hosts, directory / "pgherd.yaml", user)
        cluster = FaultCluster(deployment, directory, mode)
        try:
            for name in NODES:
                home = directory / name
                cluster.disks[name] = LoopDisk.create(
                    directory / f"{name}.img", home, DISK_MB, user
                )
            cluster.archive = Tmpfs.mount(directory / "archive", ARCHIVE_MB, user)
            config = deployment.write_config(cluster_yaml(directory, hosts, mode, watchdog, **ha))
            if watchdog:
                assert config.ha is not None
                for node in config.nodes:
                    assert node.watchdog is not None
                    dog = FakeWatchdog(
                        node.watchdog,
                        timeout_for(config.ha.ttl),
                        functools.partial(cluster.reset_host, node.name),
                    )
                    dog.start(user)
                    cluster.watchdogs[node.name] = dog
            deployment.pgherd("secrets", "init", on="host1")
            _start_observer(cluster)
            for name in NODES:
                deployment.start_agent(name)
            primary = cluster.primary(300)
            deployment.sql(primary, client_mod.CREATE)
            _allow_clients(cluster)
            _start_haproxy(cluster)
            made = json.loads(
                deployment.pgherd("backup", "create", "--json", on=cluster.host_of(primary)).stdout
            )
            cluster.backup_label = made["label"]
            yield cluster
        finally:
            cluster.close()
            deployment.stop_all()
            hosts.network.remove()  # every process on the hosts, before their disks go
            for disk in cluster.disks.values():
                disk.remove()
            if cluster.archive is not None:
                cluster.archive.remove()
