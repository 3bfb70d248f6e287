"""The mesh apply worker against two real PostgreSQL servers, without a lab: a source
(node1) and a target (node2), one mesh per test, the worker run as its agent runs it
(``python -m pgherd.mesh.apply``, a child process) so that it can be killed with SIGKILL.

What is checked is what an operator sees: the rows on the target, ``pgherd.conflicts``,
the origin's position and the worker's status file. Where the origin must stand exactly
is learned from the source itself: a probe slot created before the writes is peeked
(pgoutput, binary) for the end LSN of every transaction.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgherd.config import ClusterConfig
from pgherd.mesh import node_ops, store
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.worker import EXIT_CONFLICT
from pgherd.model import mesh as mesh_model
from pgherd.model.conflict import Policy
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshSpec
from pgherd.pg import osuser
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.conftest import free_port_base
from tests.support import cluster_config, wait_until

pytestmark = pytest.mark.integration

DB = "app"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def pair(module_dir: Path, os_user: osuser.OsUser) -> Iterator[ClusterConfig]:
    """Two running primaries, each with the database ``app``; stopped at the end."""
    config = cluster_config(module_dir, os_user, 2, free_port_base(2, (0, 1000)))
    try:
        for node in config.nodes:
            local = LocalNode.open(config, node.name)
            bootstrap.init_primary(local)
            local.instance.start()
            bootstrap.create_replication_role(local)
            with connect(config, node.name, "postgres") as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
        yield config
    finally:
        for node in config.nodes:
            LocalNode.open(config, node.name).instance.stop("immediate")


def connect(config: ClusterConfig, node: str, dbname: str = DB) -> psycopg.Connection[Any]:
    target = config.node(node)
    return psycopg.connect(
        host=target.host,
        port=target.port,
        user=config.superuser,
        dbname=dbname,
        passfile=str(config.passfile),
        autocommit=True,
        connect_timeout=5,
    )


def run(config: ClusterConfig, node: str, text: str, *params: Any) -> list[Any]:
    with connect(config, node) as conn:
        cur = conn.execute(text, params or None)
        return cur.fetchall() if cur.description is not None else []


@dataclass
class Mesh:
    """One mesh of the pair, applied one way (node1 → node2), with its own table."""

    config: ClusterConfig
    spec: MeshSpec
    table: str
    probe: str  # a slot on the source that sees every transaction after the mesh began
    _ends: list[int] | None = None

    @property
    def origin(self) -> str:
        return mesh_model.origin_name(self.spec.name, "node1")

    def progress(self) -> int:
        """Where the target's origin for the source stands (durably)."""
        rows = run(
            self.config, "node2", "SELECT pg_replication_origin_progress(%s, true)", self.origin
        )
        return Lsn.parse(str(rows[0][0])).value if rows[0][0] is not None else 0

    def commit_ends(self) -> list[int]:
        """The end LSN of every transaction the source committed to the mesh's tables since
        the mesh began, in commit order (from the probe slot, which is only peeked; read
        once after each write)."""
        if self._ends is not None:
            return self._ends
        rows = run(
            self.config,
            "node1",
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
            "'proto_version', '1', 'publication_names', %s) WHERE get_byte(data, 0) = 67",
            self.probe,
            mesh_model.publication_name(self.spec.name),
        )
        ends = []
        for (data,) in rows:
            message = po.decode(bytes(data))
            assert isinstance(message, po.Commit)
            ends.append(message.end_lsn)
        self._ends = ends
        return ends

    def rows(self, node: str) -> dict[int, tuple[str, int]]:
        found = run(
            self.config,
            node,
            sql.SQL("SELECT id, v, n FROM {}").format(sql.Identifier(self.table)).as_string(None),
        )
        return {int(i): (str(v), int(n)) for i, v, n in found}

    def conflicts(self) -> list[tuple[str, int, str]]:
        """(kind, key id, resolution) of each recorded conflict, in key order."""
        found = run(
            self.config,
            "node2",
            "SELECT kind, (key->>'id')::int8, resolution FROM pgherd.conflicts "
            "WHERE mesh = %s ORDER BY 2, 1",
            self.spec.name,
        )
        return [(str(k), int(i), str(r)) for k, i, r in found]

    def status(self) -> dict[str, Any]:
        return store.read_status(self.config.node("node2"), self.spec.name, "node1") or {}

    def final_status(self) -> dict[str, Any]:
        """The status file once it shows the origin at the source's last transaction (it is
        written about once a second)."""
        last = str(Lsn(self.commit_ends()[-1]))

        def written() -> dict[str, Any] | None:
            status = self.status()
            return status if status.get("committed_lsn") == last else None

        found = wait_until(written, 10, "the status")
        assert found is not None
        return found

    def caught_up(self) -> bool:
        ends = self.commit_ends()
        return bool(ends) and self.progress() == ends[-1]


