"""pgherd agent run."""

from __future__ import annotations

from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The per-node daemon: owns its PostgreSQL, serves the HTTP API.")


@app.command()
def run(
    node: Annotated[str, typer.Option("--node", help="this node's name in pgherd.yaml")],
    config_file: ConfigOpt = None,
) -> None:
    """Run the agent of NODE in the foreground (logs to stderr)."""
    from pgherd.ha import agent as agent_mod  # FastAPI and uvicorn: only the agent needs them

    agent_mod.run(config_mod.config_path(config_file), node)


@app.command()
def haproxy(
    bind: Annotated[str, typer.Option("--bind", help="the address HAProxy listens on")] = "*",
    primary_port: Annotated[
        int, typer.Option("--primary-port", min=1, max=65535, help="the port for writes")
    ] = 5000,
    replica_port: Annotated[
        int, typer.Option("--replica-port", min=1, max=65535, help="the port for reads")
    ] = 5001,
    config_file: ConfigOpt = None,
) -> None:
    """Print an HAProxy configuration for this cluster: writes go to the primary that holds
    the leader lease, reads to streaming standbys, both judged by the agents' checks."""
    from pgherd.cli.options import load_config
    from pgherd.errors import InvalidInput
    from pgherd.model import haproxy as haproxy_model

    if primary_port == replica_port:
        raise InvalidInput(
            f"--primary-port and --replica-port are both {primary_port}",
            "give reads and writes two different ports",
        )
    config = load_config(config_file)
    typer.echo(
        haproxy_model.render(config.cluster, config.nodes, bind, primary_port, replica_port),
        nl=False,
    )
