"""What an agent does on its own node for a mesh: report facts, create and drop the mesh's
publication, slots and origins, list conflicts, and compute checksums for verify.

All of it over the local socket as the superuser (``Instance.connect``), with names
quoted by psycopg.sql.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgherd.errors import Refused, TimedOut
from pgherd.logical import schema as schema_sync
from pgherd.logical.publication import grant_published
from pgherd.mesh import node_sequences
from pgherd.mesh.apply import progress
from pgherd.model import mesh as mesh_model
from pgherd.model.mesh import (
    Chunk,
    ColumnDef,
    ConflictFilter,
    MeshConflict,
    MeshDdl,
    MeshSpec,
    NodeFacts,
    TableDef,
)
from pgherd.model.mesh_copy import JoinPlan, SlotStart
from pgherd.model.mesh_members import local_member
from pgherd.model.names import QualifiedName
from pgherd.pg import conninfo, replication
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS pgherd;
CREATE TABLE IF NOT EXISTS pgherd.conflicts (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    mesh             text NOT NULL,
    source_node      text NOT NULL,
    target_node      text NOT NULL,
    table_name       text NOT NULL,
    kind             text NOT NULL,
    key              jsonb,
    local_row        jsonb,
    local_node       text,
    local_commit_ts  timestamptz,
    remote_row       jsonb,
    remote_commit_ts timestamptz,
    remote_lsn       pg_lsn,
    policy           text NOT NULL,
    resolution       text NOT NULL,
    reason           text
);
CREATE TABLE IF NOT EXISTS pgherd.mesh_seen (
    mesh        text NOT NULL,
    source_node text NOT NULL,
    node        text NOT NULL,
    seen_time   bigint NOT NULL,
    PRIMARY KEY (mesh, source_node, node)
);
COMMENT ON TABLE pgherd.mesh_seen IS
    'Per source: up to which commit time (microseconds since 2000) it had applied each node';
COMMENT ON TABLE pgherd.conflicts IS
    'Conflicts met by pgherd''s mesh apply workers on this node (never replicated)';
"""
SCHEMA_SQL += f"{progress.TABLE_SQL};\n{progress.COMMENT_SQL};\n"
# Schema changes of mesh tables, carried in the stream like rows (docs/mesh.md, "DDL"):
# ``pgherd ddl`` inserts a row on the node it runs on, in the same transaction as the
# change; every member's worker from that node runs the statement at that place in the
# stream. ``dropped_columns`` (schema.table.column, one a line): columns the change
# removed, whose values rows written before it elsewhere may still carry. ``after``
# (node:id, one a line): the other members' changes the origin had run before it, which
# every member runs first.
SCHEMA_SQL += """
CREATE TABLE IF NOT EXISTS pgherd.mesh_ddl (
    origin_node     text NOT NULL,
    id              bigserial,
    mesh            text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    statement       text NOT NULL,
    search_path     text NOT NULL,
    dropped_columns text NOT NULL DEFAULT '',
    after           text NOT NULL DEFAULT '',
    PRIMARY KEY (origin_node, id)
);
COMMENT ON TABLE pgherd.mesh_ddl IS
    'Schema changes of mesh tables, replicated with the rows and run by each member in order';
"""
DDL_TABLE = "pgherd.mesh_ddl"


# What a mesh's publication sends: row changes and TRUNCATE (applied at its place in the
# stream, with its CASCADE and RESTART IDENTITY; see docs/mesh.md).
PUBLISH = "insert, update, delete, truncate"


@contextmanager
def connect(local: LocalNode, dbname: str) -> Iterator[Conn]:
    with local.instance.connect(dbname) as conn:
        yield conn


# ---- facts --------------------------------------------------------------------------------


