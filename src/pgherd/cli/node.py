"""pgherd node start|stop|restart|rejoin, through the agents."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from pgherd import config as config_mod
from pgherd.cli import adopt, operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import console, print_json
from pgherd.clients.agent import AgentClient
from pgherd.model.status import NodeStatus

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(
    help="Start, stop, restart a node's PostgreSQL; rejoin it as a standby; check its health; "
    "remove it."
)
app.command()(operations.rejoin)
app.command()(adopt.adopt)


def _client(config_file: ConfigOpt, node: str) -> AgentClient:
    config = load_config(config_file)
    return AgentClient(config.node(node), config_mod.read_token(config))


def _report(status: NodeStatus, as_json: bool) -> None:
    if as_json:
        print_json(status)
    else:
        console.print(f"{status.name}: PostgreSQL {status.state} ({status.role})")


@app.command()
def start(node: NodeArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Start NODE's PostgreSQL and keep it running."""
    _report(_client(config_file, node).start_postgres(), as_json)


@app.command()
def stop(
    node: NodeArg,
    mode: Annotated[
        str, typer.Option("--mode", help="smart, fast (default) or immediate")
    ] = "fast",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop NODE's PostgreSQL; the agent keeps it stopped until told otherwise."""
    if mode not in ("smart", "fast", "immediate"):
        raise typer.BadParameter("use smart, fast or immediate", param_hint="--mode")
    _report(_client(config_file, node).stop_postgres(mode), as_json)


@app.command()
def restart(node: NodeArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Restart NODE's PostgreSQL (fast shutdown, then start)."""
    _report(_client(config_file, node).restart_postgres(), as_json)


@app.command()
def check(
    node: NodeArg,
    nagios: Annotated[
        bool, typer.Option("--nagios", help="one line with perfdata, as Nagios plugins print")
    ] = False,
    warning_lag: Annotated[str, typer.Option("--warning-lag", help="standby lag")] = "16MB",
    critical_lag: Annotated[str, typer.Option("--critical-lag")] = "256MB",
    warning_slot: Annotated[
        str, typer.Option("--warning-slot", help="WAL a replication slot retains")
    ] = "1GB",
    critical_slot: Annotated[str, typer.Option("--critical-slot")] = "8GB",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """NODE's health for monitoring systems: agent, PostgreSQL, role, lag, slots, archive.
    Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the Nagios plugins' convention)."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import check as quick_check

    raise typer.Exit(
        quick_check.run(
            node,
            nagios,
            warning_lag,
            critical_lag,
            warning_slot,
            critical_slot,
            config_file,
            as_json,
        )
    )


@app.command()
def remove(
    node: Annotated[str, typer.Argument(help="the node leaving the cluster", show_default=False)],
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove NODE from the cluster: drop the replication slots kept for it and its member
    key in the store. Refused while it is the leader or its agent still runs; its data
    directory is left alone. Then remove it from pgherd.yaml on every host and run
    pgherd agent reload."""
    from pgherd.cli.operations import _operation
    from pgherd.ops.remove import remove as remove_node

    result = remove_node(_operation(config_file, as_json), node)
    if as_json:
        print_json(result)
        return
    if not result.steps:
        console.print(f"{node}: nothing left to remove", soft_wrap=True)
    else:
        console.print(f"removed {node} from the cluster", soft_wrap=True)
    for warning in result.warnings:
        console.print(f"[yellow]![/] {escape(warning)}", soft_wrap=True)
