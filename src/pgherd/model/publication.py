"""Publications: what the user asked for, checked before anything is created. Pure.

The values here cross the agent API unchanged (pydantic), so the CLI, the console and
the agent agree on one shape.

Presets mirror pglogical's replication sets, on stock PostgreSQL:

============== ================================ =========================================
preset         pglogical set                    ``publish =``
============== ================================ =========================================
default        ``default``                      insert, update, delete, truncate
insert-only    ``default_insert_only``          insert, truncate
============== ================================ =========================================

pglogical's ``ddl_sql`` set (replicate_ddl_command) has no publication counterpart: DDL is
not replicated by PostgreSQL's logical replication; ``pgherd ddl`` applies it instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.errors import InvalidInput, Refused
from pgherd.model import names
from pgherd.model.names import QualifiedName
from pgherd.model.status import Frozen

PUBLISH_OPERATIONS = ("insert", "update", "delete", "truncate")
PRESETS: dict[str, tuple[str, ...]] = {
    "default": PUBLISH_OPERATIONS,
    "insert-only": ("insert", "truncate"),
}
PG15 = 150000
PG16 = 160000


class TableSpec(Frozen):
    """A table to publish, with the rows (filter) and columns to send."""

    schema_name: str = "public"
    name: str
    row_filter: str | None = None
    columns: tuple[str, ...] | None = None

    @property
    def qualified(self) -> QualifiedName:
        return QualifiedName(self.schema_name, self.name)


class PublicationSpec(Frozen):
    name: str
    dbname: str = "postgres"
    tables: tuple[TableSpec, ...] = ()
    all_tables: bool = False
    schemas: tuple[str, ...] = ()
    publish: tuple[str, ...] = PUBLISH_OPERATIONS


class PublicationAlter(Frozen):
    """``publication alter``: tables and schemas to add or drop, a new ``publish``."""

    name: str
    dbname: str = "postgres"
    add_tables: tuple[TableSpec, ...] = ()
    drop_tables: tuple[TableSpec, ...] = ()
    add_schemas: tuple[str, ...] = ()
    drop_schemas: tuple[str, ...] = ()
    publish: tuple[str, ...] | None = None


class PublishedTable(Frozen):
    schema_name: str
    name: str
    row_filter: str | None = None
    columns: tuple[str, ...] | None = None  # None: every column

    @property
    def qualified(self) -> QualifiedName:
        return QualifiedName(self.schema_name, self.name)


class PublicationInfo(Frozen):
    name: str
    dbname: str
    owner: str
    all_tables: bool
    publish: tuple[str, ...]
    schemas: tuple[str, ...] = ()
    tables: tuple[PublishedTable, ...] = ()


class PublicationResult(Frozen):
    publication: PublicationInfo
    warnings: tuple[str, ...] = ()


def parse_publish(text: str | None, preset: str | None) -> tuple[str, ...]:
    """``--publish insert,update`` or ``--preset NAME`` (not both); default: everything."""
    if text is not None and preset is not None:
        raise InvalidInput("--publish and --preset both say what to publish", "give one of them")
    if preset is not None:
        try:
            return PRESETS[preset]
        except KeyError:
            raise InvalidInput(
                f"unknown preset {preset!r}", f"use one of: {', '.join(PRESETS)}"
            ) from None
    if text is None:
        return PUBLISH_OPERATIONS
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [op for op in wanted if op not in PUBLISH_OPERATIONS]
    if unknown or not wanted:
        raise InvalidInput(
            f"--publish {text!r} names {', '.join(unknown) or 'nothing'}",
            f"use a comma-separated subset of {','.join(PUBLISH_OPERATIONS)}",
        )
    return tuple(op for op in PUBLISH_OPERATIONS if op in wanted)


def table_specs(
    tables: Sequence[QualifiedName], row_filters: Sequence[str], columns: Sequence[str]
) -> tuple[TableSpec, ...]:
    """Tables with the ``--row-filter 'TABLE:EXPR'`` and ``--columns 'TABLE:c1,c2'`` that
    name them; a filter or column list for a table not among ``tables`` is refused."""
    filters: dict[QualifiedName, str] = {}
    for text in row_filters:
        table, expr = names.split_table_prefix(text, "--row-filter")
        _require_listed(table, tables, "--row-filter")
        if table in filters:
            raise InvalidInput(f"two row filters for {table}", "combine them with AND")
        filters[table] = names.check_expression(expr)
    column_lists: dict[QualifiedName, tuple[str, ...]] = {}
    for text in columns:
        table, listed = names.split_table_prefix(text, "--columns")
        _require_listed(table, tables, "--columns")
        if table in column_lists:
            raise InvalidInput(f"two column lists for {table}", "give one --columns per table")
        cols = tuple(names.parse_identifier(c, "column name") for c in names.parse_list(listed))
        if len(set(cols)) != len(cols):
            raise InvalidInput(f"--columns for {table} names a column twice", "list it once")
        column_lists[table] = cols
    seen: set[QualifiedName] = set()
    specs = []
    for table in tables:
        if table in seen:
            raise InvalidInput(f"{table} is listed twice", "list each table once")
        seen.add(table)
        specs.append(
            TableSpec(
                schema_name=table.schema,
                name=table.name,
                row_filter=filters.get(table),
                columns=column_lists.get(table),
            )
        )
    return tuple(specs)


def _require_listed(table: QualifiedName, tables: Sequence[QualifiedName], option: str) -> None:
    if table not in tables:
        raise InvalidInput(
            f"{option} names {table}, which is not in --tables",
            f"add {table.short} to --tables, or fix the name in {option}",
        )


def build_spec(
    name: str,
    *,
    dbname: str = "postgres",
    tables: str | None = None,
    all_tables: bool = False,
    schemas: Sequence[str] = (),
    publish: str | None = None,
    preset: str | None = None,
    row_filters: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> PublicationSpec:
    """A publication from ``publication create``'s options, or a one-line reason why not."""
    names.check_name(name, "publication name")
    if all_tables and (tables or schemas):
        raise InvalidInput(
            "--all-tables cannot be combined with --tables or --schema",
            "give --all-tables alone, or list tables/schemas",
        )
    if not (all_tables or tables or schemas):
        raise InvalidInput("say what to publish", "give --tables a,b, --schema S or --all-tables")
    listed = names.parse_tables(tables) if tables else []
    if (row_filters or columns) and not listed:
        raise InvalidInput(
            "--row-filter and --columns apply to tables given with --tables",
            "list the tables with --tables",
        )
    return PublicationSpec(
        name=name,
        dbname=dbname,
        tables=table_specs(listed, row_filters, columns),
        all_tables=all_tables,
        schemas=tuple(names.parse_identifier(s, "schema name") for s in schemas),
        publish=parse_publish(publish, preset),
    )


