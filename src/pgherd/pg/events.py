"""The events table: ``events`` in a database of its own, ``pgherd``, on the primary.

A database of its own keeps the table out of the user's databases, so a publication FOR
ALL TABLES (or a multi-master mesh between clusters) never carries pgherd's history.
Standbys get it by streaming replication, so the history survives the loss of a node and
reads work on any of them.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgherd.model.events import Event

DATABASE = "pgherd"

_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    id           uuid PRIMARY KEY,
    operation    text NOT NULL,
    node         text NOT NULL,
    requested_by text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    outcome      text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}'
)
"""

_UPSERT = """
INSERT INTO events (id, operation, node, requested_by, started_at, finished_at, outcome,
                    reason, details)
VALUES (%(id)s, %(operation)s, %(node)s, %(requested_by)s, %(started_at)s, %(finished_at)s,
        %(outcome)s, %(reason)s, %(details)s)
ON CONFLICT (id) DO UPDATE
SET finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome,
    reason = EXCLUDED.reason, details = EXCLUDED.details
"""

_RECENT = """
SELECT id::text AS id, operation, node, requested_by, started_at, finished_at, outcome,
       reason, details
FROM (SELECT * FROM events ORDER BY started_at DESC LIMIT %s) latest
ORDER BY started_at
"""

Conn = psycopg.Connection[Any]


def database_exists(conn: Conn) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        is not None
    )


def create_database(conn: Conn) -> None:
    """On a connection to another database of the primary (CREATE DATABASE cannot run in
    the database it creates)."""
    if database_exists(conn):
        return
    with contextlib.suppress(psycopg.errors.DuplicateDatabase):
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def create_table(conn: Conn) -> None:
    conn.execute(_TABLE)


def save(conn: Conn, event: Event) -> None:
    data = event.model_dump()
    data["outcome"] = str(event.outcome)
    data["details"] = json.dumps(event.details)
    conn.execute(_UPSERT, data)


def table_exists(conn: Conn) -> bool:
    return conn.execute("SELECT to_regclass('public.events') IS NOT NULL").fetchone() == (True,)


def recent(conn: Conn, limit: int) -> list[Event]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_RECENT, (limit,))
        return [Event.model_validate(row) for row in cur.fetchall()]
