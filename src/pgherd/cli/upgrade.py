"""pgherd upgrade plan|start|status|cutover."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, RichReporter, console, print_json
from pgherd.model.jsonable import jsonable
from pgherd.model.readable import human_seconds

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(
    help="Major-version upgrades by logical replication into a new cluster.",
    no_args_is_help=True,
)

FromOpt = Annotated[str, typer.Option("--from", help="the node to upgrade (old version)")]
ToOpt = Annotated[str, typer.Option("--to", help="the new, empty node (newer version)")]


@app.command()
def plan(
    source: FromOpt,
    target: ToOpt,
    dbname: Annotated[str, typer.Option("--dbname")] = "postgres",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What an upgrade from SOURCE into TARGET will do, and what stands in its way."""
    from pgherd import config as config_mod
    from pgherd.logical import upgrade

    config = load_config(config_file)
    result = upgrade.plan(config, source, target, dbname, config_mod.read_token(config))
    if as_json:
        print_json(jsonable(result) | {"ok": result.ok})
    else:
        table = Table("Check", "Finding", "Fix")
        colours = {"ok": "green", "warning": "yellow", "error": "red"}
        for c in result.checks:
            table.add_row(f"[{colours[c.level]}]{c.level}[/]", c.text, c.fix)
        console.print(table)
        for number, step in enumerate(result.steps, 1):
            console.print(f"{number}. {step}", soft_wrap=True)
    if not result.ok:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def start(
    source: FromOpt,
    target: ToOpt,
    dbname: Annotated[str, typer.Option("--dbname")] = "postgres",
    config_file: ConfigOpt = None,
) -> None:
    """Copy the schema, publish every table on SOURCE and subscribe TARGET to it."""
    from pgherd import config as config_mod
    from pgherd.logical import upgrade

    config = load_config(config_file)
    upgrade.start(
        config, source, target, dbname, config_mod.read_token(config), RichReporter().step
    )
    console.print(f"follow it with: pgherd upgrade status --to {target}")


@app.command()
def status(
    target: ToOpt,
    dbname: Annotated[str | None, typer.Option("--dbname")] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The upgrade's phase: copying, catching up, ready for cut-over (or an error)."""
    from pgherd.cli.subscription import print_status
    from pgherd.logical import upgrade

    config = load_config(config_file)
    result = upgrade.status(config, target, dbname)
    if as_json:
        sub = result.subscription.model_dump(mode="json") if result.subscription else None
        print_json({"phase": str(result.phase), "subscription": sub})
    else:
        console.print(f"upgrade into {target}: [bold]{result.phase}[/]")
        if result.subscription is not None:
            print_status(result.subscription)
    if result.phase == "error":
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def cutover(
    target: ToOpt,
    dbname: Annotated[str | None, typer.Option("--dbname")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to wait for writers and for the lag")
    ] = 60,
    margin: Annotated[int, typer.Option("--margin", help="sequence safety margin")] = 1000,
    config_file: ConfigOpt = None,
) -> None:
    """Stop writes on the old side, drain the lag to zero, sync sequences, detach."""
    from pgherd import config as config_mod
    from pgherd.logical import upgrade

    config = load_config(config_file)
    report = upgrade.cutover(
        config, target, dbname, config_mod.read_token(config), timeout, margin, RichReporter().step
    )
    console.print(
        f"\ncut-over done in {human_seconds(report.seconds)}: point clients at {report.target}. "
        f"{report.source} stays read-only (undo: ALTER SYSTEM RESET "
        "default_transaction_read_only; SELECT pg_reload_conf())",
        soft_wrap=True,
    )
