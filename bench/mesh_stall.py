"""Does a TRUNCATE or a schema change stall apply? The mesh worker against native apply,
both consuming the same stream while rows flow.

The same two servers as bench/apply.py (a source ``node1``; a target ``node2`` with
``bench``, fed by pgherd's apply worker, and ``native``, fed by a native subscription to
the same publication). Both consumers run throughout; a writer commits one row into ``b_t``
on the source every ``--interval`` seconds and a poller on the target notes when each row
arrives in each database (the same clock: one machine). Meanwhile, on the source:

- at ``--truncate-at`` s, ``TRUNCATE c_t`` (a mesh table holding ``--rows`` rows: both
  consumers apply it at its place in the stream);
- at ``--ddl-at`` s, ``ALTER TABLE d_t ADD COLUMN extra int`` through ``pgherd ddl``'s code
  (logical/ddl.py: the change and its row in ``pgherd.mesh_ddl`` in one transaction), which
  the mesh worker runs at its place in the stream. Native apply does not carry schema
  changes: it only receives the log's row, so its figure is the baseline of a stream that
  does not stop for DDL.

Each row's delay is its arrival on the target minus its commit on the source. The table
gives, per consumer, the median delay before the events and the largest delay of a row
committed within 3 s after each event (issue 22's target: no stall above a second).

Run: ``$VENV/bin/python -m bench.mesh_stall [--seconds 20] [--rows 200000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import apply, common
from pgherd.logical import ddl
from pgherd.pg.local_node import LocalNode

DIRECTORY = Path("/var/tmp/pgherd-bench-mesh-stall")
WINDOW = 3.0  # seconds after an event whose rows count for it
CONSUMERS = ("native", "bench")  # the target's databases: native apply, pgherd's worker


class Arrivals:
    """Polls the target's two databases for the highest ``b_t`` id and notes when each id
    first shows (ids are committed in order, one per transaction)."""

    def __init__(self, servers: apply.Servers) -> None:
        self.servers = servers
        self.seen: dict[str, dict[int, float]] = {db: {} for db in CONSUMERS}
        self._high = dict.fromkeys(CONSUMERS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conns = {
            db: psycopg.connect(self.servers.uri("node2", db), autocommit=True) for db in CONSUMERS
        }
        try:
            while not self._stop.wait(0.005):
                for db, conn in conns.items():
                    row = conn.execute("SELECT coalesce(max(id), 0) FROM b_t").fetchone()
                    high = int(row[0]) if row else 0
                    now = time.perf_counter()
                    for new in range(self._high[db] + 1, high + 1):
                        self.seen[db][new] = now
                    self._high[db] = max(self._high[db], high)
        finally:
            for conn in conns.values():
                conn.close()


def wait_arrived(arrivals: Arrivals, row: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(row not in arrivals.seen[db] for db in CONSUMERS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"row {row} did not reach both targets within {timeout:.0f} s")
        time.sleep(0.02)


def write(servers: apply.Servers, seconds: float, interval: float, first: int) -> dict[int, float]:
    """One row a transaction into b_t for ``seconds``; each id's commit time."""
    committed: dict[int, float] = {}
    with psycopg.connect(servers.uri("node1", "bench"), autocommit=True) as conn:
        deadline = time.perf_counter() + seconds
        next_id = first
        while time.perf_counter() < deadline:
            conn.execute("INSERT INTO b_t VALUES (%s, 'w', 0)", (next_id,))
            committed[next_id] = time.perf_counter()
            next_id += 1
            time.sleep(interval)
    return committed


def start_worker(servers: apply.Servers) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "pgherd.mesh.apply", "--config", str(servers.config_path),
        "--mesh", apply.MESH, "--source", "node1", "--target", "node2",
    ]  # fmt: skip
    log = servers.config.node("node2").home_dir / "apply-stall.log"
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)


