"""pgherd standby clone (switchover, promote and follow are in cli/operations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="Standbys: clone, switchover, promote, follow.")
app.command()(operations.switchover)
app.command()(operations.promote)
app.command()(operations.follow)


@app.command()
def clone(
    upstream: Annotated[str, typer.Option("--upstream", help="node to clone from")],
    node: Annotated[str, typer.Option("--node", help="name of the new standby")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="its data directory (default: from pgherd.yaml)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace what the data directory holds")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="PostgreSQL port, for a node not in the config")
    ] = None,
    api_port: Annotated[
        int | None, typer.Option("--api-port", help="agent API port, for a node not in the config")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="its address")] = "127.0.0.1",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clone NODE from UPSTREAM with pg_basebackup (WAL streamed, its own slot)."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import clone as quick_clone

    quick_clone.run(upstream, node, data_dir, force, port, api_port, host, config_file, as_json)
