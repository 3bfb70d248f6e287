"""pgherd agent run."""

from __future__ import annotations

from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt

app = typer.Typer(help="The per-node daemon: owns its PostgreSQL, serves the HTTP API.")


@app.command()
def run(
    node: Annotated[str, typer.Option("--node", help="this node's name in pgherd.yaml")],
    config_file: ConfigOpt = None,
) -> None:
    """Run the agent of NODE in the foreground (logs to stderr)."""
    from pgherd.ha import agent as agent_mod  # FastAPI and uvicorn: only the agent needs them

    agent_mod.run(config_mod.config_path(config_file), node)
