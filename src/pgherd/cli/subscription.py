"""pgherd subscription create|drop|list|status|enable|disable|refresh|sync-sequences."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.cli.publication import client
from pgherd.model.readable import human_bytes, human_seconds

if TYPE_CHECKING:
    from pgherd.model.subscription import SubscriptionInfo, SubscriptionStatus

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(
    help="Subscriptions: a node receiving publications from another node or cluster.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="subscription name (any text; quoted safely)")]
NodeOpt = Annotated[str, typer.Option("--node", help="the subscribing node")]
DbOpt = Annotated[
    str | None, typer.Option("--dbname", help="database of the subscription (if ambiguous)")
]


def info_line(info: SubscriptionInfo) -> str:
    state = "enabled" if info.enabled else "disabled"
    return (
        f"subscription {info.name!r} on database {info.dbname!r} ({state}): "
        f"{', '.join(info.publications)} from {info.host}:{info.port}/{info.source_dbname} "
        f"as {info.source_user}, slot {info.slot_name}"
    )


@app.command()
def create(
    name: NameArg,
    node: NodeOpt,
    source: Annotated[
        str, typer.Option("--from", help="a node of the config, or a libpq URI of another cluster")
    ],
    publication: Annotated[
        list[str], typer.Option("--publication", help="publication(s) to receive (repeatable)")
    ],
    copy_data: Annotated[
        bool, typer.Option("--copy-data/--no-copy-data", help="copy the tables' rows first")
    ] = True,
    sync_schema: Annotated[
        bool,
        typer.Option(
            "--sync-schema", help="create missing tables from the publisher's definitions"
        ),
    ] = False,
    enabled: Annotated[bool, typer.Option("--enabled/--disabled")] = True,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="none: skip changes that came from elsewhere (PG 16+)"),
    ] = None,
    forward: Annotated[
        bool,
        typer.Option(
            "--forward",
            help="take what the publisher received from elsewhere too (a cascade A → B → C)",
        ),
    ] = False,
    dbname: Annotated[str, typer.Option("--dbname", help="database here")] = "postgres",
    source_dbname: Annotated[
        str | None, typer.Option("--source-dbname", help="database on the publisher (node source)")
    ] = None,
    passfile: Annotated[
        Path | None,
        typer.Option("--passfile", help="passfile for a URI source (owned by the OS user, 0600)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe NODE to publications of SOURCE, with the replication role and a passfile.
    Refused when it would close a loop (a change coming back to the node that made it)."""
    from pgherd import config as config_mod
    from pgherd.logical import loops
    from pgherd.logical import source as source_mod

    config = load_config(config_file)
    spec = source_mod.subscription_spec(
        config,
        node,
        name,
        source,
        publication,
        copy_data=copy_data,
        sync_schema=sync_schema,
        enabled=enabled,
        origin=origin,
        dbname=dbname,
        source_dbname=source_dbname,
        passfile=passfile,
        forward=forward,
    )
    loops.refuse_loops(config, config_mod.read_token(config), node, spec)
    info = client(config_file, node).create_subscription(spec)
    if as_json:
        print_json(info)
    else:
        console.print(f"[green]✓[/] created {info_line(info)}", soft_wrap=True)


