"""How the CLI prints: rich for people, plain JSON for scripts, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from pgherd.model.jsonable import jsonable

if TYPE_CHECKING:
    from pgherd.pg.basebackup import Progress as CopyProgress


def _width(stream: Any) -> int | None:
    """Rich cuts tables to 80 columns when it does not write to a terminal, which turns
    LSNs and states into "0/402…" in logs and pipes: print those at full width instead
    (``COLUMNS`` still decides when it is set)."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))

EXIT_ERROR = 1
EXIT_DEGRADED = 3


def print_json(data: Any) -> None:
    """What every ``--json`` prints: ``data`` (models, dataclasses, results) in the one
    JSON form of :func:`pgherd.model.jsonable.jsonable`."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def error(text: str) -> None:
    # The text may hold PostgreSQL's own messages or user input: never read it as markup.
    err_console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)


class RichReporter:
    """Steps as check-marked lines; copies as progress bars with size, rate and ETA."""

    def step(self, text: str) -> None:
        console.print(f"[green]✓[/] {text}", soft_wrap=True)

    @contextlib.contextmanager
    def progress(self, label: str) -> Iterator[Callable[[CopyProgress], None]]:
        if not console.is_terminal:  # a log or a pipe: the summary line says enough
            yield lambda _p: None
            return
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
