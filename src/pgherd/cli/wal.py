"""pgherd wal push|fetch|switch.

``push`` and ``fetch`` are listed here for ``--help``; when PostgreSQL runs them,
``pgherd.cli.entry`` hands them to :mod:`pgherd.archive.walcmd` before this module (and
Typer) is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import console, print_json

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="WAL: archive_command, restore_command, switching segments.")

ArchiveOpt = Annotated[
    Path | None, typer.Option("--archive", help="the archive directory (instead of -c)")
]


def _walcmd(args: list[str], archive: Path | None, config_file: Path | None) -> None:
    from pgherd.archive import walcmd

    if archive is not None:
        args += ["--archive", str(archive)]
    elif config_file is not None:
        args += ["--config", str(config_file)]
    raise typer.Exit(walcmd.main(args))


@app.command()
def push(
    path: Annotated[Path, typer.Argument(help="the WAL file (%p)")],
    archive: ArchiveOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Archive one WAL file: archive_command = 'pgherd wal push %p --archive DIR'."""
    _walcmd(["push", str(path)], archive, config_file)


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="the WAL file name (%f)")],
    destination: Annotated[Path, typer.Argument(help="where to write it (%p)")],
    archive: ArchiveOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Restore one WAL file: restore_command = 'pgherd wal fetch %f %p --archive DIR'.
    Exit 1: not archived; 126: corrupt or missing in the middle (recovery must stop)."""
    _walcmd(["fetch", name, str(destination)], archive, config_file)


@app.command()
def switch(
    node: Annotated[
        str | None, typer.Option("--node", help="the primary (default: found by pgherd)")
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the primary's current WAL segment so it is archived now (pg_switch_wal)."""
    from pgherd.archive.backup import source_status
    from pgherd.clients.archive import ArchiveAgentClient

    config = load_config(config_file)
    target = config.node(source_status(config, node).name)
    result = ArchiveAgentClient(target, config_mod.read_token(config)).switch_wal()
    if as_json:
        print_json(result)
    else:
        console.print(f"{target.name}: switched WAL at {result.lsn}; {result.segment} is due")
