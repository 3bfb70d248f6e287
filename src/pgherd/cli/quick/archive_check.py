"""``pgherd archive check``: switch the primary's WAL, wait until the segment is in every
repository, fetch it back from each and check it. Exits 3 when a repository fails.

A quick command: scripts and monitoring run it to prove the archive works (issue 20).
The Typer command (cli/archive.py) calls :func:`run` too.
"""

from __future__ import annotations

from pathlib import Path

from pgherd.archive import info as info_mod
from pgherd.cli.output import EXIT_DEGRADED, print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Printer, Span
from pgherd.model.jsonable import jsonable


def run(timeout: float, config_file: Path | None, as_json: bool) -> int:
    result = info_mod.check(load_config(config_file), timeout)
    if as_json:
        print_json(jsonable(result) | {"ok": result.ok})
    else:
        out = Printer()
        out.line(f"switched WAL at {result.lsn}: {result.segment}")
        for r in result.repositories:
            mark = Span("✓", "green") if r.fetched else Span("✗", "red")
            after = f"archived after {r.archived_after:.2f} s, " if r.archived_after else ""
            out.line(mark, f" {r.name} ({r.where}): {after}{r.detail}")
    return 0 if result.ok else EXIT_DEGRADED
