"""The target side of the apply worker: what a replicated table looks like there and the
statements that change it, with values passed in PostgreSQL's wire format.

pgoutput (in binary mode) sends each value in its type's send format, which is exactly
what a binary parameter or a COPY BINARY field takes, so values are never turned into
Python objects: :class:`BinaryWire` and :class:`TextWire` carry the bytes, and their
dumpers declare no type (OID 0) so that the server infers it from the statement.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from pgherd.errors import PgherdError
from pgherd.mesh.apply import pgoutput as po


class TargetMismatch(PgherdError):
    default_hint = "make the table identical on every node (pgherd ddl), then restart"


class MissingColumns(TargetMismatch):
    """The source sends columns the target's table lacks: a schema change that has not
    reached the target yet, or one that dropped them here (docs/mesh.md, "DDL")."""

    def __init__(self, table: str, columns: list[str]) -> None:
        super().__init__(f"column {', '.join(columns)} of {table} is missing on the target")
        self.table = table
        self.columns = columns


class BinaryWire:
    """A value in its type's binary (send) format."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class TextWire:
    """A value in its type's text format."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _BinaryWireDumper(Dumper):
    format = Format.BINARY
    oid = 0

    def dump(self, obj: Any) -> bytes:
        return bytes(obj.data)


class _TextWireDumper(Dumper):
    format = Format.TEXT
    oid = 0

    def dump(self, obj: Any) -> bytes:
        return bytes(obj.data)


def register_wire(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(BinaryWire, _BinaryWireDumper)
    conn.adapters.register_dumper(TextWire, _TextWireDumper)


def wire(kind: str, value: bytes | None) -> BinaryWire | TextWire | None:
    if value is None:
        return None
    return BinaryWire(value) if kind == po.BINARY else TextWire(value)


_DESCRIBE = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int8,
       coalesce(a.attnum = ANY(i.indkey), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
ORDER BY a.attnum
"""

# A batch UPDATE or DELETE changes, without looking closer, only the rows last written by
# this very transaction, by the same source node, or by the target's initial copy (a
# baseline: model/conflict.py); the others go one by one through conflict handling. Who
# wrote a row is asked once per distinct xmin, not once per row (pg_xact_commit_timestamp_
# origin costs about as much as the delete itself, and the rows of a batch come from few
# transactions), then the rows are changed by ctid: measured here,
# a batch of 10,000 deletes takes 0.35-0.5x the time of checking each row (updates 0.7x).
# A row changed by someone else between the read and the change fails the ctid and xmin
# recheck (EvalPlanQual) and is left to conflict handling.
_SAME_WRITERS = sql.SQL(
    "ok AS (SELECT x FROM (SELECT DISTINCT x FROM m) AS d WHERE x = %s::xid "
    "OR coalesce((pg_xact_commit_timestamp_origin(x)).roident, 0) IN (%s::oid, %s::oid))"
)
_SAME_ROW = sql.SQL("t.ctid = m.tid AND t.xmin = m.x AND m.x IN (SELECT x FROM ok)")


