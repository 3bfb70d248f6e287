"""Things a stream can need that have not happened on the target yet, because they come in
another member's stream: a column a schema change adds, or an earlier schema change that
the source had run before its own (docs/mesh.md, "DDL"). The applier raises one; the worker
rolls the group back, waits until :meth:`Wait.ready` (polling the target), and goes on from
the origin: nothing is skipped, the source's slot keeps the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg


class Wait(Exception):
    def ready(self, conn: psycopg.Connection[Any], mesh: str) -> bool:
        raise NotImplementedError


def dropped_columns(conn: psycopg.Connection[Any], mesh: str) -> set[str]:
    """``schema.table.column`` of every column a logged schema change of the mesh dropped."""
    rows = conn.execute(
        "SELECT dropped_columns FROM pgherd.mesh_ddl WHERE mesh = %s", (mesh,)
    ).fetchall()
    return {line for (text,) in rows for line in str(text).splitlines() if line}


class SchemaWait(Wait):
    """Rows came with columns the target lacks and no schema change here dropped: the
    change that adds them has not run here yet."""

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        super().__init__(f"column {', '.join(columns)} of {table}")
        self.table = table
        self.columns = list(columns)

    def ready(self, conn: psycopg.Connection[Any], mesh: str) -> bool:
        schema, name = self.table.split(".", 1)
        there = conn.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = %s AND a.attname = ANY(%s) AND NOT a.attisdropped",
            (schema, name, self.columns),
        ).fetchall()
        dropped = dropped_columns(conn, mesh)
        known = {str(r[0]) for r in there} | {
            c for c in self.columns if f"{self.table}.{c}" in dropped
        }
        return known >= set(self.columns)


class DdlWait(Wait):
    """A schema change came from a source that had run others before it (from other
    members); they have not all run here yet."""

    def __init__(self, needs: Sequence[tuple[str, int]]) -> None:
        shown = ", ".join(f"{origin}'s #{ident}" for origin, ident in needs)
        super().__init__(f"the schema changes it follows ({shown})")
        self.needs = list(needs)

    def ready(self, conn: psycopg.Connection[Any], mesh: str) -> bool:
        for origin, ident in self.needs:
            found = conn.execute(
                "SELECT 1 FROM pgherd.mesh_ddl WHERE origin_node = %s AND id = %s",
                (origin, ident),
            ).fetchone()
            if found is None:
                return False
        return True


def parse_after(text: str) -> list[tuple[str, int]]:
    """``node:id`` lines (the changes a logged change follows) as pairs."""
    found = []
    for line in text.splitlines():
        origin, _, ident = line.rpartition(":")
        if origin and ident.isdigit():
            found.append((origin, int(ident)))
    return found
