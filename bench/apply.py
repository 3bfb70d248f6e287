"""The mesh apply worker against PostgreSQL's native subscription apply, same run, same WAL.

Two independent primaries on this machine: a source (database ``bench``) and a target with
two databases, ``native`` (a native subscription) and ``bench`` (pgherd's worker). Both
consume the same changes from two slots on the source, created before the changes are
made: the changes are written while both consumers are stopped, then each consumer is run
alone until it has applied a marker row written last, so each figure is the time to apply
the backlog (decoding on the source included, the same for both). The clock starts when
the consumer's slot becomes active on the source and stops when the marker is on the target.

Cases (one table each):

- (a) 1,000,000 rows inserted in one transaction;
- (b) 100,000 transactions of 10 inserted rows;
- (c) 200,000 single-row UPDATE statements in one transaction;
- (d) one DELETE of 200,000 rows (200,000 row deletions, one transaction).

Rows in (c) and (d) were loaded through each consumer first (untimed), as rows of a mesh
are: on the target they carry the source's origin. The pgherd worker's peak RSS (VmHWM)
is read before it is stopped.

Run: ``$VENV/bin/python -m bench.apply [--scale 0.1] [--runs 1]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import common
from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.lab import layout, lifecycle
from pgherd.mesh import node_ops, store
from pgherd.model.mesh import MeshSpec
from pgherd.pg import osuser
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap

DIRECTORY = Path("/var/tmp/pgherd-bench-apply")
MESH = "bench"
NATIVE_SLOT = "native_bench"
TABLES = ("a_t", "b_t", "c_t", "d_t", "marker")
NODES = ("node1", "node2")


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    table: str
    rows: int
    preload: str | None  # SQL run (and applied, untimed) before the timed changes
    changes: str  # the timed changes
    target_ratio: float


def cases(scale: float) -> list[Case]:
    """The four cases; the statements are built from integers only."""
    big = int(1_000_000 * scale)
    txns = int(100_000 * scale)
    small = int(200_000 * scale)
    return [
        Case(
            "a",
            f"{big:,} rows in one transaction",
            "a_t",
            big,
            None,
            f"INSERT INTO a_t SELECT g, 'row ' || g, g FROM generate_series(1, {big}) g",
            1.3,
        ),
        Case(
            "b",
            f"{txns:,} transactions of 10 rows",
            "b_t",
            txns * 10,
            None,
            f"DO $$ BEGIN FOR i IN 0..{txns - 1} LOOP "
            "INSERT INTO b_t SELECT i * 10 + g, 'row ' || g, g FROM generate_series(1, 10) g; "
            "COMMIT; END LOOP; END $$",
            1.3,
        ),
        Case(
            "c",
            f"{small:,} single-row updates",
            "c_t",
            small,
            f"INSERT INTO c_t SELECT g, 'row ' || g, g FROM generate_series(1, {small}) g",
            f"DO $$ BEGIN FOR i IN 1..{small} LOOP "
            "UPDATE c_t SET n = n + 1 WHERE id = i; END LOOP; END $$",
            1.0,
        ),
        Case(
            "d",
            f"{small:,} deletes",
            "d_t",
            small,
            f"INSERT INTO d_t SELECT g, 'row ' || g, g FROM generate_series(1, {small}) g",
            "DELETE FROM d_t",
            1.0,
        ),
    ]


# ---- the two servers --------------------------------------------------------------------


@dataclass
class Servers:
    config: ClusterConfig
    config_path: Path
    _conns: dict[tuple[str, str], psycopg.Connection[Any]] = field(default_factory=dict)

    def uri(self, node: str, dbname: str) -> str:
        target = self.config.node(node)
        return (
            f"host={target.host} port={target.port} user={self.config.superuser} "
            f"dbname={dbname} passfile={self.config.passfile}"
        )

    def sql(self, node: str, dbname: str, text: str | sql.Composable, *params: Any) -> list[Any]:
        """One statement on a connection kept open: polling with new connections (SCRAM
        costs a few ms of CPU on both sides) would slow down what is measured."""
        conn = self._conns.get((node, dbname))
        if conn is None or conn.closed:
            conn = psycopg.connect(self.uri(node, dbname), autocommit=True)
            self._conns[(node, dbname)] = conn
        cur = conn.execute(text, params or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def set_up(directory: Path, resolution_ms: float | None = None) -> Servers:
    user = osuser.resolve(common.OS_USER)
    user.make_dir(directory)
    base = common.free_port_base(2)
    config = layout.lab_config(directory, layout.LabShape(2, base, user.name, None))
    config_path = directory / "pgherd.yaml"
    lifecycle.write_lab_files(config, config_path, user)
    for node in config.nodes:
        local = LocalNode.open(config, node.name)
        bootstrap.init_primary(local)
        local.instance.start()
        bootstrap.create_replication_role(local)
    servers = Servers(config, config_path)
    table = "CREATE TABLE {} (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL)"
    for where, dbname in (("node1", "bench"), ("node2", "bench"), ("node2", "native")):
        servers.sql(where, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        for name in TABLES:
            servers.sql(where, dbname, sql.SQL(table).format(sql.Identifier(name)))
    spec = MeshSpec(name=MESH, dbname="bench", nodes=("node1", "node2"), tables=_qualified())
    if resolution_ms is not None:
        spec = spec.model_copy(update={"time_resolution_us": int(resolution_ms * 1000)})
    # The mesh's objects on both nodes (publication, slots, origins, pgherd.conflicts); the
    # slot on node2 for node1 would only hold WAL back here.
    for member in config.nodes:
        node_ops.prepare(LocalNode.open(config, member.name), spec)
        store.save_spec(member, spec)
    servers.sql("node2", "bench", "SELECT pg_drop_replication_slot('pgherd_bench_node1')")
    servers.sql(
        "node1", "bench", "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", NATIVE_SLOT
    )
    # The mesh's publication also carries its DDL log (pgherd.mesh_ddl): a native
    # subscription to it needs that table on its side too (no rows reach it here).
    servers.sql("node2", "native", node_ops.SCHEMA_SQL)
    source = config.node("node1")
    servers.sql(
        "node2",
        "native",
        sql.SQL(
            "CREATE SUBSCRIPTION native_bench CONNECTION {} PUBLICATION {} WITH (enabled = false, "
            "create_slot = false, slot_name = {}, copy_data = false)"
        ).format(
            sql.Literal(
                f"host={source.host} port={source.port} user={config.replication_user} "
                f"dbname=bench passfile={config.passfile}"
            ),
            sql.Identifier(f"pgherd_{MESH}"),
            sql.Literal(NATIVE_SLOT),
        ),
    )
    return servers


def _qualified() -> tuple[str, ...]:
    return tuple(f"public.{t}" for t in TABLES)


def tear_down(directory: Path) -> None:
    path = directory / "pgherd.yaml"
    if path.exists():
        config = config_mod.load(path)
        for node in config.nodes:
            try:
                LocalNode.open(config, node.name).instance.stop("immediate")
            except Exception as exc:  # best effort: report and go on
                common.console.print(f"[yellow]![/] stopping {node.name}: {exc}")
    common.remove_tree(directory)


# ---- the two consumers --------------------------------------------------------------------


def slot_active(servers: Servers, slot: str) -> bool:
    rows = servers.sql(
        "node1", "bench", "SELECT active FROM pg_replication_slots WHERE slot_name = %s", slot
    )
    return bool(rows and rows[0][0])


def has_marker(servers: Servers, dbname: str, marker: int) -> bool:
    return bool(servers.sql("node2", dbname, "SELECT 1 FROM marker WHERE id = %s", marker))


def wait_for(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll)
    return time.perf_counter()


def run_native(servers: Servers, marker: int, timeout: float) -> dict[str, Any]:
    servers.sql("node2", "native", "ALTER SUBSCRIPTION native_bench ENABLE")
    try:
        started = wait_for(lambda: slot_active(servers, NATIVE_SLOT), timeout, "native start")
        apply_pid = servers.sql(
            "node2",
            "native",
            "SELECT pid FROM pg_stat_subscription WHERE subname = 'native_bench' AND relid IS NULL",
        )
        cpu = CpuMeter(
            {"walsender": walsender_pid(servers, NATIVE_SLOT), "apply worker": apply_pid[0][0]}
        )
        done = wait_for(lambda: has_marker(servers, "native", marker), timeout, "native apply")
        used = cpu.used()
    finally:
        servers.sql("node2", "native", "ALTER SUBSCRIPTION native_bench DISABLE")
        wait_for(lambda: not slot_active(servers, NATIVE_SLOT), 60, "native stop", 0.05)
    return {"seconds": done - started, "cpu_seconds": used}


def run_pgherd(servers: Servers, marker: int, timeout: float) -> dict[str, Any]:
    profile = os.environ.get("PGHERD_BENCH_PROFILE")  # a file: run the worker under cProfile
    argv = [
        sys.executable,
        *(["-m", "cProfile", "-o", profile] if profile else []),
        "-m",
        "pgherd.mesh.apply",
        "--config",
        str(servers.config_path),
        "--mesh",
        MESH,
        "--source",
        "node1",
        "--target",
        "node2",
    ]
    log = servers.config.node("node2").home_dir / "apply-bench.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    slot = f"pgherd_{MESH}_node2"
    try:
        started = wait_for(lambda: slot_active(servers, slot), timeout, "pgherd start")
        backend = servers.sql(
            "node2",
            "bench",
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pgherd apply %'",
        )
        cpu = CpuMeter(
            {
                "walsender": walsender_pid(servers, slot),
                "apply worker": worker.pid,
                "target backend": backend[0][0] if backend else None,
            }
        )
        done = wait_for(lambda: has_marker(servers, "bench", marker), timeout, "pgherd apply")
        used = cpu.used()
        rss = peak_rss_mb(worker.pid)
        time.sleep(1.2)  # the worker writes its status once a second
        groups = worker_status(servers).get("groups")  # this process's own count
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        wait_for(lambda: not slot_active(servers, slot), 60, "pgherd stop", 0.05)
    return {"seconds": done - started, "peak_rss_mb": rss, "groups": groups, "cpu_seconds": used}


def walsender_pid(servers: Servers, slot: str) -> int | None:
    rows = servers.sql(
        "node1", "bench", "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", slot
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


class CpuMeter:
    """CPU seconds each process of a consumer uses while it applies: on two cores, where
    the time goes (decoding on the source, the consumer, the target's backend)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start = {name: common.cpu_seconds(pid) for name, pid in pids.items()}

    def used(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            before, after = self.start[name], common.cpu_seconds(pid)
            if before is None or after is None:
                out[name] = None
            else:
                out[name] = round(after - before, 2)
        return out


def worker_status(servers: Servers) -> dict[str, Any]:
    node = servers.config.node("node2")
    return store.read_status(node, MESH, "node1") or {}


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# ---- the benchmark ------------------------------------------------------------------------


def run_case(servers: Servers, case: Case, run: int, marker: int, timeout: float) -> dict[str, Any]:
    if run > 0:
        # Start the round from empty tables. The mesh's publication sends TRUNCATE now,
        # and each side is emptied here too so that no consumer starts with old rows.
        empty = sql.SQL("TRUNCATE {}").format(sql.Identifier(case.table))
        for node, dbname in (("node1", "bench"), ("node2", "bench"), ("node2", "native")):
            servers.sql(node, dbname, empty)
    if case.preload is not None:
        servers.sql("node1", "bench", case.preload)
        servers.sql("node1", "bench", "INSERT INTO marker VALUES (%s, 'preload', 0)", marker)
        run_native(servers, marker, timeout)
        run_pgherd(servers, marker, timeout)
        marker += 1
    servers.sql("node1", "bench", case.changes)
    servers.sql("node1", "bench", "INSERT INTO marker VALUES (%s, 'done', 0)", marker)
    # Alternate which consumer goes first: the second finds the source's pages warm.
    order = ["native", "pgherd"] if (ord(case.key) + run) % 2 else ["pgherd", "native"]
    results: dict[str, Any] = {}
    for who in order:
        settle_down(servers)
        runner = run_native if who == "native" else run_pgherd
        results[who] = runner(servers, marker, timeout)
    check_same(servers, case.table)
    native_rate = case.rows / results["native"]["seconds"]
    pgherd_rate = case.rows / results["pgherd"]["seconds"]
    return {
        "case": case.key,
        "title": case.title,
        "rows": case.rows,
        "order": order,
        "native_seconds": round(results["native"]["seconds"], 3),
        "pgherd_seconds": round(results["pgherd"]["seconds"], 3),
        "native_rows_per_s": round(native_rate),
        "pgherd_rows_per_s": round(pgherd_rate),
        "ratio": round(pgherd_rate / native_rate, 3),
        "target_ratio": case.target_ratio,
        "peak_rss_mb": results["pgherd"]["peak_rss_mb"],
        "pgherd_local_commits": results["pgherd"]["groups"],
        "native_cpu_seconds": results["native"]["cpu_seconds"],
        "pgherd_cpu_seconds": results["pgherd"]["cpu_seconds"],
    }


AUTOVACUUM_WAIT = 60.0


def settle_down(servers: Servers) -> None:
    """Before each consumer: let the writes just made reach the disk, and the autovacuum
    they set off finish. Otherwise a consumer competes with the kernel's writeback, the
    checkpointer and autovacuum of what the source wrote or the other consumer applied
    (a million rows each), and the order of the two shows in the figures."""
    deadline = time.monotonic() + AUTOVACUUM_WAIT
    while time.monotonic() < deadline and any(autovacuum_running(servers, n) for n in NODES):
        time.sleep(0.2)
    for node in NODES:
        servers.sql(node, "postgres", "CHECKPOINT")
    os.sync()
    time.sleep(1)


def autovacuum_running(servers: Servers, node: str) -> bool:
    rows = servers.sql(
        node, "postgres", "SELECT 1 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
    )
    return bool(rows)


def check_same(servers: Servers, table: str) -> None:
    """Both targets hold what the source holds (the figures count only a correct apply)."""
    query = sql.SQL("SELECT count(*), coalesce(sum(n), 0) FROM {}").format(sql.Identifier(table))
    source = servers.sql("node1", "bench", query)
    for dbname in ("native", "bench"):
        found = servers.sql("node2", dbname, query)
        if found != source:
            raise RuntimeError(f"{dbname} on the target holds {found} in {table}, not {source}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the row counts")
    parser.add_argument("--runs", type=int, default=1, help="rounds of all four cases")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--directory", type=Path, default=DIRECTORY)
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    parser.add_argument("--cases", default="abcd", help="which cases to run, e.g. ab")
    parser.add_argument(
        "--resolution-ms",
        type=float,
        default=None,
        help="the mesh's commit-time resolution (default: pgherd's default)",
    )
    args = parser.parse_args(argv)
    common.become_subreaper()
    started = common.now()
    tear_down(args.directory)
    rows: list[dict[str, Any]] = []
    servers: Servers | None = None
    try:
        servers = set_up(args.directory, args.resolution_ms)
        marker = 1
        for run in range(args.runs):
            for case in cases(args.scale):
                if case.key not in args.cases:
                    continue
                rows.append(run_case(servers, case, run, marker, args.timeout))
                marker += 2
                common.console.print(f"  {case.key}: {rows[-1]}", soft_wrap=True)
    finally:
        if servers is not None:
            servers.close()
        if not args.keep:
            tear_down(args.directory)
        common.reap()
    summary = summarize(rows)
    common.print_table(
        "pgherd apply worker vs native subscription apply (rows/s)",
        ["case", "rows", "native rows/s", "pgherd rows/s", "ratio", "target", "peak RSS MB"],
        [
            [
                s["title"],
                s["rows"],
                s["native"],
                s["pgherd"],
                f"{s['ratio']:.2f}×",
                f"≥ {s['target']:.1f}×",
                s["rss"],
            ]
            for s in summary
        ],
    )
    path = common.write_json(
        "apply",
        {
            "benchmark": "apply",
            "started": started.isoformat(),
            "machine": common.machine(),
            "load_average": common.load_average(),
            "scale": args.scale,
            "runs": rows,
            "summary": summary,
        },
        started,
    )
    common.console.print(f"wrote {path}")
    return 0


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in sorted({r["case"] for r in rows}):
        mine = [r for r in rows if r["case"] == key]
        out.append(
            {
                "case": key,
                "title": mine[0]["title"],
                "rows": mine[0]["rows"],
                "native": round(common.median([r["native_rows_per_s"] for r in mine])),
                "pgherd": round(common.median([r["pgherd_rows_per_s"] for r in mine])),
                "ratio": round(common.median([r["ratio"] for r in mine]), 3),
                "target": mine[0]["target_ratio"],
                "rss": max((r["peak_rss_mb"] or 0) for r in mine),
            }
        )
    return out


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
