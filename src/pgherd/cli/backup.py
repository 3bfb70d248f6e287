"""pgherd backup create|list|verify|delete."""

from __future__ import annotations

from pathlib import Path
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
RepoOpt = Annotated[
    str | None, typer.Option("--repo", help="the repository's name (default: the first)")
]


@app.command()
def create(
    node: Annotated[
        str | None,
        typer.Option("--node", help="back up this node, primary or standby (default: primary)"),
    ] = None,
    kind: Annotated[str, typer.Option("--type", help="full, differential or incremental")] = "full",
    from_standby: Annotated[
        bool, typer.Option("--from-standby", help="back up the standby furthest ahead")
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="bundles (default: chunks, compressed, parallel, resumable; run on the "
            "node's host) or copy (pg_basebackup over the network, full only)",
        ),
    ] = "bundles",
    repo: RepoOpt = None,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum",
            help="read and hash every file; by default a differential or incremental "
            "backup takes a file whose size and modification time are unchanged since "
            "its parent as the parent's",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A base backup into a repository: full, differential (changes since the last full)
    or incremental (changes since the last backup), compressed, encrypted where the
    repository is, resumed if an earlier run was interrupted."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import backup_create

    backup_create.run(node, kind, from_standby, fmt, repo, checksum, config_file, as_json)


@app.command(name="list")
def list_(repo: RepoOpt = None, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every backup: label, kind, node, timeline, start/stop LSN, times, size."""
    from pgherd.archive.backup import archive_of
    from pgherd.archive.catalog import backup_to_json

    backups = archive_of(load_config(config_file), repo).backups()
    if as_json:
        print_json([backup_to_json(b) for b in backups])
        return
    table = Table("Label", "Kind", "Node", "TL", "Start LSN", "Stop LSN", "Finished (UTC)", "Size")
    for b in backups:
        table.add_row(
            b.label,
            str(b.kind),
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
    repo: RepoOpt = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """pg_verifybackup (a copy) or every stored chunk's checksum (bundles), then the WAL
    from the backup to the archive's end: no gap, every
    segment matching its checksum. Exits 3 when a problem is found."""

    from pgherd.archive import backup as backup_mod

    report = backup_mod.verify(
        load_config(config_file), label, checksums=not no_checksums, repository=repo
    )
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
def delete(label: LabelArg, repo: RepoOpt = None, config_file: ConfigOpt = None) -> None:
    """Delete one backup (its WAL goes with the next `archive cleanup`); refused while
    another backup builds on it."""
    from pgherd.archive import backup as backup_mod

    gone = backup_mod.delete(load_config(config_file), label, repo)
    console.print(f"deleted backup {gone.label} ({human_bytes(gone.size_bytes)})")


@app.command()
def info(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per repository: backups with their chains, sizes and WAL ranges, and the earliest
    and latest points a restore can reach. Exits 3 when a repository has a problem."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import backup_info

    code = backup_info.run(config_file, as_json)
    if code:
        raise typer.Exit(code)


@app.command()
def drill(
    repo: RepoOpt = None,
    scratch: Annotated[
        Path | None,
        typer.Option("--scratch", help="where to restore (default: the temporary directory)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the latest backup and all archived WAL into a scratch directory, start it,
    run a check query, report the time, remove it. Exits 3 when the drill fails."""

    from pgherd.archive import drill as drill_mod
    from pgherd.archive.backup import archives_of
    from pgherd.errors import InvalidInput

    config = load_config(config_file)
    known = [a.name for a in archives_of(config)]
    if repo is not None and repo not in known:  # the input is wrong: not a failed drill
        raise InvalidInput(
            f"no repository named {repo[:80]!r}", f"repositories: {', '.join(known)}"
        )
    reporter = RichReporter()
    result = drill_mod.drill(config, repo, scratch, (lambda _t: None) if as_json else reporter.step)
    if as_json:
        print_json(result)
    elif result.ok:
        console.print(
            f"[green]✓[/] drill: backup {result.backup} restored and {result.state} in "
            f"{result.restore_seconds:.1f} s; check query {result.check_seconds * 1000:.0f} ms "
            f"({result.databases} databases, {human_bytes(result.table_bytes)} of tables); "
            f"{result.detail}",
            soft_wrap=True,
        )
    else:
        console.print(f"[red]✗[/] drill failed: {result.detail}", soft_wrap=True)
    if not result.ok:
        raise typer.Exit(EXIT_DEGRADED)
