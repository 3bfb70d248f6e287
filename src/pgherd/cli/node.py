"""pgherd node start|stop|restart|rejoin, through the agents."""

from __future__ import annotations

from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import console, print_json
from pgherd.clients.agent import AgentClient
from pgherd.model.status import NodeStatus

app = typer.Typer(help="Start, stop, restart a node's PostgreSQL; rejoin it as a standby.")
app.command()(operations.rejoin)


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
