"""Reloading PostgreSQL's configuration and reading what the reload did."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from pgherd.model.server_tls import RunningTls
from pgherd.pg.conf import INCLUDE_FILE

Conn = psycopg.Connection[Any]


def reload_and_wait(conn: Conn, timeout: float = 5.0) -> bool:
    """``pg_reload_conf()``, then wait until this session has read the files again (its
    ``pg_conf_load_time()`` moves), so that ``pg_settings`` shows the outcome. False when
    it did not within ``timeout``."""
    before = _load_time(conn)
    conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _load_time(conn) != before:
            return True
        time.sleep(0.02)
    return False


def _load_time(conn: Conn) -> object:
    row = conn.execute("SELECT pg_conf_load_time()").fetchone()
    return row[0] if row else None


def pending_restart(conn: Conn) -> tuple[str, ...]:
    """Parameters whose new value waits for a restart."""
    rows = conn.execute("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
    return tuple(str(r[0]) for r in rows.fetchall())


def overridden(conn: Conn, names: list[str]) -> dict[str, str]:
    """Of ``names``, those whose value comes from a file read after pgherd.conf (most often
    postgresql.auto.conf, written by ALTER SYSTEM), with that file: pgherd.yaml's value
    does not apply to them."""
    if not names:
        return {}
    rows = conn.execute(
        """
        SELECT DISTINCT ON (name) name, sourcefile
        FROM pg_file_settings
        WHERE name = ANY(%s)
        ORDER BY name, seqno DESC
        """,
        ([n.lower() for n in names],),
    ).fetchall()
    return {
        str(name): str(source)
        for name, source in rows
        if source is not None and not str(source).endswith(f"/{INCLUDE_FILE}")
    }


def running_tls(conn: Conn) -> RunningTls:
    """``ssl`` as the server runs it, and when it last read its configuration files."""
    ssl, loaded_at = conn.execute(
        "SELECT current_setting('ssl') = 'on', extract(epoch FROM pg_conf_load_time())"
    ).fetchone() or (False, 0.0)
    return RunningTls(ssl=bool(ssl), loaded_at=float(loaded_at))