def one_run(args: argparse.Namespace, servers: apply.Servers, run: int) -> dict[str, Any]:
    first = run * 1_000_000 + 1
    servers.sql(
        "node1",
        "bench",
        "INSERT INTO c_t SELECT g, 'c', g FROM generate_series(1, %s) g",
        args.rows,
    )
    arrivals = Arrivals(servers)
    arrivals.start()
    # Both consumers streaming and caught up (c_t's rows applied) before the clock starts.
    servers.sql("node1", "bench", "INSERT INTO b_t VALUES (%s, 'warm-up', 0)", first)
    wait_arrived(arrivals, first)
    first += 1
    events: dict[str, float] = {}

    def events_thread() -> None:
        start = time.perf_counter()
        time.sleep(args.truncate_at)
        events["truncate"] = time.perf_counter()
        servers.sql("node1", "bench", "TRUNCATE c_t")
        time.sleep(max(0.0, args.ddl_at - (time.perf_counter() - start)))
        events["ddl"] = time.perf_counter()
        column = f"extra{run}"
        local = LocalNode.open(servers.config, "node1")
        ddl.apply(local, f"ALTER TABLE d_t ADD COLUMN {column} int", "bench", False, (apply.MESH,))

    side = threading.Thread(target=events_thread, daemon=True)
    side.start()
    committed = write(servers, args.seconds, args.interval, first)
    side.join(60)
    wait_arrived(arrivals, max(committed))
    arrivals.stop()
    row: dict[str, Any] = {"run": run, "rows_written": len(committed)}
    for db in CONSUMERS:
        who = "native" if db == "native" else "pgherd"
        delays = {i: arrivals.seen[db][i] - t for i, t in committed.items()}
        before = [d for i, d in delays.items() if committed[i] < events["truncate"]]
        row[f"{who}_median_ms"] = round(common.median(before) * 1000, 1)
        for name, at in events.items():
            during = [d for i, d in delays.items() if at <= committed[i] < at + WINDOW]
            row[f"{who}_{name}_max_ms"] = round(max(during) * 1000, 1) if during else None
    found = servers.sql("node2", "bench", "SELECT count(*) FROM c_t")[0][0]
    if found != 0:
        raise RuntimeError(f"the mesh worker left {found} rows in c_t after the TRUNCATE")
    columns = servers.sql(
        "node2", "bench",
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'd_t' AND column_name = %s",
        f"extra{run}",
    )  # fmt: skip
    if not columns:
        raise RuntimeError("the mesh worker did not run the schema change")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20, help="how long the writer writes")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between rows")
    parser.add_argument("--rows", type=int, default=200_000, help="rows in c_t before TRUNCATE")
    parser.add_argument("--truncate-at", type=float, default=6.0)
    parser.add_argument("--ddl-at", type=float, default=12.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--directory", type=Path, default=DIRECTORY)
    args = parser.parse_args(argv)
    common.become_subreaper()
    started = common.now()
    apply.tear_down(args.directory)
    runs: list[dict[str, Any]] = []
    servers: apply.Servers | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        servers = apply.set_up(args.directory)
        servers.sql("node2", "native", "ALTER SUBSCRIPTION native_bench ENABLE")
        worker = start_worker(servers)
        for run in range(args.runs):
            runs.append(one_run(args, servers, run))
            common.console.print(f"  run {run}: {runs[-1]}", soft_wrap=True)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        if servers is not None:
            servers.close()
        apply.tear_down(args.directory)
        common.reap()

    def worst(key: str) -> float | None:
        found = [r[key] for r in runs if r[key] is not None]
        return max(found) if found else None

    table = [
        [
            who,
            common.median([r[f"{who}_median_ms"] for r in runs]),
            worst(f"{who}_truncate_max_ms"),
            worst(f"{who}_ddl_max_ms"),
        ]
        for who in ("native", "pgherd")
    ]
    common.print_table(
        "apply delay around a TRUNCATE and a schema change (ms; worst of the runs)",
        ["consumer", "median before", "max after TRUNCATE", "max after DDL"],
        table,
    )
    path = common.write_json(
        "mesh_stall",
        {
            "benchmark": "mesh_stall",
            "started": started.isoformat(),
            "machine": common.machine(),
            "load_average": common.load_average(),
            "arguments": {k: v for k, v in vars(args).items() if k != "directory"},
            "runs": runs,
            "summary": {
                row[0]: dict(
                    zip(("median_ms", "truncate_max_ms", "ddl_max_ms"), row[1:], strict=True)
                )
                for row in table
            },
        },
        started,
    )
    common.console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
