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
