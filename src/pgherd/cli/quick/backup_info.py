"""``pgherd backup info``: per repository, its backups with their chains, sizes and WAL
ranges, and the earliest and latest points a restore can reach. Exits 3 when a
repository has a problem.

A quick command: scripts and monitoring poll it (issue 20), and it reads the
repositories only. The Typer command (cli/backup.py) calls :func:`run` too.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pgherd.archive import info as info_mod
from pgherd.cli.output import EXIT_DEGRADED, print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Column, Printer, Span, Table
from pgherd.model.readable import human_bytes

HEADERS = ("Label", "Kind", "Chain", "WAL start", "WAL stop", "Size", "Stored")


def run(config_file: Path | None, as_json: bool) -> int:
    repositories = info_mod.info(load_config(config_file))
    if as_json:
        print_json([asdict(r) for r in repositories])
    else:
        out = Printer()
        for r in repositories:
            lock = ", encrypted" if r.encrypted else ""
            out.line(Span(r.name, "bold"), f" ({r.where}{lock})")
            out.line(
                f"  restorable from {r.earliest_restorable or '-'} to "
                f"{r.latest_restorable or '-'} (LSN {r.latest_restorable_lsn or '-'}); "
                f"WAL: {r.wal_segments} segments, {human_bytes(r.wal_bytes)}"
            )
            table = Table("", [Column(h) for h in HEADERS])
            for b in r.backups:
                table.add_row(
                    b.label,
                    b.kind,
                    " → ".join(b.chain[:-1]) or "-",
                    b.wal_start,
                    b.wal_stop,
                    human_bytes(b.size_bytes),
                    human_bytes(b.stored_bytes),
                )
            out.table(table)
            for problem in r.problems:
                out.line("  ", Span("✗", "red"), f" {problem}")
    return EXIT_DEGRADED if any(r.problems for r in repositories) else 0