def inspect(
    local: LocalNode, dbname: str, tables: Sequence[str], meshes: Sequence[str]
) -> NodeFacts:
    with connect(local, dbname) as conn:
        row = conn.execute(
            """
            SELECT current_setting('server_version_num')::int,
                   current_setting('wal_level'),
                   current_setting('track_commit_timestamp')::bool,
                   current_setting('max_replication_slots')::int
                     - (SELECT count(*) FROM pg_replication_slots)::int,
                   current_setting('max_replication_slots')::int
                     - (SELECT count(*) FROM pg_replication_origin)::int
            """
        ).fetchone()
        assert row is not None
        found = {table: table_def(conn, table) for table in tables}
        sequences = node_sequences.read(conn, [t for t, d in found.items() if d is not None])
    return NodeFacts(
        node=local.node.name,
        version_num=int(row[0]),
        wal_level=str(row[1]),
        track_commit_timestamp=bool(row[2]),
        free_slots=int(row[3]),
        free_origins=int(row[4]),
        tables=found,
        meshes=tuple(meshes),
        sequences=tuple(sequences),
    )


def member_of(local: LocalNode, spec: MeshSpec) -> str:
    """The member this node is in ``spec``: itself, or its cluster (an HA cluster member,
    whose primary holds the slots and origins named for the cluster)."""
    return local_member(spec.nodes, local.node.name, local.config.cluster) or local.node.name


def table_def(conn: Conn, table: str) -> TableDef | None:
    schema, name = table.split(".", 1)
    rel = conn.execute(
        "SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
        "AND c.relkind IN ('r', 'p')",
        (schema, name),
    ).fetchone()
    if rel is None:
        return None
    oid, ident = rel
    columns = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (oid,),
    ).fetchall()
    key = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (oid,),
    ).fetchall()
    return TableDef(
        name=table,
        columns=tuple(
            ColumnDef(name=str(c[0]), type=str(c[1]), not_null=bool(c[2])) for c in columns
        ),
        primary_key=tuple(str(k[0]) for k in key),
        replica_identity=str(ident),
    )


# ---- setting up and tearing down ----------------------------------------------------------


def prepare(local: LocalNode, spec: MeshSpec, plan: JoinPlan | None = None) -> list[str]:
    """This node's part of ``spec``: the conflicts table, the publication, a slot for each
    other member and an origin for each; when nodes join (``plan``), a slot that feeds a
    newcomer is a copy of the slot that feeds the reference, or is left to the newcomer's
    copy (model/mesh_copy.py). The replication role may read the tables (a newcomer's copy
    reads them) and the positions. Idempotent; returns what it created."""
    me = member_of(local, spec)
    created: list[str] = []
    with connect(local, spec.dbname) as conn:
        conn.execute(SCHEMA_SQL)
        if plan is not None and me in plan.newcomers:
            created += _create_missing(local, conn, spec, plan.copies[me][0])
        publication = mesh_model.publication_name(spec.name)
        tables = sql.SQL(", ").join(
            sql.Identifier(*t.split(".", 1)) for t in (*spec.tables, DDL_TABLE)
        )
        exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})").format(
                    sql.Identifier(publication), tables, sql.Literal(PUBLISH)
                )
            )
            created.append(f"publication {publication}")
        else:
            conn.execute(
                sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
                    sql.Identifier(publication), tables
                )
            )
            # A mesh made before TRUNCATE was replicated publishes it from now on.
            conn.execute(
                sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                    sql.Identifier(publication), sql.Literal(PUBLISH)
                )
            )
        _grant_reads(conn, local.config.replication_user, publication)
        pairs = spec.pairs()
        for other in spec.nodes:
            if (me, other) in pairs:
                created += _make_slot(conn, spec, me, other, plan)
            origin = mesh_model.origin_name(spec.name, other)
            if (other, me) in pairs and replication.create_origin(conn, origin):
                created.append(f"origin {origin}")
    return created


