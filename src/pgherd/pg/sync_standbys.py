"""synchronous_standby_names on a primary, set with ALTER SYSTEM and a reload.

ALTER SYSTEM writes postgresql.auto.conf, which PostgreSQL reads after pgherd.conf: the
HA loop's value wins over the config's, and survives restarts. Only a primary acts on it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]


def current(conn: Conn) -> str:
    row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
    return str(row[0]) if row else ""


def set_names(conn: Conn, value: str) -> None:
    """Set (or, with ``''``, reset) synchronous_standby_names and reload at once."""
    if value:
        conn.execute(
            sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(value))
        )
    else:
        conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
    conn.execute("SELECT pg_reload_conf()")


def waited_for(conn: Conn) -> set[str]:
    """Standbys whose acknowledgement commits may wait for now, as the walsenders see the
    setting (each re-reads it on reload, a moment after pg_reload_conf)."""
    rows = conn.execute(
        "SELECT application_name FROM pg_stat_replication "
        "WHERE sync_state IN ('sync', 'quorum', 'potential')"
    ).fetchall()
    return {str(r[0]) for r in rows}