@dataclass
class TargetTable:
    """A published table as the target has it, with its statements built once."""

    schema: str
    name: str
    columns: tuple[str, ...]  # in the order pgoutput sends them
    types: tuple[str, ...]  # the target's type of each column (format_type)
    type_oids: tuple[int, ...]
    key: tuple[int, ...]  # positions (in ``columns``) of the primary key's columns
    _sql: dict[object, str] = field(default_factory=dict, repr=False)
    # A row's key values, in key order: called once per replicated row, so built once.
    key_of: Callable[[Sequence[bytes | None]], tuple[bytes | None, ...]] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        if len(self.key) == 1:
            only = self.key[0]
            self.key_of = lambda values: (values[only],)
        else:
            self.key_of = operator.itemgetter(*self.key)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def non_key(self) -> tuple[int, ...]:
        return tuple(i for i in range(len(self.columns)) if i not in self.key)

    def _col(self, i: int) -> sql.Identifier:
        return sql.Identifier(self.columns[i])

    def _cached(self, key: object, build: Any, conn: psycopg.Connection[Any]) -> str:
        text = self._sql.get(key)
        if text is None:
            text = build().as_string(conn)
            self._sql[key] = text
        return text

    def _key_match(self, alias: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("t.{} = {}.{}").format(self._col(i), sql.Identifier(alias), _u(i))
            for i in self.key
        )

    def _unnest(self, positions: tuple[int, ...]) -> sql.Composable:
        arrays: list[sql.Composable] = [sql.SQL("%s::int4[]")]
        arrays += [sql.SQL("%s::{}[]").format(sql.SQL(self.types[i])) for i in positions]
        names = [sql.Identifier("s"), *(_u(i) for i in positions)]
        return sql.SQL("unnest({}) AS u({})").format(
            sql.SQL(", ").join(arrays), sql.SQL(", ").join(names)
        )

    # ---- statements -----------------------------------------------------------------

    def copy_sql(self, conn: psycopg.Connection[Any]) -> str:
        return self._cached(
            "copy",
            lambda: sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
                self.ident, sql.SQL(", ").join(map(self._col, range(len(self.columns))))
            ),
            conn,
        )

    def existing_sql(self, conn: psycopg.Connection[Any]) -> str:
        """The batch rows (seq, key arrays) whose key is already there."""
        return self._cached(
            "existing",
            lambda: sql.SQL("SELECT u.s FROM {} JOIN {} AS t ON {}").format(
                self._unnest(self.key), self.ident, self._key_match("u")
            ),
            conn,
        )

    @property
    def update_sets(self) -> tuple[int, ...]:
        """The columns a batch UPDATE sets: all but the key (or the key, if that is all)."""
        return self.non_key or self.key

    @property
    def update_positions(self) -> tuple[int, ...]:
        """The columns whose arrays a batch UPDATE takes, in order."""
        return tuple(sorted({*self.key, *self.update_sets}))

    def _matched(self, positions: tuple[int, ...]) -> sql.Composable:
        """The CTEs ``m`` (the batch rows whose key is there: ctid, xmin and the arrays'
        columns) and ``ok`` (the xmins of the same writers)."""
        return sql.SQL(
            "u AS (SELECT * FROM {}), "
            "m AS MATERIALIZED (SELECT t.ctid AS tid, t.xmin AS x, u.* FROM {} AS t "
            "JOIN u ON {}), {}"
        ).format(self._unnest(positions), self.ident, self._key_match("u"), _SAME_WRITERS)

    def update_batch_sql(self, conn: psycopg.Connection[Any]) -> str:
        """Update the batch rows still written by the same source; the seqs of the others.
        Parameters: seqs, one array per update position, own xid, source roident, baseline
        roident, seqs."""
        sets = self.update_sets

        def build() -> sql.Composable:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = m.{}").format(self._col(i), _u(i)) for i in sets
            )
            return _not_done(
                self._matched(self.update_positions),
                sql.SQL("UPDATE {} AS t SET {} FROM m WHERE {} RETURNING m.s").format(
                    self.ident, assignments, _SAME_ROW
                ),
            )

        return self._cached("update_batch", build, conn)

    def delete_batch_sql(self, conn: psycopg.Connection[Any]) -> str:
        """Delete the batch rows still written by the same source; the seqs of the others.
        Parameters: seqs, one array per key column, own xid, source roident, baseline
        roident, seqs."""
        return self._cached(
            "delete_batch",
            lambda: _not_done(
                self._matched(self.key),
                sql.SQL("DELETE FROM {} AS t USING m WHERE {} RETURNING m.s").format(
                    self.ident, _SAME_ROW
                ),
            ),
            conn,
        )

    def _where_key(self) -> sql.Composable:
        return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(self._col(i)) for i in self.key)

    def insert_sql(self, conn: psycopg.Connection[Any]) -> str:
        return self._cached(
            "insert",
            lambda: sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                self.ident,
                sql.SQL(", ").join(map(self._col, range(len(self.columns)))),
                sql.SQL(", ").join(sql.Placeholder() * len(self.columns)),
            ),
            conn,
        )

    def update_sql(self, conn: psycopg.Connection[Any], present: tuple[int, ...]) -> str:
        """UPDATE the columns at ``present`` (an unchanged TOASTed value is not sent)."""
        return self._cached(
            ("update", present),
            lambda: sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self.ident,
                sql.SQL(", ").join(sql.SQL("{} = %s").format(self._col(i)) for i in present),
                self._where_key(),
            ),
            conn,
        )

    def delete_sql(self, conn: psycopg.Connection[Any]) -> str:
        return self._cached(
            "delete",
            lambda: sql.SQL("DELETE FROM {} WHERE {}").format(self.ident, self._where_key()),
            conn,
        )

    def local_row_sql(self, conn: psycopg.Connection[Any]) -> str:
        """The row with a key, locked, with who wrote it last: (json, commit time, origin,
        xmin)."""
        return self._cached(
            "local_row",
            lambda: sql.SQL(
                "SELECT row_to_json(t)::text, c.timestamp, c.roident, t.xmin::text::int8 "
                "FROM {} AS t LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) AS c "
                "ON true WHERE {} FOR UPDATE OF t"
            ).format(
                self.ident,
                sql.SQL(" AND ").join(sql.SQL("t.{} = %s").format(self._col(i)) for i in self.key),
            ),
            conn,
        )

    def json_sql(self, conn: psycopg.Connection[Any], present: tuple[int, ...]) -> str:
        """The values at ``present`` as a JSON object (for the conflicts table)."""
        return self._cached(
            ("json", present),
            lambda: sql.SQL("SELECT json_build_object({})::text").format(
                sql.SQL(", ").join(
                    sql.SQL("{}, %s::{}").format(
                        sql.Literal(self.columns[i]), sql.SQL(self.types[i])
                    )
                    for i in present
                )
            ),
            conn,
        )


