"""pgherd cluster show|events, pgherd connstr."""

from __future__ import annotations

from typing import Annotated

import typer

from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The cluster as a whole.")
app.command()(operations.events)


@app.command()
def show(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every node: role, state, upstream, timeline, LSN and lag. Exits 3 when degraded."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import show as quick_show

    code = quick_show.run(config_file, as_json)
    if code:
        raise typer.Exit(code)


def connstr(
    node: NodeArg,
    replication: Annotated[
        bool, typer.Option("--replication", help="as the replication role (for pg_basebackup)")
    ] = False,
    config_file: ConfigOpt = None,
) -> None:
    """A libpq URI for NODE, for psql and scripts (the password comes from the passfile)."""
    from pgherd.cli.quick import connstr as quick_connstr

    quick_connstr.run(node, replication, config_file)


@app.command()
def cleanup(
    keep_days: Annotated[
        float, typer.Option("--keep-days", min=0, help="keep this many days of history")
    ],
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trim every agent's monitoring history (lag samples) to the last N days.
    Exits 3 when an agent could not be reached (the others are trimmed)."""
    from pgherd import config as config_mod
    from pgherd.clients.agent import fan_out
    from pgherd.clients.history import HistoryClient
    from pgherd.config import NodeConfig
    from pgherd.errors import AgentError, AgentUnreachable
    from pgherd.model import history

    config = load_config(config_file)
    token = config_mod.read_token(config)

    def trim(node: NodeConfig) -> history.CleanupResult:
        try:
            return HistoryClient(node, token).cleanup(keep_days)
        except (AgentUnreachable, AgentError) as exc:
            cutoff = history.cutoff(history.now(), keep_days)
            return history.CleanupResult(
                node=node.name, removed=0, kept=0, cutoff=cutoff, error=exc.message
            )

    results = fan_out(config.nodes, trim)
    if as_json:
        print_json(results)
    else:
        for r in results:
            if r.error:
                console.print(f"[red]✗[/] {r.node}: {r.error}", soft_wrap=True)
            else:
                console.print(
                    f"[green]✓[/] {r.node}: removed {r.removed} samples older than "
                    f"{r.cutoff.astimezone():%Y-%m-%d %H:%M:%S}, {r.kept} kept"
                )
    if any(r.error for r in results):
        raise typer.Exit(EXIT_DEGRADED)
