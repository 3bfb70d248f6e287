"""How the CLI prints: rich for people, plain JSON for scripts, one-line errors.

Importing this module does not import rich (the quick commands print without it, see
cli/text.py): ``console`` and ``err_console`` are made when first used.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from pgherd.cli.text import Printer, Span, is_terminal
from pgherd.model.jsonable import jsonable

if TYPE_CHECKING:
    from rich.console import Console

    from pgherd.pg.basebackup import Progress as CopyProgress

    console: Console
    err_console: Console


def _width(stream: Any) -> int | None:
    """Rich cuts tables to 80 columns when it does not write to a terminal, which turns
    LSNs and states into "0/402…" in logs and pipes: print those at full width instead
    (``COLUMNS`` still decides when it is set)."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


def make_console(stream: TextIO) -> Console:
    """A console that writes to ``stream`` itself (a Printer's)."""
    from rich.console import Console

    return Console(file=stream, highlight=False, width=_width(stream))


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console``, made (and rich imported) on first use. Like rich's
    own default, they write to whatever ``sys.stdout`` and ``sys.stderr`` are when they
    print, not to the streams of the moment they were made."""
    if name in ("console", "err_console"):
        from rich.console import Console

        stderr = name == "err_console"
        made = Console(
            stderr=stderr, highlight=False, width=_width(sys.stderr if stderr else sys.stdout)
        )
        globals()[name] = made
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _console(name: str) -> Console:
    made: Console = globals().get(name) or __getattr__(name)
    return made


EXIT_ERROR = 1
EXIT_DEGRADED = 3


def print_json(data: Any) -> None:
    """What every ``--json`` prints: ``data`` (models, dataclasses, results) in the one
    JSON form of :func:`pgherd.model.jsonable.jsonable`."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def error(text: str) -> None:
    """``error: TEXT`` on stderr, in bold red on a terminal. The text may hold
    PostgreSQL's own messages or user input: it is never read as markup."""
    if not is_terminal(sys.stderr):
        sys.stderr.write(f"error: {text}\n")
        return
    from rich.markup import escape

    _console("err_console").print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)


class RichReporter:
    """Steps as check-marked lines; copies as progress bars with size, rate and ETA."""

    def step(self, text: str) -> None:
        """``✓ text``: rich (and the tick in green) on a terminal only, so a quick
        command's steps (``backup create``, ``restore``) print without it; the text is
        never read as markup (it may hold an IPv6 address in brackets)."""
        Printer().line(Span("✓", "green"), " ", text)

    @contextlib.contextmanager
    def progress(self, label: str) -> Iterator[Callable[[CopyProgress], None]]:
        if not is_terminal(sys.stdout):  # a log or a pipe: the summary line says enough
            yield lambda _p: None  # (and rich is not imported: standby clone is quick)
            return
        console = _console("console")
        from rich.progress import (  # lazy: only a terminal shows a progress bar
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None)

            def update(p: CopyProgress) -> None:
                bar.update(task, completed=p.done_bytes, total=p.total_bytes)

            yield update
