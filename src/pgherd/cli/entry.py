"""The ``pgherd`` program's entry point: a thin dispatcher.

What runs often starts without the full CLI (Typer builds pydantic adapters for every
option; Typer, rich and pydantic take ~0.4 s to import, against ~0.05 s here):

- ``pgherd wal push|fetch``, PostgreSQL's archive and restore commands, run once per WAL
  segment: :mod:`pgherd.archive.walcmd`;
- the quick commands (``cluster show``, ``connstr`` … see :mod:`pgherd.cli.quick`) when
  their options parse without doubt (:mod:`pgherd.cli.quick.args`).

Everything else, ``--help`` included, goes to the full CLI (:mod:`pgherd.cli.main`).

The installed program and ``python -m pgherd`` enter through :func:`program`, which also
spares a quick look at the cluster what a process that exits at once does not need: the
cyclic garbage collector (it runs dozens of times while ~160 modules are imported) and the
interpreter's teardown (freeing every module and object one by one), together ~10 % of
``cluster show`` (issue 21); and hands the GIL between its threads every 1 ms instead of
every 5 ms, so that a thread whose agent answered does not wait for one that works.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from pgherd.cli.quick.args import Parsed


def program() -> None:
    """The ``pgherd`` program: :func:`main` in a process of its own.

    The cyclic collector is off until the command is known: a read-only quick command
    (:attr:`~pgherd.cli.quick.args.Command.read_only`) runs without it (it lives a fraction
    of a second; reference counting frees what it drops), with a 1 ms switch interval, and
    leaves through :func:`exit_now`; anything else gets the collector back before it runs
    and exits as usual. Tests call :func:`main`, which does none of this, in their own
    process."""
    gc.disable()
    main(own_process=True)


def main(own_process: bool = False) -> None:
    # pgherd uses no pydantic plugin, and looking for plugins reads every installed
    # package's metadata: ~25 ms of every command that imports pydantic.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "wal" and args[1] in ("push", "fetch"):
        gc.enable()
        from pgherd.archive import walcmd

        sys.exit(walcmd.main(args[1:]))
    from pgherd.cli.quick import args as quick_args

    parsed = quick_args.parse(args)
    if parsed is not None:
        if not parsed.command.read_only:
            gc.enable()
        elif own_process:
            # Its threads wait on agents and the store while another thread works (imports
            # the store's client, parses an answer): each time one of them wakes it needs
            # the GIL, which Python hands over after at most this interval (5 ms by default;
            # three such threads beside a busy one: 55 ms to do 10 ms of waiting at 5 ms,
            # 22 ms at 1 ms, measured here).
            sys.setswitchinterval(0.001)
        code = run_quick(parsed)
        if own_process and parsed.command.read_only:
            exit_now(code)
        sys.exit(code)
    gc.enable()
    from pgherd.cli.main import main as full_cli

    full_cli()


def exit_now(code: int) -> NoReturn:
    """End a read-only command's process with ``code`` once its output is out, without the
    interpreter's teardown: it wrote no file it has not closed, holds no lock, registered
    nothing to run at exit, and every thread it started has ended. If the output cannot be
    flushed (a closed pipe), the usual exit reports it as it always did."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


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
