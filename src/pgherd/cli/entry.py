"""The ``pgherd`` program's entry point.

``pgherd wal push|fetch`` run once per WAL segment as PostgreSQL's archive and restore
commands, so they are sent to :mod:`pgherd.archive.walcmd` before Typer, rich and
pydantic are imported (0.6 s of start-up for the full CLI against ~0.05 s).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "wal" and args[1] in ("push", "fetch"):
        from pgherd.archive import walcmd

        sys.exit(walcmd.main(args[1:]))
    # pgherd uses no pydantic plugin, and looking for plugins reads every installed
    # package's metadata: ~25 ms of every command's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from pgherd.cli.main import main as full_cli

    full_cli()
