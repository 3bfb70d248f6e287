"""A mesh newcomer's initial copy against a native subscription's ``copy_data = true``.

The same two servers as bench/apply.py (a source ``node1``, a target ``node2`` with the
databases ``bench``, for pgherd, and ``native``); the source's ``a_t`` holds N rows. Each
round:

- **native**: ``CREATE SUBSCRIPTION … WITH (copy_data = true)`` into ``native``; the clock
  runs from the command until every table of the publication is ready (``srsubstate =
  'r'``): the slot, the table-sync worker's COPY, its catch-up;
- **pgherd**: the newcomer's copy as ``mesh add-node`` runs it in the agent
  (mesh/initial_copy.py): the pair's slot made with an exported snapshot, the tables read
  in that snapshot with binary COPY and written in one transaction under the copy's origin.

Both end with every row on the target and a slot from which the stream continues. The
target's tables are emptied between rounds; the order of the two alternates.

Run: ``$VENV/bin/python -m bench.initial_copy [--rows 2000000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from psycopg import sql

from bench import apply, common
from pgherd.mesh import store
from pgherd.mesh.initial_copy import InitialCopy
from pgherd.model.mesh_copy import CopyRequest, CopyState
from pgherd.pg.local_node import LocalNode

DIRECTORY = Path("/var/tmp/pgherd-bench-initial-copy")
NATIVE = "native_copy"


def load(servers: apply.Servers, rows: int) -> None:
    servers.sql(
        "node1",
        "bench",
        "INSERT INTO a_t SELECT g, 'row ' || g, g FROM generate_series(1, %s) g",
        rows,
    )
    servers.sql("node1", "bench", "VACUUM ANALYZE a_t")


def count(servers: apply.Servers, dbname: str) -> int:
    return int(servers.sql("node2", dbname, "SELECT count(*) FROM a_t")[0][0])


def run_native(servers: apply.Servers, timeout: float) -> float:
    source = servers.config.node("node1")
    create = sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)"
    ).format(
        sql.Identifier(NATIVE),
        sql.Literal(
            f"host={source.host} port={source.port} user={servers.config.replication_user} "
            f"dbname=bench passfile={servers.config.passfile}"
        ),
        sql.Identifier(f"pgherd_{apply.MESH}"),
    )
    started = time.perf_counter()
    servers.sql("node2", "native", create)

    def ready() -> bool:
        states = servers.sql(
            "node2",
            "native",
            "SELECT srsubstate FROM pg_subscription_rel r JOIN pg_subscription s "
            "ON s.oid = r.srsubid WHERE s.subname = %s",
            NATIVE,
        )
        return bool(states) and all(s[0] == "r" for s in states)

    done = apply.wait_for(ready, timeout, "native copy", poll=0.02)
    return done - started


def drop_native(servers: apply.Servers) -> None:
    servers.sql("node2", "native", sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(NATIVE)))
    servers.sql("node2", "native", "TRUNCATE a_t")


def run_pgherd(servers: apply.Servers) -> float:
    local = LocalNode.open(servers.config, "node2")
    spec = store.load_spec(local.node, apply.MESH)
    job = InitialCopy(local, CopyRequest(spec=spec, sources=("node1",)))
    job.begin()
    started = time.perf_counter()
    status = job.run()
    seconds = time.perf_counter() - started
    if status.state is not CopyState.DONE:
        raise RuntimeError(f"the pgherd copy failed: {status.error}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the copied table")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--directory", type=Path, default=DIRECTORY)
    args = parser.parse_args(argv)
    common.become_subreaper()
    started = common.now()
    apply.tear_down(args.directory)
    runs: list[dict[str, Any]] = []
    servers: apply.Servers | None = None
    try:
        servers = apply.set_up(args.directory)
        # set_up's disabled native subscription (bench/apply.py) is not this benchmark's
        servers.sql("node2", "native", "ALTER SUBSCRIPTION native_bench SET (slot_name = NONE)")
        servers.sql("node2", "native", "DROP SUBSCRIPTION native_bench")
        servers.sql("node1", "bench", "SELECT pg_drop_replication_slot(%s)", apply.NATIVE_SLOT)
        load(servers, args.rows)
        for run in range(args.runs):
            order = ("native", "pgherd") if run % 2 == 0 else ("pgherd", "native")
            seconds: dict[str, float] = {}
            for side in order:
                if side == "native":
                    seconds[side] = run_native(servers, args.timeout)
                    copied = count(servers, "native")
                    drop_native(servers)
                else:
                    seconds[side] = run_pgherd(servers)
                    copied = count(servers, "bench")
                if copied != args.rows:
                    raise RuntimeError(f"{side} copied {copied} rows of {args.rows}")
            row = {
                "run": run,
                "rows": args.rows,
                "native_seconds": round(seconds["native"], 3),
                "pgherd_seconds": round(seconds["pgherd"], 3),
                "native_rows_per_s": round(args.rows / seconds["native"]),
                "pgherd_rows_per_s": round(args.rows / seconds["pgherd"]),
                "ratio": round(seconds["native"] / seconds["pgherd"], 3),
            }
            runs.append(row)
            common.console.print(f"  run {run}: {row}", soft_wrap=True)
    finally:
        if servers is not None:
            servers.close()
        apply.tear_down(args.directory)
        common.reap()
    summary = {
        "rows": args.rows,
        "native_rows_per_s": round(common.median([r["native_rows_per_s"] for r in runs])),
        "pgherd_rows_per_s": round(common.median([r["pgherd_rows_per_s"] for r in runs])),
        "ratio": round(common.median([r["ratio"] for r in runs]), 3),
    }
    common.print_table(
        "mesh initial copy vs native copy_data = true (rows/s, median)",
        ["rows", "native rows/s", "pgherd rows/s", "ratio (pgherd/native)"],
        [
            [
                summary["rows"],
                summary["native_rows_per_s"],
                summary["pgherd_rows_per_s"],
                f"{summary['ratio']:.2f}×",
            ]
        ],
    )
    path = common.write_json(
        "initial_copy",
        {
            "benchmark": "initial_copy",
            "started": started.isoformat(),
            "machine": common.machine(),
            "load_average": common.load_average(),
            "runs": runs,
            "summary": summary,
        },
        started,
    )
    common.console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
