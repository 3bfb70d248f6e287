"""Publications on this node: create, alter, drop, list (run inside the node's agent).

Every name reaches SQL through ``sql.Identifier``; a row filter (an expression, which
cannot be quoted) was checked by :func:`pgherd.model.names.check_expression` and is sent
with the extended query protocol, which runs exactly one statement.

Subscribers connect as the replication role, which needs SELECT on a table for its
initial copy: pgherd grants SELECT on the tables it publishes (and USAGE on their
schemas, SELECT on the sequences they own, for ``sync-sequences``) in the same
transaction that creates or alters the publication.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgherd.errors import InvalidInput, QueryFailed, Refused
from pgherd.model import publication as model
from pgherd.model.names import QualifiedName
from pgherd.model.publication import (
    PublicationAlter,
    PublicationInfo,
    PublicationResult,
    PublicationSpec,
    PublishedTable,
    TableIdentity,
    TableSpec,
)
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]


def execute(conn: Conn, statement: sql.Composed | sql.SQL) -> None:
    """One statement, sent with the extended protocol: a second statement smuggled into
    it would be refused by the server ("cannot insert multiple commands")."""
    try:
        conn.execute(statement, binary=True)
    except psycopg.Error as exc:
        raise QueryFailed(_pg_message(exc), _pg_hint(exc)) from None


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip().splitlines()[0]
    return f"{text} ({diag.message_detail})" if diag.message_detail else text


def _pg_hint(exc: psycopg.Error) -> str:
    return exc.diag.message_hint or "see the server's message; nothing was changed"


# ---- building statements ---------------------------------------------------------------


def table_item(table: TableSpec) -> sql.Composable:
    """``"s"."t" (c1, c2) WHERE (expr)`` for FOR TABLE / ADD TABLE."""
    parts: list[sql.Composable] = [sql.Identifier(table.schema_name, table.name)]
    if table.columns is not None:
        parts.append(sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, table.columns))))
    if table.row_filter:
        parts.append(sql.SQL("WHERE ({})").format(sql.SQL(table.row_filter)))
    return sql.SQL(" ").join(parts)


def objects(tables: Sequence[TableSpec], schemas: Sequence[str]) -> sql.Composable:
    items: list[sql.Composable] = []
    if tables:
        items.append(sql.SQL("TABLE ") + sql.SQL(", ").join(table_item(t) for t in tables))
    if schemas:
        items.append(
            sql.SQL("TABLES IN SCHEMA ") + sql.SQL(", ").join(map(sql.Identifier, schemas))
        )
    return sql.SQL(", ").join(items)


def create_statement(spec: PublicationSpec) -> sql.Composed:
    target = (
        sql.SQL("FOR ALL TABLES")
        if spec.all_tables
        else sql.SQL("FOR ") + objects(spec.tables, spec.schemas)
    )
    return sql.SQL("CREATE PUBLICATION {} {} WITH (publish = {})").format(
        sql.Identifier(spec.name), target, sql.Literal(", ".join(spec.publish))
    )


# ---- checks ----------------------------------------------------------------------------


def _exists(conn: Conn, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
        is not None
    )


def require_tables(conn: Conn, tables: Sequence[QualifiedName], where: str) -> None:
    for table in tables:
        row = conn.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (table.schema, table.name),
        ).fetchone()
        if row is None:
            raise InvalidInput(
                f"table {table} does not exist {where}",
                "create it first, or fix --tables (a name in double quotes is case-sensitive)",
            )
        if row[0] not in ("r", "p"):
            raise InvalidInput(f"{table} is not a table (relkind {row[0]})", "publish tables only")


def require_schemas(conn: Conn, schemas: Sequence[str], where: str) -> None:
    for schema in schemas:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if found is None:
            raise InvalidInput(f"schema {schema!r} does not exist {where}", "check --schema")


def _where(local: LocalNode, dbname: str) -> str:
    return f"in database {dbname!r} on {local.node.name}"


# ---- operations ------------------------------------------------------------------------


def create(local: LocalNode, spec: PublicationSpec) -> PublicationResult:
    node = local.node.name
    with local.instance.connect(spec.dbname) as conn:
        model.require_features(
            model.features_needed(spec.tables, spec.schemas), conn.info.server_version, node
        )
        if _exists(conn, spec.name):
            raise Refused(
                f"publication {spec.name!r} already exists {_where(local, spec.dbname)}",
                "use `pgherd publication alter` to change it, or drop it first",
            )
        require_tables(conn, [t.qualified for t in spec.tables], _where(local, spec.dbname))
        require_schemas(conn, spec.schemas, _where(local, spec.dbname))
        with conn.transaction():
            execute(conn, create_statement(spec))
            grant_published(conn, local.config.replication_user, spec.name)
        info = describe(conn, spec.name, spec.dbname)
        return PublicationResult(publication=info, warnings=tuple(warnings(conn, info)))


def alter(local: LocalNode, change: PublicationAlter) -> PublicationResult:
    node = local.node.name
    where = _where(local, change.dbname)
    with local.instance.connect(change.dbname) as conn:
        model.require_features(
            model.features_needed(change.add_tables, change.add_schemas),
            conn.info.server_version,
            node,
        )
        if not _exists(conn, change.name):
            raise InvalidInput(
                f"no publication {change.name!r} {where}", "see `pgherd publication list`"
            )
        require_tables(conn, [t.qualified for t in change.add_tables], where)
        require_schemas(conn, change.add_schemas, where)
        pub = sql.Identifier(change.name)
        with conn.transaction():
            if change.add_tables or change.add_schemas:
                execute(
                    conn,
                    sql.SQL("ALTER PUBLICATION {} ADD {}").format(
                        pub, objects(change.add_tables, change.add_schemas)
                    ),
                )
            if change.drop_tables or change.drop_schemas:
                execute(
                    conn,
                    sql.SQL("ALTER PUBLICATION {} DROP {}").format(
                        pub,
                        objects(
                            [
                                TableSpec(schema_name=t.schema_name, name=t.name)
                                for t in change.drop_tables
                            ],
                            change.drop_schemas,
                        ),
                    ),
                )
            if change.publish is not None:
                execute(
                    conn,
                    sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                        pub, sql.Literal(", ".join(change.publish))
                    ),
                )
            grant_published(conn, local.config.replication_user, change.name)
        info = describe(conn, change.name, change.dbname)
        return PublicationResult(publication=info, warnings=tuple(warnings(conn, info)))


def drop(local: LocalNode, name: str, dbname: str) -> None:
    with local.instance.connect(dbname) as conn:
        if not _exists(conn, name):
            raise InvalidInput(
                f"no publication {name!r} {_where(local, dbname)}", "see `pgherd publication list`"
            )
        # After an upgrade's cut-over the old node is read-only by default; removing the
        # publication is the agent's clean-up, not an application write.
        conn.execute("SET default_transaction_read_only = off")
        execute(conn, sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))


def list_all(local: LocalNode, dbname: str) -> list[PublicationInfo]:
    with local.instance.connect(dbname) as conn:
        names = [str(r[0]) for r in conn.execute("SELECT pubname FROM pg_publication ORDER BY 1")]
        return [describe(conn, name, dbname) for name in names]


def grant_published(conn: Conn, role: str, publication: str | None = None) -> None:
    """SELECT on the published tables (and their sequences), USAGE on their schemas, for
    the replication role: what a subscriber's initial copy and sync-sequences read."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        return
    who = sql.Identifier(role)
    query = "SELECT DISTINCT schemaname, tablename FROM pg_publication_tables"
    rows = conn.execute(
        query + (" WHERE pubname = %s" if publication else ""),
        (publication,) if publication else None,
    ).fetchall()
    for schema in sorted({r[0] for r in rows}):
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), who))
    for schema, table in rows:
        conn.execute(
            sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(schema, table), who)
        )
    for schema, sequence in owned_sequences(conn, [(r[0], r[1]) for r in rows]):
        conn.execute(
            sql.SQL("GRANT SELECT ON SEQUENCE {} TO {}").format(
                sql.Identifier(schema, sequence), who
            )
        )