def make_mesh(
    config: ClusterConfig, policy: Policy = Policy.LAST_UPDATE_WINS, others: int = 0
) -> Mesh:
    """A new mesh over a new table (id bigint key, v text, n int) on both nodes, and
    ``others`` more tables like it (``<table>_1``…)."""
    name = f"t{os.getpid() % 1000}x{next(_names)}"
    table = f"{name}_rows"
    tables = [table, *(f"{table}_{i}" for i in range(1, others + 1))]
    for member in ("node1", "node2"):
        for each in tables:
            run(
                config,
                member,
                sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL)")
                .format(sql.Identifier(each))
                .as_string(None),
            )
    spec = MeshSpec(
        name=name,
        dbname=DB,
        nodes=("node1", "node2"),
        tables=tuple(f"public.{t}" for t in tables),
        policy=policy,
    )
    for node in config.nodes:
        node_ops.prepare(LocalNode.open(config, node.name), spec)
        store.save_spec(node, spec)
    # Only node1 → node2 is applied here: the slot for the other way would hold WAL back.
    run(config, "node2", "SELECT pg_drop_replication_slot(%s)", mesh_model.slot_name(name, "node1"))
    probe = f"{name}_probe"
    run(config, "node1", "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", probe)
    return Mesh(config, spec, table, probe)


class ApplyProcess:
    """The worker as its agent starts it: a child process, stopped with SIGTERM."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.mesh.config
        argv = [
            sys.executable,
            "-m",
            "pgherd.mesh.apply",
            "--config",
            str(config.nodes[0].home_dir.parent / "pgherd.yaml"),
            "--mesh",
            self.mesh.spec.name,
            "--source",
            "node1",
            "--target",
            "node2",
        ]
        log = store.log_path(config.node("node2"), self.mesh.spec.name, "node1")
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def stop(self) -> int:
        """SIGTERM, as the agent stops it; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.process = None
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self.process = None
        return code

    def log(self) -> str:
        path = store.log_path(self.mesh.config.node("node2"), self.mesh.spec.name, "node1")
        return path.read_text(errors="replace")[-3000:]


@pytest.fixture
def worker_of() -> Iterator[Any]:
    """Make workers; any still running at the end of the test is killed."""
    made: list[ApplyProcess] = []

    def make(mesh: Mesh) -> ApplyProcess:
        worker = ApplyProcess(mesh)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        if worker.process is not None and worker.process.poll() is None:
            worker.kill()


def _named(mesh: Mesh, text: str) -> str:
    """``text`` with ``{t}`` standing for the mesh's table (``{t1}``, ``{t2}`` its others)."""
    names = {"t": mesh.table, "t1": f"{mesh.table}_1", "t2": f"{mesh.table}_2"}
    return text.format(**{k: sql.Identifier(v).as_string(None) for k, v in names.items()})


def write(mesh: Mesh, text: str) -> None:
    """Run ``text`` (see _named) on the source."""
    mesh._ends = None  # what the source committed changes here
    run(mesh.config, "node1", _named(mesh, text))


def write_local(mesh: Mesh, text: str) -> None:
    """Run ``text`` (see _named) on the target itself (a local write: no origin)."""
    run(mesh.config, "node2", _named(mesh, text))


def apply_backend(mesh: Mesh) -> tuple[int, bool] | None:
    """The worker's backend on the target: (pid, inside a transaction that wrote)."""
    rows = run(
        mesh.config,
        "node2",
        "SELECT pid, backend_xid IS NOT NULL FROM pg_stat_activity WHERE application_name = %s",
        f"pgherd apply {mesh.spec.name} from node1",
    )
    return (int(rows[0][0]), bool(rows[0][1])) if rows else None


def waiting_on_a_lock(mesh: Mesh) -> int | None:
    """The worker's backend, if it waits for a lock inside a transaction that wrote."""
    rows = run(
        mesh.config,
        "node2",
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
        "AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL",
        f"pgherd apply {mesh.spec.name} from node1",
    )
    return int(rows[0][0]) if rows else None


def backend_gone(mesh: Mesh, pid: int) -> bool:
    """The killed worker's backend has ended (and rolled its transaction back)."""
    now = apply_backend(mesh)
    return now is None or now[0] != pid


