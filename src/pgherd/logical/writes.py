"""Stopping and resuming writes on a node, for an upgrade's cut-over (inside its agent).

``default_transaction_read_only = on`` (ALTER SYSTEM, reload) makes every new
transaction read-only, in new and existing sessions alike; then the transactions that
already write are waited for. A session that turns read-only off for itself could still
write: stop the applications first; this is the check that they did.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from pgherd.errors import Refused
from pgherd.model.lsn import Lsn
from pgherd.model.publication import TableFacts
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]

_WRITERS = """
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
"""


def _set_read_only(conn: Conn, on: bool) -> None:
    conn.execute("SET default_transaction_read_only = off")
    if on:
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    else:
        conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
    conn.execute("SELECT pg_reload_conf()")


def stop(local: LocalNode, timeout: float) -> Lsn:
    """Make the node read-only, wait for open write transactions; the WAL position then."""
    with local.instance.connect() as conn:
        _set_read_only(conn, True)
        deadline = time.monotonic() + timeout
        writers = 0
        while time.monotonic() < deadline:
            row = conn.execute(_WRITERS).fetchone()
            writers = int(str(row[0])) if row else 0
            if writers == 0:
                lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                assert lsn is not None
                return Lsn.parse(str(lsn[0]))
            time.sleep(0.1)
        _set_read_only(conn, False)
    raise Refused(
        f"{writers} transaction(s) still writing on {local.node.name} after {timeout:.0f} s; "
        "writes were allowed again",
        "stop the applications that write, then retry the cut-over",
    )


def resume(local: LocalNode) -> None:
    with local.instance.connect() as conn:
        _set_read_only(conn, False)


def tables(local: LocalNode, dbname: str) -> list[TableFacts]:
    """The user tables of a database, with how they identify rows (for upgrade plan)."""
    with local.instance.connect(dbname) as conn:
        rows = conn.execute(
            """
            SELECT n.nspname, c.relname, c.relreplident::text,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                           AND i.indisreplident),
                   greatest(c.reltuples, 0)::bigint
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%'
            ORDER BY 1, 2
            """
        ).fetchall()
    return [
        TableFacts(
            schema_name=r[0],
            name=r[1],
            replica_identity=r[2],
            has_primary_key=r[3],
            has_identity_index=r[4],
            rows_estimate=r[5],
        )
        for r in rows
    ]
