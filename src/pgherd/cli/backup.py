"""pgherd backup create|list|verify|delete."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, RichReporter, console, print_json
from pgherd.model.jsonable import jsonable
from pgherd.model.readable import human_bytes

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="Base backups in the archive.")

LabelArg = Annotated[str, typer.Argument(help="the backup's label (see backup list)")]


@app.command()
def create(
    node: Annotated[
        str | None,
        typer.Option("--node", help="back up this node, primary or standby (default: primary)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """pg_basebackup (fast checkpoint, WAL streamed, manifest) into the archive."""
    from pgherd.archive import backup as backup_mod
    from pgherd.archive.catalog import backup_to_json

    config = load_config(config_file)
    with RichReporter().progress("base backup") as on_progress:
        made = backup_mod.create(config, node, on_progress)
    if as_json:
        print_json(backup_to_json(made))
        return
    console.print(
        f"backup {made.label} of {made.node}: {human_bytes(made.size_bytes)}, timeline "
        f"{made.timeline}, WAL {made.start_lsn} to {made.stop_lsn}"
    )


@app.command(name="list")
def list_(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every backup: label, node, timeline, start/stop LSN, times, size."""
    from pgherd.archive.backup import archive_of
    from pgherd.archive.catalog import backup_to_json

    backups = archive_of(load_config(config_file)).backups()
    if as_json:
        print_json([backup_to_json(b) for b in backups])
        return
    table = Table("Label", "Node", "TL", "Start LSN", "Stop LSN", "Finished (UTC)", "Size")
    for b in backups:
        table.add_row(
            b.label,
            b.node,
            str(b.timeline),
            str(b.start_lsn),
            str(b.stop_lsn),
            b.stop_time.strftime("%Y-%m-%d %H:%M:%S"),
            human_bytes(b.size_bytes),
        )
    console.print(table)


@app.command()
def verify(
    label: LabelArg,
    no_checksums: Annotated[
        bool, typer.Option("--no-checksums", help="check WAL presence only, not contents")
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """pg_verifybackup, then the WAL from the backup to the archive's end: no gap, every
    segment matching its checksum. Exits 3 when a problem is found."""

    from pgherd.archive import backup as backup_mod

    report = backup_mod.verify(load_config(config_file), label, checksums=not no_checksums)
    if as_json:
        print_json(jsonable(report) | {"ok": report.ok})
    else:
        mark = "[green]✓[/]" if report.manifest_ok else "[red]✗[/]"
        console.print(f"{mark} pg_verifybackup: {report.manifest_detail}", soft_wrap=True)
        mark = "[green]✓[/]" if not report.problems else "[red]✗[/]"
        console.print(
            f"{mark} WAL {report.wal_from} to {report.wal_to or '-'}: "
            f"{report.segments_checked} segments checked",
            soft_wrap=True,
        )
        for problem in report.problems:
            console.print(f"  [red]✗[/] {problem}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def delete(label: LabelArg, config_file: ConfigOpt = None) -> None:
    """Delete one backup (its WAL goes with the next `archive cleanup`)."""
    from pgherd.archive import backup as backup_mod

    gone = backup_mod.delete(load_config(config_file), label)
    console.print(f"deleted backup {gone.label} ({human_bytes(gone.size_bytes)})")
