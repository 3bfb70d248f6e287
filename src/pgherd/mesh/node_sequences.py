"""The sequences a mesh's tables use, on this node: read them, and give the node its own
values (model/mesh_sequences.py decides which)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgherd.model.mesh_sequences import SequenceFact, SequenceSetting

Conn = psycopg.Connection[Any]

# Sequences tied to a table's columns: owned by a column (serial: 'a', identity: 'i'), or
# called by a column's default (nextval('s'): the default depends on the sequence).
_USED = """
SELECT a.attname, sn.nspname, s.relname, s.oid
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = %(table)s::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
UNION
SELECT a.attname, sn.nspname, s.relname, s.oid
FROM pg_attrdef ad
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                AND d.refclassid = 'pg_class'::regclass
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
WHERE ad.adrelid = %(table)s::regclass
"""
_SETTINGS = "SELECT seqincrement, seqmin, seqmax, seqcycle FROM pg_sequence WHERE seqrelid = %s"


def read(conn: Conn, tables: Sequence[str]) -> list[SequenceFact]:
    """Every sequence the ``tables`` (schema.table, existing) use, with where it stands and
    the largest value stored in its column (so that nothing stored is handed out again)."""
    found: list[SequenceFact] = []
    for table in tables:
        schema, name = table.split(".", 1)
        regclass = sql.Identifier(schema, name).as_string(conn)
        if conn.execute("SELECT to_regclass(%s)", (regclass,)).fetchone() == (None,):
            continue
        for column, seq_schema, seq_name, oid in conn.execute(_USED, {"table": regclass}):
            settings = conn.execute(_SETTINGS, (oid,)).fetchone()
            assert settings is not None
            increment, low, high = int(settings[0]), int(settings[1]), int(settings[2])
            state = conn.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(
                    sql.Identifier(seq_schema, seq_name)
                )
            ).fetchone()
            assert state is not None
            last, called = int(state[0]), bool(state[1])
            stored = conn.execute(
                sql.SQL("SELECT max({})::text FROM {}").format(
                    sql.Identifier(column), sql.Identifier(schema, name)
                )
            ).fetchone()
            text = str(stored[0]) if stored and stored[0] is not None else ""
            column_max = int(text) if text.lstrip("-").isdigit() else None
            found.append(
                SequenceFact(
                    table=table,
                    column=str(column),
                    sequence=f"{seq_schema}.{seq_name}",
                    increment=increment,
                    next_value=last + increment if called else last,
                    min_value=low,
                    max_value=high,
                    cycle=bool(settings[3]),
                    column_max=column_max,
                )
            )
    return found


def apply(conn: Conn, settings: Sequence[SequenceSetting]) -> list[str]:
    """Set each sequence's step and restart value, in one transaction; what was set."""
    done: list[str] = []
    with conn.transaction():
        for setting in settings:
            schema, name = setting.sequence.split(".", 1)
            conn.execute(
                sql.SQL("ALTER SEQUENCE {} INCREMENT BY {} RESTART WITH {}").format(
                    sql.Identifier(schema, name),
                    sql.Literal(setting.increment),
                    sql.Literal(setting.restart),
                )
            )
            done.append(
                f"sequence {setting.sequence}: INCREMENT BY {setting.increment} "
                f"RESTART WITH {setting.restart}"
            )
    return done
