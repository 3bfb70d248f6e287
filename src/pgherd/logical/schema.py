"""``--sync-schema``: create on the subscriber the published tables it lacks, from the
publisher's own definitions (``pg_dump --schema-only``), as pglogical's
synchronize_structure did.

pg_dump runs on the subscriber's machine as the OS user, with the subscriber's programs
(a newer pg_dump reads an older server, which is what an upgrade needs), connecting with
the subscription's connection string: the replication role and the passfile. The role
may read the published tables (pgherd grants SELECT when it publishes them), which is all
pg_dump needs to lock and describe them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgherd.errors import QueryFailed, Refused
from pgherd.model.names import QualifiedName
from pgherd.pg.local_node import LocalNode
from pgherd.pg.run import run

Conn = psycopg.Connection[Any]
DUMP_OPTIONS = (
    "--schema-only",
    "--no-owner",
    "--no-privileges",
    "--no-publications",
    "--no-subscriptions",
    "--no-tablespaces",
    "--no-security-labels",
)


def published_tables(pub: Conn, publications: Sequence[str]) -> list[QualifiedName]:
    rows = pub.execute(
        "SELECT DISTINCT schemaname, tablename FROM pg_publication_tables "
        "WHERE pubname = ANY(%s) ORDER BY 1, 2",
        (list(publications),),
    ).fetchall()
    return [QualifiedName(r[0], r[1]) for r in rows]


def missing_tables(conn: Conn, tables: Sequence[QualifiedName]) -> list[QualifiedName]:
    missing = []
    for table in tables:
        found = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (table.schema, table.name),
        ).fetchone()
        if found is None:
            missing.append(table)
    return missing


def pattern(table: QualifiedName) -> str:
    """A pg_dump ``-t`` pattern that matches exactly this table (quoted parts are literal)."""

    def quoted(part: str) -> str:
        return '"' + part.replace('"', '""') + '"'

    return f"{quoted(table.schema)}.{quoted(table.name)}"


def user_tables(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%'"
    ).fetchone()
    return int(row[0]) if row else 0


def dump(local: LocalNode, conninfo: str, tables: Sequence[QualifiedName] | None) -> str:
    argv: list[str] = [str(local.pgbin["pg_dump"]), *DUMP_OPTIONS, "-d", conninfo]
    for table in tables or ():
        argv += ["-t", pattern(table)]
    done = run(
        argv,
        local.user,
        timeout=600,
        hint="pg_dump must be as new as the publisher; see its message",
    )
    return done.stdout


def as_sql(script: str) -> str:
    """pg_dump's script without the psql meta-commands recent minor releases add around it
    (``\\restrict KEY`` / ``\\unrestrict KEY``, a guard for psql), so it runs as plain SQL."""
    kept = []
    for line in script.splitlines():
        if line.startswith(("\\restrict ", "\\unrestrict ")):
            continue
        if line.startswith("\\"):
            raise QueryFailed(
                f"pg_dump's output holds an unexpected psql command: {line[:40]!r}",
                "report this; apply the schema by hand with psql meanwhile",
            )
        kept.append(line)
    return "\n".join(kept) + "\n"


def sync(
    local: LocalNode, conn: Conn, conninfo: str, missing: Sequence[QualifiedName], whole: bool
) -> list[QualifiedName]:
    """Create ``missing`` (or, with ``whole``, the publisher's entire schema, for an
    upgrade into an empty database) in one transaction. Returns what was created."""
    if whole:
        count = user_tables(conn)
        if count:
            raise Refused(
                f"the target database already holds {count} tables; copying the whole "
                "schema needs an empty one",
                "use --sync-schema (published tables only) or an empty database",
            )
        script = as_sql(dump(local, conninfo, None))
    elif not missing:
        return []
    else:
        script = as_sql(dump(local, conninfo, missing))
    try:
        with conn.transaction():
            for schema in sorted({t.schema for t in missing}):
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
            conn.execute(script.encode())
            # pg_dump's script empties search_path for its session; give it back.
            conn.execute("RESET search_path")
    except psycopg.Error as exc:
        raise QueryFailed(
            f"applying the publisher's table definitions failed: {exc.diag.message_primary}",
            "nothing was created; fix the cause (e.g. a missing extension or type) and retry",
        ) from None
    return list(missing)
