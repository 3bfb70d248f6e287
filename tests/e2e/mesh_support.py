"""Three independent primaries with their agents, and what the mesh tests and the mesh's
long fault run (bench/mesh_faults.py) do with them: meshes made through the CLI, writers with
keys of their own that remember what the table must hold, convergence checks, and the fault
scenario both run (kill -9 of workers, then a member down while the others write)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgherd.config import ClusterConfig
from pgherd.lab import agents
from pgherd.pg import osuser, process
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.conftest import free_port_base
from tests.support import cluster_config, connect, pgherd, query, wait_until


@dataclass(frozen=True)
class Nodes:
    config: ClusterConfig
    path: Path

    def cli(self, *args: str, check: bool = True) -> Any:
        return pgherd(*args, config=self.path, check=check)

    def sql(self, node: str, text: str, *params: Any) -> list[Any]:
        return query(self.config, node, text, *params)

    def on_all(self, text: str, nodes: tuple[str, ...] = ("node1", "node2", "node3")) -> None:
        for node in nodes:
            self.sql(node, text)


@contextlib.contextmanager
def three_primaries(directory: Path, os_user: osuser.OsUser) -> Iterator[Nodes]:
    """Three independent primaries (node1..3) under ``directory``, each with its own agent
    (started as a service manager starts it); all stopped when the block ends."""
    with primaries(directory, os_user, 3) as nodes:
        yield nodes


@contextlib.contextmanager
def primaries(directory: Path, os_user: osuser.OsUser, count: int, **extra: Any) -> Iterator[Nodes]:
    """``count`` primaries (node1…) under ``directory``, each with its own agent; ``extra``:
    pgherd.yaml's fields to set (``cluster``, ``peers``)."""
    config = cluster_config(directory, os_user, count, free_port_base(count, (0, 1000)), **extra)
    path = directory / "pgherd.yaml"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for node in config.nodes:
            bootstrap.init_primary(LocalNode.open(config, node.name))
            log = os.open(node.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            argv = ["agent", "run", "--node", node.name, "--config", str(path)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pgherd", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
            os.close(log)
        for node, proc in zip(config.nodes, procs, strict=True):
            agents.wait_healthy(node, proc.pid)
            bootstrap.create_replication_role(LocalNode.open(config, node.name))
        yield Nodes(config, path)
    finally:
        for node in config.nodes:
            agents.stop(node)
        for proc in procs:
            proc.wait(30)
        process.reap_zombie_children()


def mesh_json(nodes: Nodes, *args: str) -> tuple[int, Any]:
    done = nodes.cli("mesh", *args, "--json", check=False)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def wait_converged(nodes: Nodes, mesh: str, timeout: float = 90) -> None:
    def clean() -> bool:
        code, data = mesh_json(nodes, "verify", mesh)
        return code == 0 and bool(data["clean"])

    try:
        wait_until(clean, timeout=timeout, what=f"mesh {mesh} to converge")
    except AssertionError:
        raise AssertionError(diagnosis(nodes, mesh)) from None


def diagnosis(nodes: Nodes, mesh: str) -> str:
    """What a failed convergence looks like: the differences, the pairs, the workers' logs."""
    lines = [f"mesh {mesh} did not converge"]
    lines.append(nodes.cli("mesh", "verify", mesh, "--json", check=False).stdout)
    lines.append(nodes.cli("mesh", "status", mesh, "--json", check=False).stdout)
    for node in nodes.config.nodes:
        for log in sorted(node.home_dir.glob(f"mesh/{mesh}.from-*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            lines.append(f"== {node.name} {log.name}\n" + "\n".join(tail))
    return "\n".join(lines)


def wait_running(nodes: Nodes, mesh: str, timeout: float = 60) -> list[dict[str, Any]]:
    def running() -> list[dict[str, Any]] | None:
        code, data = mesh_json(nodes, "status", mesh)
        return data["pairs"] if code == 0 else None

    found = wait_until(running, timeout=timeout, what=f"mesh {mesh} workers running")
    assert found is not None
    return found


def conflicts(nodes: Nodes, mesh: str) -> list[dict[str, Any]]:
    code, data = mesh_json(nodes, "conflicts", mesh, "--limit", "1000")
    assert code == 0
    assert isinstance(data, list)
    return data


def create(nodes: Nodes, mesh: str, members: str, tables: str, *extra: str) -> None:
    nodes.cli("mesh", "create", mesh, "--nodes", members, "--tables", tables, *extra)
    wait_running(nodes, mesh)


def drop(nodes: Nodes, mesh: str) -> None:
    nodes.cli("mesh", "drop", mesh)


@dataclass
class Writer:
    """Writes rows with keys of its own on one node: inserts, updates, deletes, in small
    transactions, and remembers what the table must hold in the end."""

    config: ClusterConfig
    node: str
    table: str
    base: int
    rows: dict[int, int] = field(default_factory=dict)
    transactions: int = 0
    error: BaseException | None = None

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        rng = random.Random(self.base)
        next_id = self.base
        deadline = time.monotonic() + seconds
        conn: psycopg.Connection[Any] | None = None
        try:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                try:
                    if conn is None:
                        conn = connect(self.config, self.node)
                    next_id = self._transaction(conn, rng, next_id)
                except psycopg.OperationalError:
                    conn = None  # the server restarts (kill -9 tests): connect again
                    time.sleep(0.2)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            if conn is not None:
                conn.close()

    def _transaction(self, conn: psycopg.Connection[Any], rng: random.Random, next_id: int) -> int:
        # Mostly small transactions; one in 20 inserts 500 rows, so that a worker killed
        # at a random moment is likely to be in the middle of a transaction.
        size = 500 if self.transactions % 20 == 19 else rng.randint(1, 5)
        with conn.transaction():
            inserted = [(next_id + i, rng.randrange(1000)) for i in range(size)]
            conn.cursor().executemany(
                f"INSERT INTO {self.table} (id, n, origin) VALUES (%s, %s, '{self.node}')",  # noqa: S608
                inserted,
            )
            changed: dict[int, int | None] = dict(inserted)
            if self.rows and rng.random() < 0.5:
                key = rng.choice(list(self.rows))
                conn.execute(f"UPDATE {self.table} SET n = n + 1 WHERE id = %s", (key,))  # noqa: S608
                changed[key] = self.rows[key] + 1
            if len(self.rows) > 5 and rng.random() < 0.2:
                key = rng.choice(list(self.rows))
                conn.execute(f"DELETE FROM {self.table} WHERE id = %s", (key,))  # noqa: S608
                changed[key] = None
        for key, value in changed.items():  # committed: now it counts
            if value is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = value
        self.transactions += 1
        return next_id + len(inserted)


def run_writers(writers: list[Writer], seconds: float) -> None:
    threads = [threading.Thread(target=w.run, args=(seconds,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        assert w.error is None, f"writer on {w.node}: {w.error!r}"


def expected_state(writers: list[Writer]) -> tuple[int, int]:
    rows = {k: v for w in writers for k, v in w.rows.items()}
    return len(rows), sum(rows.values())


def table_state(nodes: Nodes, node: str, table: str) -> tuple[int, int]:
    rows = nodes.sql(node, f"SELECT count(*), coalesce(sum(n), 0) FROM {table}")  # noqa: S608
    return int(rows[0][0]), int(rows[0][1])


LOAD_TABLE = "CREATE TABLE {} (id bigint PRIMARY KEY, n int NOT NULL, origin text NOT NULL)"


def start_writers(
    writers: list[Writer], stop: threading.Event, seconds: float = 120
) -> list[threading.Thread]:
    """Writers in threads, until ``stop`` is set (or ``seconds`` at most)."""
    threads = [threading.Thread(target=w.run, args=(seconds, stop)) for w in writers]
    for thread in threads:
        thread.start()
    return threads


def stop_writers(
    writers: list[Writer], threads: list[threading.Thread], stop: threading.Event
) -> None:
    stop.set()
    for thread in threads:
        thread.join()
    for w in writers:
        assert w.error is None, f"writer on {w.node}: {w.error!r}"


def worker_pid(nodes: Nodes, mesh: str, source: str, target: str) -> int | None:
    _code, data = mesh_json(nodes, "status", mesh)
    for pair in data["pairs"] if data else []:
        if (pair["source"], pair["target"]) == (source, target) and pair.get("pid"):
            return int(pair["pid"])
    return None


@dataclass
class MemberDown:
    """What :func:`member_down` saw: the writers (what the table must hold), and how long
    the mesh took to run again and to converge once the writers stopped."""

    down_seconds: float
    writers: list[Writer]
    workers_killed: int
    running_seconds: float  # from the writers' stop to every pair's worker running
    converged_seconds: float  # from the writers' stop to a clean ``mesh verify``


def member_down(
    nodes: Nodes, mesh: str, down_seconds: float, converge_timeout: float = 180
) -> MemberDown:
    """A mesh of three (made here, on table ``mesh``) while every member writes: kill -9 of
    four workers, 1.5 s apart (one transaction in 20 has 500 rows: a worker is often in
    the middle of one); then node3 stopped for ``down_seconds`` while node1 and node2
    write, started again, and written on for 3 s more. Returns once every member holds the
    same rows (or raises); the caller judges them and drops the mesh."""
    nodes.on_all(LOAD_TABLE.format(mesh))
    create(nodes, mesh, "node1,node2,node3", mesh)
    writers = [Writer(nodes.config, f"node{i}", mesh, i * 10_000_000) for i in (1, 2, 3)]
    stop, stop3 = threading.Event(), threading.Event()
    longest = down_seconds + 120
    threads = start_writers(writers[:2], stop, longest) + start_writers(writers[2:], stop3)
    pairs = [("node1", "node2"), ("node2", "node3"), ("node3", "node1"), ("node2", "node1")]
    killed = 0
    try:
        for source, target in pairs:
            time.sleep(1.5)
            pid = wait_until(
                functools.partial(worker_pid, nodes, mesh, source, target), what="a worker"
            )
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed += 1
        # node3's own writer stops first: a commit whose answer is lost in the shutdown
        # would make its count unknowable
        stop3.set()
        threads[2].join()
        nodes.cli("node", "stop", "node3")
        time.sleep(down_seconds)
        nodes.cli("node", "start", "node3")
        later = Writer(nodes.config, "node3", mesh, 40_000_000)
        writers.append(later)
        threads += start_writers([later], stop)
        time.sleep(3)
    finally:
        stop.set()
        stop3.set()
        stop_writers(writers, threads, stop)
    stopped = time.monotonic()
    running = wait_running(nodes, mesh, timeout=120)
    assert len(running) == 6, running
    running_at = time.monotonic()
    wait_converged(nodes, mesh, timeout=converge_timeout)
    return MemberDown(
        down_seconds=down_seconds,
        writers=writers,
        workers_killed=killed,
        running_seconds=running_at - stopped,
        converged_seconds=time.monotonic() - stopped,
    )