def _make_slot(
    conn: Conn, spec: MeshSpec, me: str, target: str, plan: JoinPlan | None
) -> list[str]:
    """The slot on this node that feeds ``target``: made now, a copy of the one that feeds
    the reference, or left to the target's copy (a join: model/mesh_copy.py)."""
    slot = mesh_model.slot_name(spec.name, target)
    start = plan.slot_start(me, target) if plan is not None else SlotStart.FRESH
    if start is SlotStart.COPY:
        assert plan is not None
        assert plan.reference is not None
        feeds_reference = mesh_model.slot_name(spec.name, plan.reference)
        if replication.copy_logical_slot(conn, feeds_reference, slot):
            return [f"slot {slot} (a copy of {feeds_reference})"]
    elif start is SlotStart.FRESH and replication.create_logical_slot(conn, slot):
        return [f"slot {slot}"]
    return []


def _create_missing(local: LocalNode, conn: Conn, spec: MeshSpec, source: str) -> list[str]:
    """The mesh's tables this joining node lacks, from its copy source's definitions
    (pg_dump as the replication role, as ``subscription create --sync-schema`` does)."""
    missing = [QualifiedName(*t.split(".", 1)) for t in spec.tables if table_def(conn, t) is None]
    if not missing:
        return []
    config = local.config
    node = config.node(source)
    dsn = conninfo.keyword(
        node.host,
        node.port,
        config.replication_user,
        config.passfile,
        dbname=spec.dbname,
        sslrootcert=config.ca_file,
    )
    schema_sync.sync(local, conn, dsn, missing, whole=False)
    return [f"table {t.schema}.{t.name} (from {source})" for t in missing]


def _grant_reads(conn: Conn, role: str, publication: str) -> None:
    """What a joining node reads here as the replication role: the published tables (its
    copy) and the mesh's positions and what the sources had seen (where its streams start)."""
    grant_published(conn, role, publication)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        return
    who = sql.Identifier(role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pgherd TO {}").format(who))
    conn.execute(
        sql.SQL("GRANT SELECT ON pgherd.mesh_progress, pgherd.mesh_seen TO {}").format(who)
    )


def set_progress(local: LocalNode, spec: MeshSpec, source: str, lsn: int) -> None:
    """Start ``source``'s stream into this node no earlier than ``lsn`` (where a joining
    source's copy ended: what it wrote before is not sent)."""
    with connect(local, spec.dbname) as conn:
        conn.execute(SCHEMA_SQL)
        progress.raise_to(conn, spec.name, source, lsn)


def drop(
    local: LocalNode, spec: MeshSpec, timeout: float = 30, only: Sequence[str] = ()
) -> list[str]:
    """Remove the mesh's slots, origins and publication from this node (its workers must
    have stopped: an active slot or origin cannot be dropped), and its positions. Keeps
    pgherd.conflicts. ``only``: just what serves the pairs with these nodes (a join that
    failed), everything when this node is one of them."""
    dropped: list[str] = []
    me = member_of(local, spec)
    whole = not only or me in only
    deadline = time.monotonic() + timeout
    with connect(local, spec.dbname) as conn:
        for other in spec.nodes:
            if other == me or not (whole or other in only):
                continue
            slot = mesh_model.slot_name(spec.name, other)
            origin = mesh_model.origin_name(spec.name, other)
            drop_slot = partial(replication.drop_slot_now, conn, slot)
            _retry_while_busy(drop_slot, deadline, f"slot {slot}")
            drop_origin = partial(replication.drop_origin, conn, origin)
            _retry_while_busy(drop_origin, deadline, f"origin {origin}")
            dropped += [f"slot {slot}", f"origin {origin}"]
            _forget_positions(conn, spec.name, other)
        if not whole:
            return dropped
        replication.drop_origin(conn, mesh_model.copy_origin_name(spec.name))
        publication = mesh_model.publication_name(spec.name)
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
        dropped.append(f"publication {publication}")
    return dropped


def _forget_positions(conn: Conn, mesh: str, source: str) -> None:
    for table in ("mesh_progress", "mesh_seen"):
        if conn.execute("SELECT to_regclass(%s)", (f"pgherd.{table}",)).fetchone() != (None,):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE mesh = %s AND source_node = %s").format(
                    sql.Identifier("pgherd", table)
                ),
                (mesh, source),
            )


