"""pgherd cluster show|events, pgherd connstr."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from pgherd import config as config_mod
from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.model.duration import human_duration, parse_duration
from pgherd.model.readable import human_seconds

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


@app.command()
def pause(
    duration: Annotated[
        str | None,
        typer.Option("--for", help="end it by itself after this long (30m, 2h, 1h30m)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Maintenance mode: the agents keep PostgreSQL running and report, but take no
    automatic action (no failover, no restart in place, no rejoin) until resumed."""
    from pgherd.ops import maintenance
    from pgherd.ops.context import requested_by
    from pgherd.ops.events import event_log

    seconds = parse_duration(duration) if duration is not None else None
    config = load_config(config_file)
    maintenance.require_automatic(config)
    events = event_log(config, config_mod.read_token(config))
    result = maintenance.pause(config, seconds, requested_by(), events)
    if as_json:
        print_json(result)
        return
    end = "until pgherd cluster resume" if seconds is None else f"for {human_duration(seconds)}"
    console.print(
        f"cluster {config.cluster} in maintenance mode {end}: the agents keep PostgreSQL "
        "running and take no automatic action",
        soft_wrap=True,
    )


@app.command()
def resume(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Leave maintenance mode: automatic failover is back on."""
    from pgherd.ops import maintenance
    from pgherd.ops.context import requested_by
    from pgherd.ops.events import event_log

    config = load_config(config_file)
    maintenance.require_automatic(config)
    events = event_log(config, config_mod.read_token(config))
    result = maintenance.resume(config, requested_by(), events)
    if as_json:
        print_json(result)
    elif result.before is None:
        console.print(f"cluster {config.cluster} was not in maintenance mode; nothing changed")
    else:
        console.print(f"cluster {config.cluster}: automatic failover is back on")


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


@app.command()
def restart(
    every_node: Annotated[
        bool, typer.Option("--all", help="restart every node, not only those with pending settings")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the plan; change nothing")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds each node may take to stream again")
    ] = 120.0,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rolling restart for settings pending a restart: standbys one at a time, then a
    switchover, then the old primary. Refused (nothing done) when it cannot be done
    safely: a node down, a standby not streaming, no standby to take the primary's role."""
    from pgherd.cli.operations import _operation
    from pgherd.errors import InvalidInput
    from pgherd.ops import restart as ops

    op = _operation(config_file, as_json)
    result = ops.rolling(op, every_node=every_node, dry_run=dry_run, timeout=timeout)
    if as_json:
        print_json(result)
    elif dry_run or not result.plan:
        if result.plan:
            console.print("dry run: the rolling restart would")
            for number, line in enumerate(result.plan, 1):
                console.print(f"  {number}. {escape(line)}", soft_wrap=True)
        console.print(escape(result.reason), soft_wrap=True)
    else:
        console.print(
            f"rolling restart done in {human_seconds(result.seconds)}: {escape(result.reason)}",
            soft_wrap=True,
        )
    if dry_run and result.outcome == "refused":
        raise InvalidInput(f"rolling restart refused: {result.reason}", result.hint)
