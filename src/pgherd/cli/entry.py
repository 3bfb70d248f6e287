"""The ``pgherd`` program's entry point: a thin dispatcher.

What runs often starts without the full CLI (Typer builds pydantic adapters for every
option; Typer, rich and pydantic take ~0.4 s to import, against ~0.05 s here):

- ``pgherd wal push|fetch``, PostgreSQL's archive and restore commands, run once per WAL
  segment: :mod:`pgherd.archive.walcmd`;
- the quick commands (``cluster show``, ``connstr`` … see :mod:`pgherd.cli.quick`) when
  their options parse without doubt (:mod:`pgherd.cli.quick.args`).

Everything else, ``--help`` included, goes to the full CLI (:mod:`pgherd.cli.main`).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgherd.cli.quick.args import Parsed


def main() -> None:
    # pgherd uses no pydantic plugin, and looking for plugins reads every installed
    # package's metadata: ~25 ms of every command that imports pydantic.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "wal" and args[1] in ("push", "fetch"):
        from pgherd.archive import walcmd

        sys.exit(walcmd.main(args[1:]))
    from pgherd.cli.quick import args as quick_args

    parsed = quick_args.parse(args)
    if parsed is not None:
        sys.exit(run_quick(parsed))
    from pgherd.cli.main import main as full_cli

    full_cli()


def run_quick(parsed: Parsed) -> int:
    """Run a quick command; errors as the full CLI prints them (one line, exit 1)."""
    from pgherd.cli.output import EXIT_ERROR, error
    from pgherd.errors import PgherdError

    try:
        module = importlib.import_module(parsed.command.module)
        code: int = module.run(**parsed.values)
    except PgherdError as exc:
        error(exc.one_line())
        return EXIT_ERROR
    except OSError as exc:  # a file or directory the command could not use, in one line
        where = f": {exc.filename}" if exc.filename else ""
        error(f"{exc.strerror or type(exc).__name__}{where}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return code
