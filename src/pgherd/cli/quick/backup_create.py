"""``pgherd backup create``: a base backup into a repository, full, differential or
incremental.

A quick command (issue 20): after 1 % of the data changed an incremental backup of a
small cluster takes a second or two, and Python's start-up with Typer, rich and pydantic
was a fixed ~0.4 s of it (docs/benchmarks.md). The Typer command (cli/backup.py) calls
:func:`run` too; the work is :func:`pgherd.archive.backup.create`'s either way.
"""

from __future__ import annotations

from pathlib import Path

from pgherd.archive import backup as backup_mod
from pgherd.archive.catalog import backup_to_json
from pgherd.archive.phases import from_process_start
from pgherd.cli.output import RichReporter, print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Printer
from pgherd.errors import InvalidInput
from pgherd.model.backup import BackupKind
from pgherd.model.readable import human_bytes
from pgherd.pg.basebackup import Progress as CopyProgress

KINDS = ("full", "differential", "incremental")
FORMATS = ("bundles", "copy")


def run(
    node: str | None,
    kind: str,
    from_standby: bool,
    fmt: str,
    repo: str | None,
    checksum: bool,
    config_file: Path | None,
    as_json: bool,
) -> int:
    phases = from_process_start()
    if kind not in KINDS:
        raise InvalidInput(f"--type {kind!r} is not one of {', '.join(KINDS)}", "e.g. --type full")
    if fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt!r} is not bundles or copy", "e.g. --format bundles")
    if checksum and fmt == "copy":
        raise InvalidInput(
            "--checksum is for bundled backups (a copy reads every file anyway)",
            "drop --checksum or --format copy",
        )
    with phases.phase("config"):
        config = load_config(config_file)
    reporter = RichReporter()
    with reporter.progress("base backup") as on_progress:
        made = backup_mod.create(
            config,
            node,
            BackupKind(kind),
            fmt == "copy",
            from_standby,
            repo,
            lambda done, total: on_progress(CopyProgress(done, total)),
            (lambda _t: None) if as_json else reporter.step,
            checksum,
            phases,
        )
    if as_json:
        print_json(backup_to_json(made) | {"phases": phases.as_json()})
        return 0
    Printer().line(
        f"{made.kind} backup {made.label} of {made.node}: {human_bytes(made.size_bytes)} "
        f"({human_bytes(made.stored_bytes)} stored), timeline {made.timeline}, WAL "
        f"{made.start_lsn} to {made.stop_lsn}" + (f", on {made.parent}" if made.parent else "")
    )
    return 0