def write_transactions(mesh: Mesh, transactions: int, stops: tuple[int, ...]) -> list[int]:
    """``transactions`` transactions of 10 rows each on the source (n = the transaction's
    number); transaction ``stops[k]`` also writes to the mesh's other table ``k + 1``, which
    locked_tables can hold on the target. The commit ends, one per transaction."""
    also = "".join(
        f"IF i = {stop} THEN INSERT INTO {{t{k}}} VALUES (i, 'stop', i); END IF; "  # noqa: S608
        for k, stop in enumerate(stops, 1)
    )
    write(
        mesh,
        f"DO $$ BEGIN FOR i IN 0..{transactions - 1} LOOP "  # noqa: S608 - integers only
        "INSERT INTO {t} SELECT i * 10 + g, 'txn ' || i, i FROM generate_series(1, 10) g; "
        f"{also}COMMIT; END LOOP; END $$",
    )
    ends = mesh.commit_ends()
    assert len(ends) == transactions
    return ends


@contextlib.contextmanager
def locked_tables(mesh: Mesh, count: int) -> Iterator[list[psycopg.Connection[Any]]]:
    """One connection to the target per other table of the mesh (``<table>_1``…), each in
    a transaction that holds its table ACCESS EXCLUSIVE: the worker waits at the first
    write there, with the group's earlier rows written."""
    with contextlib.ExitStack() as stack:
        locks = []
        for n in range(1, count + 1):
            lock = stack.enter_context(connect(mesh.config, "node2"))
            lock.execute("BEGIN")
            lock.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(f"{mesh.table}_{n}")
                )
            )
            locks.append(lock)
        yield locks


def whole_transactions_kept(mesh: Mesh, ends: list[int], stop: int) -> dict[int, tuple[str, int]]:
    """The target's rows, once checked to be exactly the transactions its origin says were
    applied, none past ``stop`` (where the worker was stopped)."""
    at = mesh.progress()
    applied = ends.index(at) + 1 if at else 0
    assert applied <= stop, f"origin at {Lsn(at)}: past the transaction it waited in"
    rows = mesh.rows("node2")
    assert len(rows) == applied * 10, f"origin at {Lsn(at)}, not at a transaction's end"
    return rows


# ---- replay after a crash ---------------------------------------------------------------


