"""A client of the fault suite, run on a test host as an application runs: it writes rows
with keys of its own through one way of connecting (a libpq multi-host URI with
``target_session_attrs=read-write``, or HAProxy) and records each write it sent, with
what it was told (tests/faults/history.py), one JSON line per write, flushed at once.

    python -m tests.faults.client --name uri --conninfo "host=a,b,c ..." \
        --first-key 1000000 --out uri.jsonl --stop stop-file [--node ADDR=NAME ...]

A key is never written twice: after a failure the next write takes the next key (a write
whose answer was lost may have committed; it must not be confused with a later one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.faults.history import Outcome, Write

TABLE = "faults_writes"
# (the table's name is this module's constant)
INSERT = (
    f"INSERT INTO {TABLE} (key, client) VALUES (%s, %s) "  # noqa: S608
    # who acknowledged it, on which timeline (the current WAL file's first 8 hex digits)
    "RETURNING host(inet_server_addr()), "
    "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int"
)
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (key bigint PRIMARY KEY, client text NOT NULL)"
# SQLSTATE classes of an error reply that means the statement did not commit: a read-only
# server (25), a constraint (23), a statement error (42). Anything else (the connection
# lost, the server shutting down: 08, 57) leaves the outcome unknown.
REFUSED = ("23", "25", "42")


def outcome_of(error: psycopg.Error) -> Outcome:
    state = error.sqlstate or ""
    return Outcome.FAILED if state[:2] in REFUSED else Outcome.UNKNOWN


def run(
    name: str,
    conninfo: str,
    first_key: int,
    out: Path,
    stop: Path,
    nodes: dict[str, str],
    interval: float,
) -> None:
    key = first_key
    conn: psycopg.Connection[Any] | None = None
    with out.open("a") as log:
        while not stop.exists():
            began = time.time()
            if conn is None:
                try:
                    conn = psycopg.connect(conninfo, autocommit=True)
                except psycopg.Error:
                    time.sleep(0.1)  # nothing sent: nothing to record
                    continue
            sent = time.time()
            try:
                row = conn.execute(INSERT, (key, name)).fetchone()
            except psycopg.Error as exc:
                answered = time.time() if exc.sqlstate else None
                write = Write(
                    key, name, sent, answered, outcome_of(exc), error=str(exc).strip()[:160]
                )
                conn.close()
                conn = None
            else:
                assert row is not None
                server = nodes.get(str(row[0]), str(row[0]))
                write = Write(key, name, sent, time.time(), Outcome.ACKED, server, int(row[1]))
            log.write(write.to_json() + "\n")
            log.flush()
            key += 1
            time.sleep(max(0.0, interval - (time.time() - began)))
    if conn is not None:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--conninfo", required=True)
    parser.add_argument("--first-key", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--node", action="append", default=[], help="ADDRESS=NAME")
    args = parser.parse_args(argv)
    nodes = dict(item.split("=", 1) for item in args.node)
    os.environ.setdefault("PGAPPNAME", f"faults-{args.name}")
    run(args.name, args.conninfo, args.first_key, args.out, args.stop, nodes, args.interval)
    sys.exit(0)


if __name__ == "__main__":
    main()
