"""``pgherd.mesh_progress``: how far a node applied each source, as rows in its own tables.

The replication origin records the same position, but outside transactions: a snapshot
cannot say where the origin stood when it was taken. A node joining the mesh copies the
rows of a member in one snapshot and must start every other member's stream exactly where
that member's changes in the snapshot end (model/mesh_copy.py), so the worker writes its
position into this table in the same commit as the rows (and the commit time of the last
transaction it applied from the source, which tells the joining node what the source had
seen). A joining node writes its start positions here, with its copy; a worker starts
from the later of its origin and this row.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from pgherd.model.lsn import Lsn

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS pgherd.mesh_progress (
    mesh        text NOT NULL,
    source_node text NOT NULL,
    lsn         pg_lsn NOT NULL,
    commit_time bigint,
    PRIMARY KEY (mesh, source_node)
)
"""
COMMENT_SQL = (
    "COMMENT ON TABLE pgherd.mesh_progress IS 'Per mesh and source: the position applied "
    "(as the replication origin says, but in the same commits as the rows) and the commit "
    "time of the last transaction applied'"
)


def ensure(conn: psycopg.Connection[Any]) -> None:
    """The table, for a worker that runs before its node was prepared again (a mesh made
    before the table existed)."""
    if conn.execute("SELECT to_regclass('pgherd.mesh_progress')").fetchone() == (None,):
        conn.execute("CREATE SCHEMA IF NOT EXISTS pgherd")
        conn.execute(TABLE_SQL)


def stored(conn: psycopg.Connection[Any], mesh: str, source: str) -> int:
    """The position stored for (mesh, source), 0 when none."""
    row = conn.execute(
        "SELECT lsn::text FROM pgherd.mesh_progress WHERE mesh = %s AND source_node = %s",
        (mesh, source),
    ).fetchone()
    return Lsn.parse(str(row[0])).value if row is not None else 0


def update_sql(
    conn: psycopg.Connection[Any], mesh: str, source: str, lsn: int, applied_time: int | None
) -> str:
    """The statement that records a commit's position (and the commit time of the last
    transaction it applied, when it applied one); sent with the COMMIT."""
    return (
        sql.SQL(
            "INSERT INTO pgherd.mesh_progress AS p VALUES ({}, {}, {}::pg_lsn, {}) "
            "ON CONFLICT (mesh, source_node) DO UPDATE SET lsn = excluded.lsn, "
            "commit_time = coalesce(excluded.commit_time, p.commit_time)"
        )
        .format(
            sql.Literal(mesh),
            sql.Literal(source),
            sql.Literal(str(Lsn(lsn))),
            sql.Literal(applied_time),
        )
        .as_string(conn)
    )


def raise_to(conn: psycopg.Connection[Any], mesh: str, source: str, lsn: int) -> None:
    """Move the stored position to ``lsn`` unless it is already past it (a joining node's
    start, set on the members it streams to)."""
    conn.execute(
        "INSERT INTO pgherd.mesh_progress AS p VALUES (%s, %s, %s::pg_lsn, NULL) "
        "ON CONFLICT (mesh, source_node) DO UPDATE SET lsn = greatest(p.lsn, excluded.lsn)",
        (mesh, source, str(Lsn(lsn))),
    )