def test_a_worker_killed_mid_group_resumes_at_its_origin_exactly(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """kill -9 of the worker while a group is open and has written rows: the target keeps
    exactly the whole transactions the origin says (none partly, none past it), and the
    next worker applies the rest once: no conflict, no replay, every row.

    The crash is made to fall inside a group: transactions 1500 and 3000 also write to a
    table of their own, which the test holds locked, so the worker waits there with the
    group's earlier rows written and uncommitted."""
    mesh = make_mesh(pair, others=2)
    transactions, stops = 4000, (1500, 3000)
    ends = write_transactions(mesh, transactions, stops)
    worker = worker_of(mesh)
    with locked_tables(mesh, len(stops)) as locks:
        for stop, lock in zip(stops, locks, strict=True):
            worker.start()
            pid = wait_until(lambda: waiting_on_a_lock(mesh), 60, "the worker at the lock")
            assert pid is not None
            worker.kill()
            lock.execute("ROLLBACK")  # the backend goes on, finds its client gone, rolls back
            wait_until(functools.partial(backend_gone, mesh, pid), 30, "the backend gone")
            rows = whole_transactions_kept(mesh, ends, stop)
            assert {n for _v, n in rows.values()} == set(range(len(rows) // 10))
    worker.start()
    wait_until(mesh.caught_up, 60, "the worker to catch up")
    rows = mesh.rows("node2")
    assert rows == mesh.rows("node1")
    assert len(rows) == transactions * 10
    assert mesh.conflicts() == []
    status = mesh.final_status()
    assert status["replays"] == 0
    assert status["conflicts"] == 0
    assert worker.stop() == 0


def test_a_worker_stopped_mid_group_keeps_nothing_of_it_and_exits(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """SIGTERM while a group is open with a COPY run (the agent stops a worker when its
    node turns standby or is fenced; the workers of a killed agent get it too): the worker
    exits at once, the open group is rolled back (the target keeps exactly the
    transactions its origin says), and the next worker applies the rest once. Before, the
    session's end committed the group without moving the origin, under the connection's
    lock, which psycopg holds while a COPY is open: the worker hung there for good.

    Transaction 1000 also writes to a table the test holds locked: the worker waits there
    with the group's earlier rows written, and gets the signal while it waits."""
    mesh = make_mesh(pair, others=1)
    stop = 1000
    ends = write_transactions(mesh, 2000, (stop,))
    worker = worker_of(mesh)
    with locked_tables(mesh, 1) as (lock,):
        worker.start()
        pid = wait_until(lambda: waiting_on_a_lock(mesh), 60, "the worker at the lock")
        assert pid is not None
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        lock.execute("ROLLBACK")  # the COPY into the locked table starts: a run is open
    try:
        code = worker.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the stopped worker hangs\n{worker.log()}") from None
    assert code == 0, worker.log()
    wait_until(functools.partial(backend_gone, mesh, pid), 30, "the backend gone")
    whole_transactions_kept(mesh, ends, stop)
    worker.start()
    wait_until(mesh.caught_up, 60, "the worker to catch up")
    assert mesh.rows("node2") == mesh.rows("node1")
    assert mesh.conflicts() == []
    assert worker.stop() == 0


def test_an_insert_meeting_an_existing_key_is_replayed_carefully_and_counted_once(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """Keys written on the target first make the fast path's COPY fail (early in a large
    transaction, and in a small one later in the group): the group is rolled back and
    replayed with the keys checked; the newer remote rows win, each conflict is recorded
    once, and the origin ends exactly at the last transaction."""
    mesh = make_mesh(pair)
    write_local(mesh, "INSERT INTO {t} VALUES (7, 'local', -1), (20005, 'local', -1)")
    time.sleep(0.25)  # the source's writes fall in a later 100 ms slot: remote wins
    write(mesh, "INSERT INTO {t} SELECT g, 'big', 0 FROM generate_series(1, 20000) g")
    write(
        mesh,
        "DO $$ BEGIN FOR i IN 1..10 LOOP INSERT INTO {t} "
        "SELECT 20000 + (i - 1) * 10 + g, 'small', i FROM generate_series(1, 10) g; "
        "COMMIT; END LOOP; END $$",
    )
    worker = worker_of(mesh)
    worker.start()
    wait_until(mesh.caught_up, 60, "the worker to catch up")
    assert mesh.rows("node2") == mesh.rows("node1")
    assert mesh.conflicts() == [
        ("insert_exists", 7, "apply-remote"),
        ("insert_exists", 20005, "apply-remote"),
    ]
    status = mesh.final_status()
    assert status["replays"] >= 1, worker.log()
    assert status["conflicts"] == 2
    assert status["rows"] == 20100
    assert worker.stop() == 0


# ---- conflicts --------------------------------------------------------------------------


def test_conflicting_updates_and_deletes_are_resolved_per_row_and_the_rest_as_a_set(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """A batch of 1,000 updates and one of 100 deletes meet rows the target changed since:
    those rows (and only those) are decided one by one by last-update-wins."""
    mesh = make_mesh(pair)
    worker = worker_of(mesh)
    write(mesh, "INSERT INTO {t} SELECT g, 'loaded', 0 FROM generate_series(1, 1000) g")
    worker.start()
    wait_until(mesh.caught_up, 30, "the load applied")
    assert worker.stop() == 0
    write(
        mesh,
        "DO $$ BEGIN FOR i IN 1..1000 LOOP UPDATE {t} SET v = 'remote', n = i WHERE id = i; "
        "END LOOP; DELETE FROM {t} WHERE id > 900; END $$",
    )
    time.sleep(0.25)  # the target's own changes are newer
    write_local(mesh, "UPDATE {t} SET v = 'local' WHERE id = 5")
    write_local(mesh, "DELETE FROM {t} WHERE id = 6")
    write_local(mesh, "UPDATE {t} SET v = 'local' WHERE id = 950")
    write_local(mesh, "DELETE FROM {t} WHERE id = 960")
    worker.start()
    wait_until(mesh.caught_up, 30, "the changes applied")
    rows = mesh.rows("node2")
    expected = {i: ("remote", i) for i in range(1, 901) if i not in (5, 6)}
    expected[5] = ("local", 0)  # the local update is newer: kept
    assert rows == expected
    assert mesh.conflicts() == [
        ("update_differs", 5, "keep-local"),
        ("update_missing", 6, "skip"),
        ("delete_differs", 950, "apply-remote"),  # the delete wins over the local update
        ("update_differs", 950, "keep-local"),  # ... that was newer than the remote one
        ("delete_missing", 960, "skip"),
        ("update_missing", 960, "skip"),
    ]
    status = mesh.final_status()
    assert status["conflicts"] == 6
    assert status["conflict_counts"] == [
        {"kind": "delete_differs", "resolution": "apply-remote", "count": 1},
        {"kind": "delete_missing", "resolution": "skip", "count": 1},
        {"kind": "update_differs", "resolution": "keep-local", "count": 2},
        {"kind": "update_missing", "resolution": "skip", "count": 2},
    ]
    assert worker.stop() == 0


def test_the_error_policy_stops_with_nothing_of_the_group_applied(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """Under the error policy a conflict stops the worker (exit 3, state conflict): the
    group is rolled back, the origin stays, and the conflict is recorded once however often
    the worker is restarted."""
    mesh = make_mesh(pair, Policy.ERROR)
    worker = worker_of(mesh)
    write(mesh, "INSERT INTO {t} SELECT g, 'loaded', 0 FROM generate_series(1, 100) g")
    worker.start()
    wait_until(mesh.caught_up, 30, "the load applied")
    assert worker.stop() == 0
    before = mesh.progress()
    write(mesh, "UPDATE {t} SET v = 'remote' WHERE id <= 50")
    write_local(mesh, "DELETE FROM {t} WHERE id = 30")
    for _ in range(2):
        worker.start()
        assert worker.wait(30) == EXIT_CONFLICT, worker.log()
        status = mesh.status()
        assert status["state"] == "conflict"
        assert "update_missing" in status["error"]
        assert mesh.progress() == before
        assert sum(1 for v, _n in mesh.rows("node2").values() if v == "remote") == 0
        assert mesh.conflicts() == [("update_missing", 30, "error")]


# ---- TRUNCATE ---------------------------------------------------------------------------


def test_truncate_is_applied_in_order_with_cascade_and_restart_identity_as_given(
    pair: ClusterConfig, worker_of: Any
) -> None:
    """A TRUNCATE between inserts (in one transaction and across transactions of a group)
    leaves exactly the rows written after it; CASCADE reaches a table that references the
    mesh's table on the target, and RESTART IDENTITY restarts the target's sequence."""
    mesh = make_mesh(pair, others=1)
    ident = sql.Identifier(f"{mesh.table}_1")
    for node in ("node1", "node2"):
        run(
            pair,
            node,
            sql.SQL("ALTER TABLE {} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
            .format(ident)
            .as_string(None),
        )
        run(
            pair,
            node,
            sql.SQL("CREATE TABLE {} (id bigint REFERENCES {})")
            .format(sql.Identifier(f"{mesh.table}_refs"), ident)
            .as_string(None),
        )
    write_local(
        mesh, "SELECT nextval(pg_get_serial_sequence('{t1}', 'id')) FROM generate_series(1, 5)"
    )
    write(mesh, "INSERT INTO {t} SELECT g, 'before', 0 FROM generate_series(1, 1000) g")
    write(mesh, "INSERT INTO {t1} (v, n) SELECT 'before', 0 FROM generate_series(1, 10)")
    write_local(mesh, "INSERT INTO {t1} (id, v, n) VALUES (100, 'local', 0)")
    run(
        pair,
        "node2",
        sql.SQL("INSERT INTO {} VALUES (100)")
        .format(sql.Identifier(f"{mesh.table}_refs"))
        .as_string(None),
    )
    write(
        mesh,
        "DO $$ BEGIN INSERT INTO {t} SELECT g, 'in', 1 FROM generate_series(1001, 1100) g; "
        "TRUNCATE {t}; INSERT INTO {t} SELECT g, 'after', 2 FROM generate_series(2001, 2050) g; "
        "COMMIT; TRUNCATE {t1} RESTART IDENTITY CASCADE; COMMIT; "
        "INSERT INTO {t} SELECT g, 'later', 3 FROM generate_series(3001, 3010) g; END $$",
    )
    worker = worker_of(mesh)
    worker.start()
    wait_until(mesh.caught_up, 30, "the worker to catch up")
    rows = mesh.rows("node2")
    assert rows == mesh.rows("node1")
    assert sorted(rows) == [*range(2001, 2051), *range(3001, 3011)]
    target = mesh.config
    assert run(
        target, "node2", sql.SQL("SELECT count(*) FROM {}").format(ident).as_string(None)
    ) == [(0,)]
    refs = sql.Identifier(f"{mesh.table}_refs")
    assert run(
        target, "node2", sql.SQL("SELECT count(*) FROM {}").format(refs).as_string(None)
    ) == [(0,)]
    restarted = run(
        target, "node2", "SELECT nextval(pg_get_serial_sequence(%s, 'id'))", f"{mesh.table}_1"
    )
    assert restarted == [(1,)]
    assert mesh.conflicts() == []
    assert worker.stop() == 0