def _not_done(ctes: sql.Composable, statement: sql.Composable) -> sql.Composable:
    """Wrap a batch statement (which returns the seqs it changed) so that it returns one
    row: the seqs it did not change, usually none (rather than a row per changed row for
    the client to read); the batch's seq array is its last parameter."""
    return sql.SQL(
        "WITH {}, done AS ({}) SELECT coalesce(array_agg(x.s), '{{}}') "
        "FROM unnest(%s::int4[]) AS x(s) WHERE x.s NOT IN (SELECT s FROM done)"
    ).format(ctes, statement)


def truncate_sql(
    tables: Sequence[TargetTable], cascade: bool, restart_identity: bool
) -> sql.Composable:
    """One TRUNCATE of ``tables`` (together, so that tables linked by foreign keys go at
    once), with the options a Truncate message carries."""
    return sql.SQL("TRUNCATE {}{}{}").format(
        sql.SQL(", ").join(t.ident for t in tables),
        sql.SQL(" RESTART IDENTITY") if restart_identity else sql.SQL(""),
        sql.SQL(" CASCADE") if cascade else sql.SQL(""),
    )


def _u(i: int) -> sql.Identifier:
    return sql.Identifier(f"c{i}")


def describe(
    conn: psycopg.Connection[Any], relation: po.Relation, ignore: Collection[str] = ()
) -> TargetTable:
    """The target's table for a Relation message, matched by schema, name and column names;
    the source's columns named in ``ignore`` (dropped here) are left out."""
    rows = conn.execute(_DESCRIBE, (relation.namespace, relation.name)).fetchall()
    qualified = f"{relation.namespace}.{relation.name}"
    if not rows:
        raise TargetMismatch(f"table {qualified} does not exist on the target")
    by_name = {str(r[0]): (str(r[1]), int(r[2]), bool(r[3])) for r in rows}
    types: list[str] = []
    oids: list[int] = []
    kept = [c for c in relation.columns if c.name not in ignore]
    missing = [c.name for c in kept if c.name not in by_name]
    if missing:
        raise MissingColumns(qualified, missing)
    for column in kept:
        found = by_name[column.name]
        types.append(found[0])
        oids.append(found[1])
    names = tuple(c.name for c in kept)
    key = tuple(i for i, name in enumerate(names) if by_name[name][2])
    target_key = sorted(name for name, (_t, _o, is_key) in by_name.items() if is_key)
    if not key or sorted(names[i] for i in key) != target_key:
        raise TargetMismatch(
            f"table {qualified} has no primary key on the target, or it is not published"
        )
    return TargetTable(relation.namespace, relation.name, names, tuple(types), tuple(oids), key)
