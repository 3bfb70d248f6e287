"""Logical replication throughput: a pgherd-created subscription against hand-written
CREATE PUBLICATION / CREATE SUBSCRIPTION, in the same run, on the same two clusters.

For each way of setting it up: the initial sync (copy) of 1,000,000 rows, the apply of
1,000,000 rows inserted in one transaction, and of 200,000 rows updated in one
transaction; rows/s from the commit on the publisher until a marker row committed right
after it is visible on the subscriber (apply is serial, in commit order). pgherd creates
native publications and subscriptions, so the figures should match: this is also the
baseline the multi-master worker will be measured against.

    $VENV/bin/python bench/logical.py [--rows N] [--updates N] [--dir DIR]

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pgherd.config import ClusterConfig
from pgherd.lab import layout, lifecycle
from pgherd.pg.ports import is_free

RESULTS = Path(__file__).parent / "results"


@dataclass
class Run:
    method: str
    setup_seconds: float  # until the create commands returned (pgherd: two CLI runs)
    sync_rows: int
    sync_seconds: float  # from the subscription's creation until every table is ready
    insert_rows: int
    insert_seconds: float
    update_rows: int
    update_seconds: float

    def rate(self, rows: int, seconds: float) -> float:
        return rows / seconds if seconds > 0 else 0.0

    @property
    def rates(self) -> dict[str, float]:
        return {
            "initial sync": self.rate(self.sync_rows, self.sync_seconds),
            "apply inserts": self.rate(self.insert_rows, self.insert_seconds),
            "apply updates": self.rate(self.update_rows, self.update_seconds),
        }


def connect(config: ClusterConfig, node: str) -> psycopg.Connection[Any]:
    target = config.node(node)
    return psycopg.connect(
        host=target.host,
        port=target.port,
        user=config.superuser,
        dbname="postgres",
        passfile=str(config.passfile),
        autocommit=True,
    )


def wait(check: Callable[[], bool], timeout: float = 600, step: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(step)
    raise TimeoutError("benchmark step did not finish in time")


def pgherd(config_path: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pgherd", *args, "--config", str(config_path)],
        check=True,
        capture_output=True,
        text=True,
    )


def prepare(config: ClusterConfig, table: str, rows: int) -> None:
    ddl = (
        f"CREATE TABLE {table} (id bigint PRIMARY KEY, v int NOT NULL, payload text); "
        f"CREATE TABLE {table}_marker (id int PRIMARY KEY)"
    )
    for node in ("node1", "node2"):
        with connect(config, node) as conn:
            conn.execute(ddl.encode())
    with connect(config, "node1") as conn:
        conn.execute(
            f"INSERT INTO {table} SELECT g, 0, md5(g::text) "
            f"FROM generate_series(1, {rows}) g".encode()
        )
        conn.execute(f"VACUUM ANALYZE {table}".encode())


def create_native(config: ClusterConfig, table: str) -> None:
    node1 = config.node("node1")
    with connect(config, "node1") as conn:
        conn.execute(
            f"CREATE PUBLICATION native_pub FOR TABLE {table}, {table}_marker; "
            f"GRANT SELECT ON {table}, {table}_marker TO {config.replication_user}".encode()
        )
    conninfo = (
        f"host={node1.host} port={node1.port} user={config.replication_user} "
        f"dbname=postgres passfile={config.passfile}"
    )
    with connect(config, "node2") as conn:
        conn.execute(
            f"CREATE SUBSCRIPTION native_sub CONNECTION '{conninfo}' "
            "PUBLICATION native_pub".encode()
        )


def create_pgherd(config_path: Path, table: str) -> None:
    pgherd(
        config_path,
        "publication",
        "create",
        "pgherd_pub",
        "--node",
        "node1",
        "--tables",
        f"{table},{table}_marker",
    )
    pgherd(
        config_path,
        "subscription",
        "create",
        "pgherd_sub",
        "--node",
        "node2",
        "--from",
        "node1",
        "--publication",
        "pgherd_pub",
    )


def synced(config: ClusterConfig, sub: str) -> Callable[[], bool]:
    def check() -> bool:
        with connect(config, "node2") as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE r.srsubstate <> 'r') "
                "FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                "WHERE s.subname = %s",
                (sub,),
            ).fetchone()
        return row is not None and row[0] > 0 and row[1] == 0

    return check


def applied(config: ClusterConfig, table: str, statement: str, marker: int) -> float:
    """Seconds from the commit of ``statement`` on node1 until node2 has applied it."""
    with connect(config, "node1") as pub:
        pub.execute(statement.encode())
        committed = time.monotonic()
        pub.execute(f"INSERT INTO {table}_marker VALUES ({marker})".encode())
    with connect(config, "node2") as sub:
        query = f"SELECT 1 FROM {table}_marker WHERE id = {marker}".encode()
        done = wait(lambda: sub.execute(query).fetchone() is not None)
    return done - committed


def measure(method: str, config: ClusterConfig, config_path: Path, rows: int, updates: int) -> Run:
    table = f"bench_{method}"
    sub = f"{method}_sub"
    prepare(config, table, rows)
    started = time.monotonic()
    if method == "pgherd":
        create_pgherd(config_path, table)
    else:
        create_native(config, table)
    created = time.monotonic()
    setup_seconds = created - started
    sync_seconds = wait(synced(config, sub)) - created
    insert_seconds = applied(
        config,
        table,
        f"INSERT INTO {table} SELECT g, 0, md5(g::text) "
        f"FROM generate_series({rows + 1}, {2 * rows}) g",
        1,
    )
    update_seconds = applied(
        config, table, f"UPDATE {table} SET v = v + 1 WHERE id <= {updates}", 2
    )
    with connect(config, "node2") as conn:
        conn.execute(f"DROP SUBSCRIPTION {sub}".encode())
    with connect(config, "node1") as conn:
        conn.execute(f"DROP PUBLICATION {method}_pub".encode())
    for node in ("node1", "node2"):
        with connect(config, node) as conn:
            conn.execute(f"DROP TABLE {table}, {table}_marker".encode())
    return Run(
        method, setup_seconds, rows, sync_seconds, rows, insert_seconds, updates, update_seconds
    )


def free_base() -> int:
    for base in range(27100, 40000, 10):
        if all(is_free("127.0.0.1", p) for p in (base, base + 1, base + 1000, base + 1001)):
            return base
    raise RuntimeError("no free ports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds, alternating which goes first; best kept"
    )
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/pgherd-bench-logical"))
    args = parser.parse_args()
    if args.dir.exists():
        lifecycle.down(args.dir, True, lifecycle.QuietReporter())
    shape = layout.LabShape(2, free_base(), "postgres", independent=True)
    lab = lifecycle.up(args.dir, shape, lifecycle.QuietReporter())
    order = [("native", "pgherd"), ("pgherd", "native")]
    try:
        runs = [
            measure(method, lab.config, lab.config_path, args.rows, args.updates)
            for round_ in range(args.rounds)
            for method in order[round_ % 2]
        ]
    finally:
        lifecycle.down(args.dir, True, lifecycle.QuietReporter())
    report(runs, args)


def best(runs: list[Run], method: str) -> Run:
    """The round with the shortest total time: the least disturbed by other load."""
    mine = [r for r in runs if r.method == method]
    return min(mine, key=lambda r: r.sync_seconds + r.insert_seconds + r.update_seconds)


def report(runs: list[Run], args: argparse.Namespace) -> None:
    native, ours = best(runs, "native"), best(runs, "pgherd")
    print(f"{'step':<16}{'native rows/s':>16}{'pgherd rows/s':>16}{'pgherd/native':>15}")
    ratios = {}
    for step, rate in native.rates.items():
        mine = ours.rates[step]
        ratios[step] = mine / rate if rate else 0.0
        print(f"{step:<16}{rate:>16,.0f}{mine:>16,.0f}{ratios[step]:>15.2f}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"logical-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "logical",
                "when": stamp,
                "rows": args.rows,
                "updates": args.updates,
                "postgresql": shutil.which("postgres") or "see pg_bin",
                "runs": [asdict(r) | {"rates": r.rates} for r in runs],
                "best": {"native": native.rates, "pgherd": ours.rates},
                "ratios_pgherd_over_native": ratios,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"set-up (not in the rates): native {native.setup_seconds:.2f} s (two SQL "
        f"statements), pgherd {ours.setup_seconds:.2f} s (two CLI runs through the agents)"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