def _retry_while_busy(drop: Callable[[], None], deadline: float, what: str) -> None:
    while True:
        try:
            drop()
        except psycopg.errors.ObjectInUse as exc:
            if time.monotonic() > deadline:
                raise TimedOut(
                    f"{what} is still in use: {str(exc).splitlines()[0]}",
                    "stop the apply worker that uses it (or its agent) and retry",
                ) from None
            time.sleep(0.2)
        else:
            return


# ---- reading --------------------------------------------------------------------------------


def conflicts(local: LocalNode, spec: MeshSpec, which: ConflictFilter) -> list[MeshConflict]:
    """The conflicts met on this node, newest first, as ``which`` filters them."""
    with connect(local, spec.dbname) as conn:
        if conn.execute("SELECT to_regclass('pgherd.conflicts')").fetchone() == (None,):
            return []
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(
            "SELECT id, at, source_node, target_node, table_name, kind, key::text AS key, "
            "local_row::text AS local_row, local_node, local_commit_ts, "
            "remote_row::text AS remote_row, remote_commit_ts, remote_lsn::text AS remote_lsn, "
            "policy, resolution, reason FROM pgherd.conflicts WHERE mesh = %(mesh)s "
            "AND (%(table)s::text IS NULL OR table_name = %(table)s) "
            "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
            "AND (%(resolution)s::text IS NULL OR resolution = %(resolution)s) "
            "ORDER BY id DESC LIMIT %(limit)s",
            {
                "mesh": spec.name,
                "table": which.table,
                "kind": None if which.kind is None else which.kind.value,
                "resolution": None if which.resolution is None else which.resolution.value,
                "limit": which.limit,
            },
        ).fetchall()
    return [MeshConflict.model_validate(r) for r in rows]


def ddl_log(local: LocalNode, spec: MeshSpec, limit: int = 100) -> list[MeshDdl]:
    """The schema changes this node ran for the mesh (its own and the others'), newest
    first."""
    with connect(local, spec.dbname) as conn:
        if conn.execute("SELECT to_regclass('pgherd.mesh_ddl')").fetchone() == (None,):
            return []
        rows = conn.execute(
            "SELECT origin_node, id, at::text, statement, dropped_columns FROM pgherd.mesh_ddl "
            "WHERE mesh = %s ORDER BY at DESC, id DESC LIMIT %s",
            (spec.name, limit),
        ).fetchall()
    return [
        MeshDdl(
            origin_node=str(r[0]),
            id=int(r[1]),
            at=str(r[2]),
            statement=str(r[3]),
            dropped_columns=tuple(c for c in str(r[4]).splitlines() if c),
        )
        for r in rows
    ]


def outgoing_slots(local: LocalNode, spec: MeshSpec) -> list[dict[str, Any]]:
    """The slots on this node that feed the other members: active, how much WAL they keep."""
    me = member_of(local, spec)
    names = [mesh_model.slot_name(spec.name, n) for n in spec.nodes if n != me]
    with connect(local, spec.dbname) as conn:
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(
            "SELECT slot_name, active, confirmed_flush_lsn::text AS confirmed_flush_lsn, "
            "pg_current_wal_lsn()::text AS current_lsn, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 AS retained_bytes "
            "FROM pg_replication_slots WHERE slot_name = ANY(%s)",
            (names,),
        ).fetchall()
    return [dict(r) for r in rows]


# ---- verify ---------------------------------------------------------------------------------

_VERIFY_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'"
)


def _verify_parts(conn: Conn, table: str) -> tuple[TableDef, sql.Composable, sql.Composable]:
    found = table_def(conn, table)
    if found is None:
        raise Refused(f"table {table} does not exist", "create it on every member")
    if not found.primary_key:
        raise Refused(f"table {table} has no primary key", "mesh tables need one")
    key = sql.SQL(", ").join(sql.Identifier(k) for k in found.primary_key)
    # The row's text in column-name order, so that column order does not matter.
    columns = sorted(c.name for c in found.columns)
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    return found, key, row