@app.command(name="list")
def list_(
    node: Annotated[str | None, typer.Option("--node", help="only this node")] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscriptions of every node (or one)."""
    from pgherd.clients.logical import LogicalClient

    config = load_config(config_file)
    nodes = [config.node(node)] if node else list(config.nodes)
    found = {n.name: LogicalClient(n).subscriptions() for n in nodes}
    if as_json:
        print_json(found)
        return
    table = Table("Node", "Subscription", "Database", "State", "Publications", "Source", "Worker")
    for name, infos in found.items():
        for info in infos:
            table.add_row(
                name,
                info.name,
                info.dbname,
                "enabled" if info.enabled else "disabled",
                ", ".join(info.publications),
                f"{info.host}:{info.port}/{info.source_dbname}",
                str(info.worker_pid or "-"),
            )
    console.print(table)


@app.command()
def status(
    name: NameArg,
    node: NodeOpt,
    dbname: DbOpt = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each table's sync state, apply lag, the worker, and the last error with a hint.
    Exits 3 when the subscription is failing."""
    from pgherd.model.subscription import Health

    result = client(config_file, node, acting=False).subscription_status(name, dbname)
    if as_json:
        print_json(result)
    else:
        print_status(result)
    if result.health is Health.ERROR:
        raise typer.Exit(EXIT_DEGRADED)


def print_status(s: SubscriptionStatus) -> None:
    from pgherd.model.names import QualifiedName

    console.print(f"{info_line(s.subscription)}", soft_wrap=True)
    colour = {"replicating": "green", "error": "red"}.get(s.health, "yellow")
    console.print(
        f"health: [{colour}]{s.health}[/]   worker pid: {s.subscription.worker_pid or '-'}   "
        f"lag: {human_bytes(s.lag_bytes)}, {human_seconds(s.lag_seconds)}   "
        f"received: {s.received_lsn or '-'}   applied (origin): {s.origin_lsn or '-'}"
    )
    if s.publisher_note:
        console.print(f"[yellow]![/] {s.publisher_note}", soft_wrap=True)
    table = Table("Table", "State", "LSN")
    for t in s.tables:
        table.add_row(QualifiedName(t.schema_name, t.name).short, t.state_text, str(t.lsn or ""))
    console.print(table)
    if s.apply_error_count is not None:
        console.print(f"errors so far: apply {s.apply_error_count}, sync {s.sync_error_count}")
    err = s.last_error
    if err is not None:
        label = "[red]last error[/]" if err.current else "last error (resolved)"
        console.print(f"{label} at {err.time}: {err.message}", soft_wrap=True)
        if err.detail:
            console.print(f"  {err.detail}", soft_wrap=True)
        if err.current:
            console.print(f"  [bold]hint:[/] {err.hint}", soft_wrap=True)


def _action(
    action: str, name: str, node: str, dbname: str | None, config_file: Path | None
) -> None:
    info = client(config_file, node).subscription_action(action, name, dbname)
    console.print(f"[green]✓[/] {action}d {info_line(info)}".replace("refreshd", "refreshed"))


@app.command()
def enable(
    name: NameArg, node: NodeOpt, dbname: DbOpt = None, config_file: ConfigOpt = None
) -> None:
    """Start receiving again."""
    _action("enable", name, node, dbname, config_file)


@app.command()
def disable(
    name: NameArg, node: NodeOpt, dbname: DbOpt = None, config_file: ConfigOpt = None
) -> None:
    """Stop receiving (the publisher keeps the changes in its slot meanwhile)."""
    _action("disable", name, node, dbname, config_file)


@app.command()
def refresh(
    name: NameArg, node: NodeOpt, dbname: DbOpt = None, config_file: ConfigOpt = None
) -> None:
    """Pick up tables added to the publications (their rows are copied)."""
    _action("refresh", name, node, dbname, config_file)


@app.command()
def drop(
    name: NameArg,
    node: NodeOpt,
    local_only: Annotated[
        bool,
        typer.Option("--local-only", help="publisher gone: drop here, leave its slot behind"),
    ] = False,
    dbname: DbOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Drop the subscription and its replication slot on the publisher."""
    message = client(config_file, node).drop_subscription(name, dbname, local_only)
    console.print(f"[green]✓[/] {message}", soft_wrap=True)


@app.command(name="sync-sequences")
def sync_sequences(
    name: NameArg,
    node: NodeOpt,
    margin: Annotated[
        int, typer.Option("--margin", min=0, help="increments to add past the publisher's value")
    ] = 1000,
    dbname: DbOpt = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move the subscriber's sequences past the publisher's (part of any cut-over)."""
    result = client(config_file, node).sync_sequences(name, dbname, margin)
    if as_json:
        print_json(result)
        return
    table = Table("Sequence", "Publisher", "Subscriber", "Set to", "Note")
    for s in result:
        table.add_row(
            f"{s.schema_name}.{s.name}",
            str(s.publisher_value if s.publisher_value is not None else "-"),
            str(s.subscriber_value if s.subscriber_value is not None else "-"),
            str(s.new_value if s.new_value is not None else "-"),
            s.note,
        )
    console.print(table)