# ---- what the server must support ------------------------------------------------------


def version_text(version_num: int) -> str:
    return f"{version_num // 10000}.{version_num % 10000}"


def features_needed(
    tables: Sequence[TableSpec], schemas: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """(feature, minimum server_version_num) for each feature the request uses."""
    needed = []
    if any(t.row_filter for t in tables):
        needed.append(("row filters (--row-filter)", PG15))
    if any(t.columns is not None for t in tables):
        needed.append(("column lists (--columns)", PG15))
    if schemas:
        needed.append(("publishing a schema (--schema, FOR TABLES IN SCHEMA)", PG15))
    return needed


def require_features(needed: Sequence[tuple[str, int]], version_num: int, node: str) -> None:
    """Refuse (nothing created) when the server is older than a feature needs."""
    for feature, minimum in needed:
        if version_num < minimum:
            raise Refused(
                f"{feature}: needs PostgreSQL {minimum // 10000} or later; "
                f"{node} runs PostgreSQL {version_text(version_num)}",
                "leave that option out, or upgrade that server first (pgherd upgrade)",
            )


class TableFacts(Frozen):
    """A user table as ``GET /logical/tables`` reports it."""

    schema_name: str
    name: str
    replica_identity: str
    has_primary_key: bool
    has_identity_index: bool
    rows_estimate: int

    @property
    def identity(self) -> TableIdentity:
        return TableIdentity(
            QualifiedName(self.schema_name, self.name),
            self.replica_identity,
            self.has_primary_key,
            self.has_identity_index,
        )


@dataclass(frozen=True)
class TableIdentity:
    """How a table identifies its rows to subscribers (pg_class.relreplident)."""

    table: QualifiedName
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    has_primary_key: bool
    has_identity_index: bool


def identity_warnings(
    tables: Sequence[TableIdentity], publish: Sequence[str], publication: str
) -> list[str]:
    """Tables whose updates and deletes cannot be replicated as published."""
    if "update" not in publish and "delete" not in publish:
        return []
    found = []
    for t in tables:
        if t.replica_identity == "f":
            continue
        usable = (t.replica_identity == "d" and t.has_primary_key) or (
            t.replica_identity == "i" and t.has_identity_index
        )
        if usable:
            continue
        found.append(
            f"{t.table} has no primary key or replica identity: while publication "
            f"{names.quote_ident(publication)} publishes updates and deletes, PostgreSQL "
            f"refuses UPDATE and DELETE on it (and a subscriber could not apply them) — "
            f"add a primary key (ALTER TABLE {t.table} ADD PRIMARY KEY (...)), or "
            f"ALTER TABLE {t.table} REPLICA IDENTITY FULL, or publish with --preset insert-only"
        )
    return found