def boundaries(local: LocalNode, dbname: str, table: str, chunk_rows: int) -> list[str]:
    """Every ``chunk_rows``-th key (as a JSON array), starting with the second chunk."""
    with connect(local, dbname) as conn:
        conn.execute(_VERIFY_SETTINGS)
        _found, key, _row = _verify_parts(conn, table)
        query = sql.SQL(
            "SELECT json_build_array({key})::text FROM (SELECT {key}, "
            "row_number() OVER (ORDER BY {key}) AS n FROM {table}) s "
            "WHERE n % {chunk} = 1 AND n > 1 ORDER BY {key}"
        ).format(
            key=key,
            table=sql.Identifier(*table.split(".", 1)),
            chunk=sql.Literal(chunk_rows),
        )
        return [str(r[0]) for r in conn.execute(query)]


def _range_where(
    found: TableDef, key: sql.Composable, start: str | None, end: str | None
) -> sql.Composable:
    """``WHERE`` the key lies in [start, end) (keys given as JSON arrays, typed back into
    row values); nothing when the range is open on both sides."""
    types = {c.name: c.type for c in found.columns}

    def as_key(param: str) -> sql.Composable:
        return sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("({}::json->>{})::{}").format(
                    sql.Placeholder(param), sql.Literal(i), sql.SQL(types[k])
                )
                for i, k in enumerate(found.primary_key)
            )
        )

    key_row = sql.SQL("({})").format(key)
    where: list[sql.Composable] = []
    if start is not None:
        where.append(sql.SQL("{} >= {}").format(key_row, as_key("b")))
    if end is not None:
        where.append(sql.SQL("{} < {}").format(key_row, as_key("e")))
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")


def _range_params(start: str | None, end: str | None) -> dict[str, str] | None:
    params = {k: v for k, v in (("b", start), ("e", end)) if v is not None}
    return params or None


def checksums(local: LocalNode, dbname: str, table: str, bounds: Sequence[str]) -> list[Chunk]:
    """Rows and an md5 of their contents for each key range between ``bounds``."""
    with connect(local, dbname) as conn:
        conn.execute(_VERIFY_SETTINGS)
        found, key, row = _verify_parts(conn, table)
        chunks: list[Chunk] = []
        starts: list[str | None] = [None, *bounds]
        ends: list[str | None] = [*bounds, None]
        for start, end in zip(starts, ends, strict=True):
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(md5({row}), '' ORDER BY {key})), '') "
                "FROM {table} {where}"
            ).format(
                row=row,
                key=key,
                table=sql.Identifier(*table.split(".", 1)),
                where=_range_where(found, key, start, end),
            )
            result = conn.execute(query, _range_params(start, end)).fetchone()
            assert result is not None
            chunks.append(Chunk(rows=int(result[0]), digest=str(result[1])))
    return chunks


def key_digests(
    local: LocalNode,
    dbname: str,
    table: str,
    start: str | None,
    end: str | None,
    limit: int,
) -> list[tuple[str, str]]:
    """The first ``limit`` keys (JSON arrays) in [start, end), in key order, each with an md5
    of its row: what names the rows that differ between two nodes."""
    with connect(local, dbname) as conn:
        conn.execute(_VERIFY_SETTINGS)
        found, key, row = _verify_parts(conn, table)
        query = sql.SQL(
            "SELECT json_build_array({key})::text, md5({row}) FROM {table} {where} "
            "ORDER BY {key} LIMIT {limit}"
        ).format(
            key=key,
            row=row,
            table=sql.Identifier(*table.split(".", 1)),
            where=_range_where(found, key, start, end),
            limit=sql.Literal(limit),
        )
        return [(str(k), str(d)) for k, d in conn.execute(query, _range_params(start, end))]
