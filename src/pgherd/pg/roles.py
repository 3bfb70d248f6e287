"""Database roles pgherd creates, with passwords sent only as SCRAM verifiers."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from pgherd.pg import scram


def ensure_replication_role(conn: psycopg.Connection[Any], name: str, password: str) -> None:
    """A role with REPLICATION LOGIN and nothing more (not a superuser)."""
    verifier = scram.verifier(password)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
    conn.execute(
        sql.SQL(
            "{} ROLE {} WITH REPLICATION LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
        ).format(verb, sql.Identifier(name), sql.Literal(verifier))
    )


def give_password_if_none(conn: psycopg.Connection[Any], name: str, password: str) -> str:
    """Set the role's password only if it has none (a role without one cannot log in over
    TCP, so nothing that worked stops working); says what it found: ``set``, ``matches``,
    ``differs`` or ``missing`` (no such role). Sent as a SCRAM verifier."""
    row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
    if row is None:
        return "missing"
    stored = row[0]
    if stored is None:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(scram.verifier(password))
            )
        )
        return "set"
    return "matches" if scram.matches(str(stored), password) else "differs"
