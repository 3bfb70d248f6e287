"""``pgherd ddl`` on one node: the dry run that tells what a change touches, and the
change itself, each in one transaction (run inside the node's agent).

The statement is the operator's own SQL (a schema change, possibly several statements),
so it is run as given, with the simple query protocol, inside a transaction: it applies
whole or not at all. Statements that cannot run in a transaction (CREATE INDEX
CONCURRENTLY, VACUUM) are refused by PostgreSQL and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pgherd.errors import QueryFailed
from pgherd.logical.publication import grant_published
from pgherd.model.ddl import DdlApplied, DdlEffect, TouchedTable
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]
Snapshot = dict[int, tuple[str, str, dict[str, str]]]

_TABLES = """
SELECT c.oid::bigint, n.nspname, c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""
_LOCKED = """
SELECT relation::bigint FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
  AND mode IN ('AccessExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock')
"""
_PUBLISHED = "SELECT schemaname, tablename, pubname FROM pg_publication_tables"


def snapshot(conn: Conn) -> Snapshot:
    tables: Snapshot = {}
    for oid, schema, name, column, type_ in conn.execute(_TABLES):
        entry = tables.setdefault(int(oid), (schema, name, {}))
        if column is not None:
            entry[2][column] = type_
    return tables


def publications(conn: Conn) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for schema, table, pub in conn.execute(_PUBLISHED):
        found.setdefault((schema, table), []).append(pub)
    return found


def dry_run(local: LocalNode, statement: str, dbname: str) -> DdlEffect:
    """Run ``statement`` in a transaction that is rolled back, and tell what it changed."""
    with local.instance.connect(dbname) as conn:
        before = snapshot(conn)
        pubs_before = publications(conn)
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(statement.encode())
                after = snapshot(conn)
                locked = {int(str(r[0])) for r in conn.execute(_LOCKED)}
                pubs_after = publications(conn)
        except psycopg.Error as exc:
            raise QueryFailed(
                f"the statement fails on {local.node.name}: {exc.diag.message_primary or exc}",
                "nothing was changed anywhere; fix the statement and retry",
            ) from None
    return effect(before, after, locked, pubs_before, pubs_after)


def effect(
    before: Snapshot,
    after: Snapshot,
    locked: set[int],
    pubs_before: dict[tuple[str, str], list[str]],
    pubs_after: dict[tuple[str, str], list[str]],
) -> DdlEffect:
    touched: dict[int, TouchedTable] = {}
    added: list[str] = []
    dropped: list[str] = []
    changed: list[str] = []

    def touch(oid: int, schema: str, name: str, new: bool, pubs: list[str]) -> None:
        touched[oid] = TouchedTable(
            schema_name=schema, name=name, publications=tuple(sorted(pubs)), new=new
        )

    for oid, (schema, name, columns) in after.items():
        old = before.get(oid)
        key = (schema, name)
        pubs = pubs_after.get(key, []) + pubs_before.get(key, [])
        if old is None:
            touch(oid, schema, name, True, sorted(set(pubs)))
            continue
        old_cols = old[2]
        new_cols = [c for c in columns if c not in old_cols]
        gone = [c for c in old_cols if c not in columns]
        retyped = [c for c in columns if c in old_cols and old_cols[c] != columns[c]]
        added += [f"{name}.{c}" for c in new_cols]
        dropped += [f"{name}.{c}" for c in gone]
        changed += [f"{name}.{c}" for c in retyped]
        if new_cols or gone or retyped or oid in locked or old[:2] != (schema, name):
            touch(oid, schema, name, False, sorted(set(pubs)))
    for oid, (schema, name, _cols) in before.items():
        if oid not in after:
            dropped.append(f"{name} (the table)")
            touch(oid, schema, name, False, pubs_before.get((schema, name), []))
    return DdlEffect(
        touched=tuple(sorted(touched.values(), key=lambda t: (t.schema_name, t.name))),
        added_columns=tuple(added),
        dropped_columns=tuple(dropped),
        changed_columns=tuple(changed),
    )


# The mesh's DDL log (created with the mesh's tables: mesh/node_ops.py). A row inserted
# in the change's own transaction travels to the other members with the rows, and each
# member's apply worker runs the statement at that place in the stream.
_CAPTURE = """
INSERT INTO pgherd.mesh_ddl (origin_node, mesh, statement, search_path, dropped_columns, after)
VALUES (%s, %s, %s, %s, %s, (
    SELECT coalesce(string_agg(origin_node || ':' || last, E'\\n' ORDER BY origin_node), '')
    FROM (SELECT origin_node, max(id) AS last FROM pgherd.mesh_ddl
          WHERE mesh = %s AND origin_node <> %s GROUP BY origin_node) AS runs
)) RETURNING id
"""


def apply(
    local: LocalNode,
    statement: str,
    dbname: str,
    regrant: bool,
    meshes: Sequence[str] = (),
) -> DdlApplied:
    """Run the change in one transaction; on a publisher, grant the replication role
    SELECT on tables that became published (a new table in a FOR ALL TABLES
    publication). For each of ``meshes``, log it in the same transaction (with the columns
    it drops), so that the mesh's other members run it in order with the rows."""
    captured: list[tuple[str, int]] = []
    with local.instance.connect(dbname) as conn:
        try:
            with conn.transaction():
                before = snapshot(conn) if meshes else {}
                conn.execute(statement.encode())
                if meshes:
                    # The statement ran with the session's search_path (it may have set
                    # one): the members run it with the same.
                    found = conn.execute("SELECT current_setting('search_path')").fetchone()
                    path = str(found[0]) if found else ""
                    conn.execute("RESET search_path")
                    gone = "\n".join(dropped_columns(before, snapshot(conn)))
                    for mesh in meshes:
                        me = local.node.name
                        row = conn.execute(
                            _CAPTURE, (me, mesh, statement, path, gone, mesh, me)
                        ).fetchone()
                        assert row is not None
                        captured.append((mesh, int(str(row[0]))))
                if regrant:
                    conn.execute("RESET search_path")
                    grant_published(conn, local.config.replication_user)
        except psycopg.Error as exc:
            raise QueryFailed(
                f"{local.node.name}: {exc.diag.message_primary or exc}",
                exc.diag.message_hint or "the change was rolled back on this node",
            ) from None
    return DdlApplied(message=f"applied on {local.node.name}", captured=tuple(captured))


def dropped_columns(before: Snapshot, after: Snapshot) -> list[str]:
    """``schema.table.column`` of every column the change removed (with its table, too)."""
    gone = []
    for oid, (schema, name, columns) in before.items():
        kept = after.get(oid)
        for column in columns:
            if kept is None or column not in kept[2]:
                gone.append(f"{schema}.{name}.{column}")
    return gone
