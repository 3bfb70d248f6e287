"""pgherd standby clone (switchover, promote and follow are in cli/operations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt
from pgherd.cli.output import RichReporter, console, print_json
from pgherd.clients.agent import AgentClient
from pgherd.config import ClusterConfig
from pgherd.errors import InvalidInput, UnknownNode
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.pg import osuser

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
    from pgherd.physical import clone as clone_mod

    path = config_mod.config_path(config_file)
    config = config_mod.load(path)
    config = _with_node(config, path, node, data_dir, port, api_port, host)
    upstream_status = AgentClient(config.node(upstream)).status()
    with RichReporter().progress(f"clone {node} from {upstream}") as on_progress:
        result = clone_mod.clone(config, node, upstream_status, force, on_progress)
    if as_json:
        print_json(result)
        return
    console.print(
        f"cloned {node} from {upstream}: {human_bytes(result.bytes_copied)} in "
        f"{human_seconds(result.seconds)}; slot {result.slot!r} "
        f"{'created' if result.slot_created else 'reused'} on {upstream}"
    )
    console.print(f"start it with: pgherd agent run --node {node} -c {path}")


def _with_node(
    config: ClusterConfig,
    path: Path,
    name: str,
    data_dir: Path | None,
    port: int | None,
    api_port: int | None,
    host: str,
) -> ClusterConfig:
    """The config, with ``name`` added to it (and saved) when it is not listed yet."""
    try:
        existing = config.node(name)
    except UnknownNode:
        existing = None
    if existing is not None:
        if data_dir is not None and data_dir.absolute() != existing.data_dir:
            raise InvalidInput(
                f"{name}'s data_dir in {path} is {existing.data_dir}, not {data_dir}",
                "omit --data-dir, or change data_dir in the config",
            )
        return config
    config_mod.check_node_name(name)
    if data_dir is None or port is None or api_port is None:
        raise InvalidInput(
            f"{name} is not in {path}",
            "add it there, or pass --data-dir, --port and --api-port to add it",
        )
    new = {
        "name": name,
        "host": host,
        "port": port,
        "api_host": host,
        "api_port": api_port,
        "data_dir": str(data_dir.absolute()),
    }
    # Validated with the whole config: a bad port or path is a one-line ConfigError.
    updated = config_mod.parse(
        config.model_dump(mode="json") | {"nodes": [*config.model_dump(mode="json")["nodes"], new]},
        source=str(path),
    )
    osuser.resolve(config.os_user).write_file(path, config_mod.dump(updated))
    return updated
