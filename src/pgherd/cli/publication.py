"""pgherd publication create|alter|drop|list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import console, print_json

if TYPE_CHECKING:
    from pgherd.clients.logical import LogicalClient
    from pgherd.model.publication import PublicationInfo, PublicationResult

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(
    help="Publications: which tables, rows, columns and operations a node sends.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="publication name (any text; quoted safely)")]
NodeOpt = Annotated[str, typer.Option("--node", help="the publishing node")]
DbOpt = Annotated[str, typer.Option("--dbname", help="database of the publication")]
TablesOpt = Annotated[
    str | None,
    typer.Option("--tables", help='comma-separated tables: a,sales.b,"We ird"."na;me"'),
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option("--row-filter", help="'TABLE:EXPR': only rows where EXPR holds (PG 15+)"),
]
ColumnsOpt = Annotated[
    list[str] | None,
    typer.Option("--columns", help="'TABLE:c1,c2': only these columns (PG 15+)"),
]
PublishOpt = Annotated[
    str | None,
    typer.Option("--publish", help="operations to send: insert,update,delete,truncate"),
]
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", help="default (everything) or insert-only, as pglogical's sets"),
]


def client(config_file: ConfigOpt, node: str, acting: bool = True) -> LogicalClient:
    from pgherd import config as config_mod
    from pgherd.clients.logical import LogicalClient

    config = load_config(config_file)
    return LogicalClient(config.node(node), config_mod.read_token(config) if acting else None)


def publication_json(info: PublicationInfo) -> dict[str, Any]:
    return info.model_dump(mode="json")


def show_result(result: PublicationResult, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    info = result.publication
    console.print(
        f"[green]✓[/] {verb} publication {info.name!r} on database {info.dbname!r}: "
        f"{len(info.tables)} tables, publish {','.join(info.publish)}",
        soft_wrap=True,
    )
    console.print(publications_table([info]))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def publications_table(infos: list[PublicationInfo], node: str | None = None) -> Table:
    from pgherd.model.names import QualifiedName

    table = Table(title=f"publications on {node}" if node else None, title_justify="left")
    for column in ("Publication", "Publish", "Table", "Row filter", "Columns"):
        table.add_column(column)
    for info in infos:
        scope = "ALL TABLES" if info.all_tables else ""
        if info.schemas:
            scope = "schemas " + ", ".join(info.schemas)
        rows = info.tables or ()
        if not rows:
            table.add_row(info.name, ",".join(info.publish), scope or "-", "", "")
        for i, t in enumerate(rows):
            table.add_row(
                info.name if i == 0 else "",
                ",".join(info.publish) if i == 0 else "",
                QualifiedName(t.schema_name, t.name).short,
                t.row_filter or "",
                ", ".join(t.columns) if t.columns else "all",
                end_section=i == len(rows) - 1,
            )
    return table


@app.command()
def create(
    name: NameArg,
    node: NodeOpt,
    tables: TablesOpt = None,
    all_tables: Annotated[bool, typer.Option("--all-tables", help="every table")] = False,
    schema: Annotated[
        list[str] | None, typer.Option("--schema", help="every table of a schema (PG 15+)")
    ] = None,
    publish: PublishOpt = None,
    preset: PresetOpt = None,
    row_filter: FilterOpt = None,
    columns: ColumnsOpt = None,
    dbname: DbOpt = "postgres",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a publication; the replication role gets SELECT on its tables."""
    from pgherd.model.publication import build_spec

    spec = build_spec(
        name,
        dbname=dbname,
        tables=tables,
        all_tables=all_tables,
        schemas=schema or [],
        publish=publish,
        preset=preset,
        row_filters=row_filter or [],
        columns=columns or [],
    )
    show_result(client(config_file, node).create_publication(spec), "created", as_json)


@app.command()
def alter(
    name: NameArg,
    node: NodeOpt,
    add_tables: Annotated[
        str | None, typer.Option("--add-tables", help="tables to add (a,b)")
    ] = None,
    drop_tables: Annotated[
        str | None, typer.Option("--drop-tables", help="tables to stop publishing")
    ] = None,
    add_schema: Annotated[list[str] | None, typer.Option("--add-schema")] = None,
    drop_schema: Annotated[list[str] | None, typer.Option("--drop-schema")] = None,
    publish: PublishOpt = None,
    preset: PresetOpt = None,
    row_filter: Annotated[
        list[str] | None, typer.Option("--row-filter", help="'TABLE:EXPR' for an added table")
    ] = None,
    columns: Annotated[
        list[str] | None, typer.Option("--columns", help="'TABLE:c1,c2' for an added table")
    ] = None,
    dbname: DbOpt = "postgres",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or drop tables and schemas, or change the operations published."""
    from pgherd.errors import InvalidInput
    from pgherd.model import names
    from pgherd.model.publication import PublicationAlter, TableSpec, parse_publish, table_specs

    names.check_name(name, "publication name")
    added = names.parse_tables(add_tables) if add_tables else []
    if (row_filter or columns) and not added:
        raise InvalidInput(
            "--row-filter and --columns apply to tables added with --add-tables",
            "to change a table's filter, drop it and add it again",
        )
    dropped = names.parse_tables(drop_tables) if drop_tables else []
    new_publish = parse_publish(publish, preset) if (publish or preset) else None
    if not (added or dropped or add_schema or drop_schema or new_publish):
        raise InvalidInput(
            "nothing to change",
            "give --add-tables, --drop-tables, --add-schema, --drop-schema or --publish",
        )
    change = PublicationAlter(
        name=name,
        dbname=dbname,
        add_tables=table_specs(added, row_filter or [], columns or []),
        drop_tables=tuple(TableSpec(schema_name=t.schema, name=t.name) for t in dropped),
        add_schemas=tuple(names.parse_identifier(s, "schema name") for s in add_schema or []),
        drop_schemas=tuple(names.parse_identifier(s, "schema name") for s in drop_schema or []),
        publish=new_publish,
    )
    show_result(client(config_file, node).alter_publication(change), "altered", as_json)


@app.command()
def drop(
    name: NameArg, node: NodeOpt, dbname: DbOpt = "postgres", config_file: ConfigOpt = None
) -> None:
    """Drop a publication (its subscribers stop receiving; drop them too)."""
    console.print(f"[green]✓[/] {client(config_file, node).drop_publication(name, dbname)}")


@app.command(name="list")
def list_(
    node: Annotated[str | None, typer.Option("--node", help="only this node")] = None,
    dbname: DbOpt = "postgres",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publications with their tables, row filters and column lists."""
    from pgherd.clients.logical import LogicalClient

    config = load_config(config_file)
    nodes = [config.node(node)] if node else list(config.nodes)
    found = {n.name: LogicalClient(n).publications(dbname) for n in nodes}
    if as_json:
        print_json({name: [publication_json(i) for i in infos] for name, infos in found.items()})
        return
    for name, infos in found.items():
        if infos:
            console.print(publications_table(infos, name))
        else:
            console.print(f"{name}: no publications in database {dbname!r}")