def owned_sequences(conn: Conn, tables: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Sequences owned by (serial and identity columns of) ``tables``."""
    if not tables:
        return []
    rows = conn.execute(
        """
        SELECT DISTINCT sn.nspname, s.relname
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_namespace tn ON tn.oid = t.relnamespace
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i')
          AND (tn.nspname || '.' || t.relname) = ANY(%s)
        """,
        ([f"{s}.{t}" for s, t in tables],),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def describe(conn: Conn, name: str, dbname: str) -> PublicationInfo:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT p.oid, p.pubname, r.rolname AS owner, p.puballtables,
                   p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
            FROM pg_publication p JOIN pg_roles r ON r.oid = p.pubowner
            WHERE p.pubname = %s
            """,
            (name,),
        )
        pub = cur.fetchone()
        if pub is None:
            raise InvalidInput(f"no publication {name!r} in database {dbname!r}")
        version = conn.info.server_version
        explicit: dict[tuple[str, str], PublishedTable] = {}
        cur.execute(
            f"""
            SELECT n.nspname, c.relname,
                   {"pg_get_expr(pr.prqual, pr.prrelid)" if version >= model.PG15 else "NULL"}
                       AS row_filter,
                   {
                '''(SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
                        WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs))'''
                if version >= model.PG15
                else "NULL"
            } AS columns
            FROM pg_publication_rel pr
            JOIN pg_class c ON c.oid = pr.prrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE pr.prpubid = %s
            ORDER BY 1, 2
            """,  # noqa: S608 - version-dependent columns, no user input
            (pub["oid"],),
        )
        for row in cur.fetchall():
            explicit[(row["nspname"], row["relname"])] = PublishedTable(
                schema_name=row["nspname"],
                name=row["relname"],
                row_filter=row["row_filter"],
                columns=tuple(row["columns"]) if row["columns"] else None,
            )
        cur.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s "
            "ORDER BY 1, 2",
            (name,),
        )
        tables = [
            explicit.get((r["schemaname"], r["tablename"]))
            or PublishedTable(schema_name=r["schemaname"], name=r["tablename"])
            for r in cur.fetchall()
        ]
        schemas: list[str] = []
        if version >= model.PG15:
            cur.execute(
                "SELECT n.nspname FROM pg_publication_namespace pn "
                "JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = %s ORDER BY 1",
                (pub["oid"],),
            )
            schemas = [r["nspname"] for r in cur.fetchall()]
    publish = tuple(op for op in model.PUBLISH_OPERATIONS if pub[f"pub{op}"])
    return PublicationInfo(
        name=name,
        dbname=dbname,
        owner=pub["owner"],
        all_tables=pub["puballtables"],
        publish=publish,
        schemas=tuple(schemas),
        tables=tuple(tables),
    )


def warnings(conn: Conn, info: PublicationInfo) -> list[str]:
    identities = table_identities(conn, [t.qualified for t in info.tables])
    return model.identity_warnings(identities, info.publish, info.name)


def table_identities(conn: Conn, tables: Sequence[QualifiedName]) -> list[TableIdentity]:
    found = []
    for table in tables:
        row = conn.execute(
            """
            SELECT c.relreplident,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                           AND i.indisreplident)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s
            """,
            (table.schema, table.name),
        ).fetchone()
        if row is not None:
            found.append(TableIdentity(table, str(row[0]), bool(row[1]), bool(row[2])))
    return found
