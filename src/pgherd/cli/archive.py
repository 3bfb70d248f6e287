"""pgherd archive init|status|cleanup."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.model.readable import human_bytes

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The WAL archive: set up, status, retention.")


@app.command()
def init(
    node: Annotated[
        str | None, typer.Option("--node", help="a node of the cluster (default: the primary)")
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Create the archive at archive.path, stamped with the cluster's identity (system
    identifier, major version); refuses an archive that holds another cluster's."""
    from pgherd.archive import setup
    from pgherd.archive.backup import source_status

    config = load_config(config_file)
    status = source_status(config, node)
    created, path = setup.init_from_status(config, status)
    verb = "created" if created else "already set up for this cluster:"
    console.print(f"archive {verb} {path} (system identifier {status.system_identifier})")


@app.command()
def status(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Size, oldest and newest segment, last archived, failures, and how far the archive
    trails the primary. Exits 3 when archiving fails or the primary is unreachable."""
    from pgherd.archive import status as status_mod

    config = load_config(config_file)
    result = status_mod.status(config)
    if as_json:
        data = asdict(result)
        data["archiver"] = result.archiver.model_dump(mode="json") if result.archiver else None
        print_json(data)
    else:
        table = Table(show_header=False, title=f"archive {result.path}", title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        ratio = result.original_bytes / result.size_bytes if result.size_bytes else 0
        rows = [
            ("cluster", f"{result.system_identifier} (PostgreSQL {result.pg_major})"),
            (
                "size",
                f"{human_bytes(result.size_bytes)} in {result.files} files "
                f"({result.segments} segments, {ratio:.1f}x compressed)",
            ),
            ("oldest segment", result.oldest_segment or "-"),
            ("newest segment", result.newest_segment or "-"),
            ("timelines", ", ".join(map(str, result.timelines)) or "-"),
            ("backups", str(result.backups)),
            ("restore points", str(result.restore_points)),
            ("trails primary by", human_bytes(result.trailing_bytes)),
        ]
        if result.archiver is not None:
            a = result.archiver
            rows += [
                ("last archived", f"{a.last_archived_wal or '-'} at {a.last_archived_time or '-'}"),
                ("waiting", f"{a.ready_count} segments"),
                (
                    "failures",
                    f"{a.failed_count}"
                    + (
                        f" (last {a.last_failed_wal} at {a.last_failed_time})"
                        if a.failed_count
                        else ""
                    ),
                ),
            ]
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        if result.problem:
            console.print(f"[yellow]![/] {result.problem}", soft_wrap=True)
    if result.problem:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def cleanup(
    keep: Annotated[int, typer.Option("--keep", min=1, help="newest base backups to keep")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would go; remove nothing")
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep the newest N backups and exactly the WAL and history files they and every
    standby still need; remove the rest and report the space freed."""
    from pgherd.archive import cleanup as cleanup_mod

    config = load_config(config_file)
    result = cleanup_mod.cleanup(config, keep, dry_run)
    if as_json:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    for reason in result.reasons:
        console.print(f"  {reason}", soft_wrap=True)
    console.print(
        f"{verb} {len(result.removed_backups)} backups and {len(result.removed_files)} WAL "
        f"files, {human_bytes(result.freed_bytes)}; kept backups: "
        f"{', '.join(result.kept_backups) or 'none'}",
        soft_wrap=True,
    )
    for name in result.removed_backups + result.removed_files:
        console.print(f"  - {name}")
