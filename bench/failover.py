"""Automatic failover, measured as an application sees it: pgherd against Patroni.

A client commits one row every 10 ms through a libpq multi-host connection string with
``target_session_attrs=read-write`` (``connect_timeout=2``), as an application would.
Two faults, ``--runs`` times each (5 by default), on a 3-node cluster:

1. ``kill -9`` of the primary's postmaster while its agent lives: the agent judges whether
   a restart in place or a failover is quicker and safe;
2. host loss: ``kill -9`` of the primary's agent and postmaster together, so another node
   must take over.

Write unavailability is the time from the kill to the client's first successful commit
after its first failed one (min/median/max; a commit in flight at the kill may still be
acknowledged, which does not end the outage); "lost" counts commits the client saw
acknowledged that the primary afterwards does not have. After each run the killed node is
started again and the cluster waits until every node streams again.

Configurations, in one run, against one etcd (Debian's etcd-server on loopback ports):
- pgherd at its defaults (ttl 3 s, loop_wait 0.5 s, retry_timeout 1 s), asynchronous;
- pgherd at its defaults in synchronous mode (``--sync``): the lost-commit count must be 0;
- pgherd at its tightest documented settings (ttl 2 s, loop_wait 0.25 s, retry_timeout
  0.5 s);
- Patroni 4.1 (PyPI, a virtualenv built from /usr/bin/python3 that the ``postgres`` user can
  run: /var/lib/pgherd/patroni-venv, created if absent) at its defaults (ttl 30, loop_wait
  10, retry_timeout 10) and at its tightest valid settings (ttl 20, loop_wait 1,
  retry_timeout 3: it raises anything lower to these). Patroni runs as ``postgres``.

    $VENV/bin/python -m bench.failover [--runs 5] [--only pgherd|patroni]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from bench import common
from pgherd import config as config_mod
from pgherd.config import EtcdDcs, HaConfig
from pgherd.lab.etcd_server import EtcdServer
from pgherd.pg import binaries, osuser, passfile, process

ROOT = Path("/var/tmp/pgherd-bench-failover")
INTERVAL = 0.01
PATRONI_VENV = Path("/var/lib/pgherd/patroni-venv")
RECOVERY_LIMIT = 120.0


# ---- the client -------------------------------------------------------------------------


@dataclass
class Writer:
    """Commits one row every 10 ms; remembers when each commit was acknowledged."""

    conninfo: str
    table: str = "bench_failover"
    acked: list[tuple[float, int]] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    next_id: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")
            row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {self.table}").fetchone()
            assert row is not None
            self.next_id = int(row[0])
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (self.next_id,))
                self.acked.append((time.monotonic(), self.next_id))
            except psycopg.Error:
                self.failed.append(time.monotonic())
                if conn is not None:
                    conn.close()
                conn = None
            self.next_id += 1
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

    def steady(
        self, seconds: float = 1.0, since: float = 0.0, timeout: float = RECOVERY_LIMIT
    ) -> None:
        """Wait until commits after ``since`` were acknowledged for ``seconds`` without a
        failure among them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            start = max(since, now - seconds)
            recent = [t for t, _ in self.acked if t > start]
            failures = [t for t in self.failed if t > start]
            if now - since >= seconds and len(recent) > seconds / INTERVAL / 4 and not failures:
                return
            time.sleep(0.1)
        raise RuntimeError("writes did not come back")

    def outage_after(self, since: float, timeout: float = RECOVERY_LIMIT) -> float:
        """When writes came back after the first failed commit that followed ``since``
        (a commit in flight at the fault may still be acknowledged: that is not the
        outage's end). Monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failures = [t for t in self.failed if t > since]
            if failures:
                later = [t for t, _ in self.acked if t > failures[0]]
                if later:
                    return later[0]
            time.sleep(0.01)
        raise RuntimeError(f"writes did not come back within {timeout:.0f} s of the fault")

    def lost_on(self, conninfo: str) -> int:
        """Acknowledged commits the (current) primary does not have."""
        ids = [i for _, i in self.acked]
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT id FROM {self.table} WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        return len(set(ids) - {r[0] for r in rows})


def multi_host(ports: list[int], user: str, pgpass: Path) -> str:
    hosts = ",".join("127.0.0.1" for _ in ports)
    return (
        f"host={hosts} port={','.join(map(str, ports))} user={user} dbname=postgres "
        f"passfile={pgpass} target_session_attrs=read-write connect_timeout=2"
    )


# ---- a system under test ----------------------------------------------------------------


class System(Protocol):
    """What a benchmark run needs from pgherd or Patroni."""

    name: str
    conninfo: str

    def primary(self) -> str | None: ...

    def kill_postmaster(self, node: str) -> None: ...

    def kill_host(self, node: str) -> None: ...

    def restore(self, node: str) -> None: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - still starting: try again
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def postmaster_of(data_dir: Path) -> int:
    pm = process.read_postmaster_pid(data_dir)
    if pm is None:
        raise RuntimeError(f"no postmaster.pid in {data_dir}")
    return pm.pid


def children_of(pid: int) -> list[int]:
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and process.parent_pid(int(e.name)) == pid
    ]


def kill_host_processes(agent: int, postmaster: int) -> None:
    """What a host loss does: the agent, the postmaster and every server process die at
    once (killing the postmaster alone leaves its backends running for a moment, and a
    client's session on one may still commit)."""
    victims = [agent, postmaster, *children_of(postmaster)]
    for pid in victims:
        process.signal_pid(pid, signal.SIGKILL)


# ---- pgherd -----------------------------------------------------------------------------


class Pgherd:
    def __init__(self, label: str, etcd: EtcdServer, ha: dict[str, Any], sync: bool) -> None:
        self.name = label
        self.directory = ROOT / label.replace(" ", "-").replace(",", "")
        common.remove_lab(self.directory)
        base = common.free_port_base(3, (0, 1000, 2000, 3000))
        self.lab = common.Lab(self.directory, 3, base)
        argv = [*self.lab.pgherd, "lab", "up", "--dir", str(self.directory), "--nodes", "3"]
        argv += ["--port-base", str(base), "--dcs", "etcd", *(["--sync"] if sync else [])]
        common.run_checked(argv, timeout=900)
        # The lab's own etcd is replaced by the benchmark's (the same for Patroni), with
        # the settings under test.
        common.run_checked([*self.lab.pgherd, "lab", "down", "--dir", str(self.directory)], 300)
        config = config_mod.load(self.lab.config_path)
        assert config.ha is not None
        changed = config.model_copy(
            update={
                "ha": HaConfig(dcs=EtcdDcs(etcd=(etcd.url,)), synchronous=sync, **ha),
            }
        )
        osuser.resolve(config.os_user).write_file(self.lab.config_path, config_mod.dump(changed))
        common.run_checked(
            [*self.lab.pgherd, "lab", "up", "--dir", str(self.directory)], timeout=300
        )
        self.config = changed
        self.conninfo = multi_host([n.port for n in changed.nodes], "postgres", changed.passfile)
        wait(self.healthy, 120, "the pgherd lab")

    def show(self) -> dict[str, Any]:
        done = self.lab.cli("cluster", "show", "--json", check=False, timeout=60)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def primary(self) -> str | None:
        name = self.show()["primary"]
        return name if isinstance(name, str) else None

    def healthy(self) -> bool:
        data = self.show()
        return not data["problems"] and data["ha"]["leader"] == data["primary"]

    def kill_postmaster(self, node: str) -> None:
        process.signal_pid(postmaster_of(self.config.node(node).data_dir), signal.SIGKILL)

    def kill_host(self, node: str) -> None:
        from pgherd.lab import agents

        pm = postmaster_of(self.config.node(node).data_dir)
        agent = agents.running_agent(self.config.node(node))
        assert agent is not None
        kill_host_processes(agent, pm)

    def restore(self, node: str) -> None:
        common.run_checked([*self.lab.pgherd, "lab", "up", "--dir", str(self.directory)], 300)
        common.reap()

    def close(self) -> None:
        common.remove_lab(self.directory)


# ---- Patroni ----------------------------------------------------------------------------


def patroni_venv() -> Path:
    """Patroni's virtualenv, built if absent (from /usr/bin/python3, readable by postgres)."""
    patroni = PATRONI_VENV / "bin" / "patroni"
    if not patroni.exists():
        common.console.print(f"building {PATRONI_VENV} (pip install patroni[etcd3])")
        common.run_checked(["/usr/bin/python3", "-m", "venv", str(PATRONI_VENV)], 300)
        common.run_checked(
            [
                str(PATRONI_VENV / "bin" / "pip"),
                "install",
                "-q",
                "patroni[etcd3]",
                "psycopg2-binary",
            ],
            900,
        )
        common.run_checked(["chmod", "-R", "a+rX", str(PATRONI_VENV)], 60)
    return patroni


class Patroni:
    def __init__(self, label: str, etcd: EtcdServer, dcs: dict[str, Any]) -> None:
        self.name = label
        self.directory = ROOT / label.replace(" ", "-").replace(",", "")
        common.remove_tree(self.directory)
        self.user = osuser.resolve(common.OS_USER)
        self.user.make_dir(self.directory)
        self.binary = patroni_venv()
        self.pgbin = binaries.find(None).bindir
        base = common.free_port_base(3, (0, 1000))
        self.ports = [base + i for i in range(3)]
        self.api = [base + 1000 + i for i in range(3)]
        self.names = [f"p{i + 1}" for i in range(3)]
        self.scope = f"bench{base}"
        passwords = {
            "postgres": passfile.generate_password(),
            "replicator": passfile.generate_password(),
        }
        self.pgpass = self.directory / "pgpass"
        self.user.write_file(self.pgpass, passfile.render(passwords))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for i, name in enumerate(self.names):
            self._write_config(i, name, etcd, dcs, passwords)
        self._start(self.names[0])
        wait(lambda: self.primary() == self.names[0], 120, "Patroni to bootstrap")
        for name in self.names[1:]:
            self._start(name)
        self.conninfo = multi_host(self.ports, "postgres", self.pgpass)
        wait(self.healthy, 300, "the Patroni cluster")

    def _write_config(
        self, i: int, name: str, etcd: EtcdServer, dcs: dict[str, Any], passwords: dict[str, str]
    ) -> None:
        home = self.directory / name
        self.user.make_dir(home)
        cfg = {
            "scope": self.scope,
            "name": name,
            "restapi": {
                "listen": f"127.0.0.1:{self.api[i]}",
                "connect_address": f"127.0.0.1:{self.api[i]}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{etcd.client_port}"},
            "bootstrap": {
                "dcs": {
                    **dcs,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {"wal_log_hints": "on", "wal_keep_size": "512MB"},
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.ports[i]}",
                "connect_address": f"127.0.0.1:{self.ports[i]}",
                "data_dir": str(home / "data"),
                "bin_dir": str(self.pgbin),
                "pgpass": str(home / "pgpass-patroni"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": passwords["postgres"]},
                    "replication": {
                        "username": "replicator",
                        "password": passwords["replicator"],
                    },
                    "rewind": {"username": "postgres", "password": passwords["postgres"]},
                },
                "pg_hba": [
                    "local all all peer",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
                "parameters": {"unix_socket_directories": str(home)},
            },
        }
        # The file holds Patroni's passwords (as its own config does): 0600, postgres's.
        self.user.write_file(home / "patroni.yml", json.dumps(cfg))

    def _start(self, name: str) -> None:
        home = self.directory / name
        log = os.open(home / "patroni.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.user.chown(home / "patroni.log")
            self.procs[name] = subprocess.Popen(
                [str(self.binary), str(home / "patroni.yml")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=home,
                env={"PATH": "/usr/bin:/bin", "HOME": str(self.user.home), "LC_ALL": "C.UTF-8"},
                user=self.user.uid,
                group=self.user.gid,
                extra_groups=[],
                start_new_session=True,
            )
        finally:
            os.close(log)

    def _cluster(self) -> dict[str, Any]:
        for port in self.api:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
                    data: dict[str, Any] = json.loads(r.read())
                    return data
            except OSError:
                continue
        raise RuntimeError("no Patroni REST API answered")

    def primary(self) -> str | None:
        for member in self._cluster().get("members", []):
            if (
                member.get("role") in ("leader", "master", "primary")
                and member.get("state") == "running"
            ):
                return str(member["name"])
        return None

    def healthy(self) -> bool:
        members = self._cluster().get("members", [])
        leaders = [m for m in members if m.get("role") in ("leader", "master", "primary")]
        streaming = [m for m in members if m.get("state") == "streaming"]
        return (
            len(members) == 3
            and len(leaders) == 1
            and leaders[0].get("state") == "running"
            and len(streaming) == 2
        )

    def kill_postmaster(self, node: str) -> None:
        process.signal_pid(postmaster_of(self.directory / node / "data"), signal.SIGKILL)

    def kill_host(self, node: str) -> None:
        pm = postmaster_of(self.directory / node / "data")
        kill_host_processes(self.procs[node].pid, pm)
        self.procs[node].wait(10)

    def restore(self, node: str) -> None:
        common.reap()
        if self.procs[node].poll() is not None:
            self._start(node)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for name in self.names:
            pm = process.running_postmaster(self.directory / name / "data")
            if pm is not None:
                process.signal_pid(pm.pid, signal.SIGQUIT)
                process.wait_gone(pm.pid, 20)
        common.reap()
        common.remove_tree(self.directory)


# ---- one run ----------------------------------------------------------------------------


def one_run(system: System, scenario: str, run: int) -> dict[str, float]:
    wait(system.healthy, 180, f"{system.name} to be healthy")
    old = system.primary()
    assert old is not None
    writer = Writer(system.conninfo)
    writer.start()
    try:
        writer.steady(1.0)
        killed_at = time.monotonic()
        if scenario == "postmaster":
            system.kill_postmaster(old)
        else:
            system.kill_host(old)
        back = writer.outage_after(killed_at)
        unavailable = back - killed_at
        writer.steady(1.0, since=back)
    finally:
        writer.stop()
    new = system.primary()
    lost = writer.lost_on(system.conninfo)
    common.console.print(
        f"  {system.name}, {scenario} #{run + 1}: writes back after {unavailable:.2f} s "
        f"({old} → {new}), {lost} acknowledged commits lost"
    )
    system.restore(old)
    wait(system.healthy, 300, f"{system.name} to be healthy again")
    return {"unavailable": unavailable, "lost": float(lost), "moved": float(new != old)}


def measure(system: System, runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scenario in ("postmaster", "host"):
        found = [one_run(system, scenario, run) for run in range(runs)]
        results[scenario] = {
            "unavailable_s": common.summary([f["unavailable"] for f in found]),
            "lost_commits": int(sum(f["lost"] for f in found)),
            "failovers": int(sum(f["moved"] for f in found)),
        }
    return results


def reaper() -> None:
    while True:
        common.reap()
        time.sleep(0.2)


PGHERD_TIGHTEST = {"ttl": 2.0, "loop_wait": 0.25, "retry_timeout": 0.5}
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
PATRONI_TIGHTEST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["pgherd", "patroni"], default=None)
    args = parser.parse_args()
    common.become_subreaper()
    # Reap orphans at once, as an init would (PID 1 here never does): Patroni's postmaster
    # is an orphan, and a zombie postmaster's PID in its lock files blocks the restart.
    threading.Thread(target=reaper, daemon=True).start()
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 - postgres must reach the data directories below
    started = common.now()
    base = common.free_port_base(1, (0, 1))
    etcd = EtcdServer(ROOT / "etcd", base, base + 1)
    etcd.start()
    plans: list[tuple[str, Callable[[], System]]] = []
    if args.only in (None, "pgherd"):
        plans += [
            ("pgherd defaults", lambda: Pgherd("pgherd defaults", etcd, {}, sync=False)),
            ("pgherd defaults, sync", lambda: Pgherd("pgherd defaults, sync", etcd, {}, True)),
            ("pgherd tightest", lambda: Pgherd("pgherd tightest", etcd, PGHERD_TIGHTEST, False)),
        ]
    if args.only in (None, "patroni"):
        plans += [
            ("Patroni defaults", lambda: Patroni("Patroni defaults", etcd, PATRONI_DEFAULTS)),
            ("Patroni tightest", lambda: Patroni("Patroni tightest", etcd, PATRONI_TIGHTEST)),
        ]
    results: dict[str, Any] = {}
    try:
        for label, make in plans:
            common.console.print(f"[bold]{label}[/]")
            system = make()
            try:
                results[label] = measure(system, args.runs)
            finally:
                system.close()
    finally:
        etcd.stop()
        common.remove_tree(ROOT / "etcd")
    rows = []
    for label, found in results.items():
        for scenario, what in (("postmaster", "kill -9 postmaster"), ("host", "host loss")):
            u = found[scenario]["unavailable_s"]
            rows.append(
                [
                    label,
                    what,
                    f"{u['min']:.2f}",
                    f"{u['median']:.2f}",
                    f"{u['max']:.2f}",
                    found[scenario]["lost_commits"],
                    f"{found[scenario]['failovers']}/{args.runs}",
                ]
            )
    common.print_table(
        "write unavailability (s) and acknowledged commits lost",
        ["system", "fault", "min", "median", "max", "lost", "failovers"],
        rows,
    )
    path = common.write_json(
        "failover",
        {
            "benchmark": "failover",
            "started": started,
            "machine": common.machine(),
            "load_average": common.load_average(),
            "runs": args.runs,
            "interval_s": INTERVAL,
            "settings": {
                "pgherd defaults": {"ttl": 3, "loop_wait": 0.5, "retry_timeout": 1},
                "pgherd tightest": PGHERD_TIGHTEST,
                "Patroni defaults": PATRONI_DEFAULTS,
                "Patroni tightest": PATRONI_TIGHTEST,
            },
            "results": results,
        },
        started,
    )
    common.console.print(f"JSON: {path}")


if __name__ == "__main__":
    main()
