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
        if result.pusher is not None and result.pusher.running:
            p = result.pusher
            rows += [
                (
                    "pusher",
                    f"{p.workers} workers, {p.in_flight} in flight, {p.pushed} pushed, "
                    f"{p.failures} failures"
                    + (
                        f", {p.seconds_per_segment:.2f} s per segment"
                        if p.seconds_per_segment
                        else ""
                    ),
                ),
            ]
        rows.append(("repositories", ", ".join(result.repositories)))
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        if result.problem:
            console.print(f"[yellow]![/] {result.problem}", soft_wrap=True)
    if result.problem:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def cleanup(
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="newest base backups to keep")
    ] = None,
    keep_full: Annotated[
        int | None,
        typer.Option("--keep-full", min=1, help="newest full backups to keep (with their chains)"),
    ] = None,
    keep_days: Annotated[
        float | None,
        typer.Option("--keep-days", min=0.001, help="keep what restores to the last D days need"),
    ] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="one repository (default: every one)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would go; remove nothing")
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep backups by count (--keep), by full backups (--keep-full) and/or by age
    (--keep-days) — or each repository's retention from pgherd.yaml — with every backup
    a kept one builds on, and exactly the WAL they and every standby still need; remove
    the rest and report the space freed."""
    from pgherd.archive import cleanup as cleanup_mod
    from pgherd.errors import InvalidInput
    from pgherd.model.retention import Policy

    if keep is not None and (keep_full is not None or keep_days is not None):
        raise InvalidInput(
            "--keep counts every backup; it cannot be combined with --keep-full/--keep-days",
            "use one or the other",
        )
    policy = Policy(keep_full, keep_days) if keep_full or keep_days else None
    config = load_config(config_file)
    results = cleanup_mod.cleanup(config, keep, dry_run, policy, repo)
    if as_json:
        # one repository's result as before (an object); several as a list
        print_json(results[0] if len(results) == 1 and repo is None else results)
        return
    verb = "would remove" if dry_run else "removed"
    for result in results:
        console.print(f"[bold]{result.repository}[/]")
        for reason in result.reasons:
            console.print(f"  {reason}", soft_wrap=True)
        console.print(
            f"  {verb} {len(result.removed_backups)} backups and {len(result.removed_files)} "
            f"WAL files, {human_bytes(result.freed_bytes)}; kept backups: "
            f"{', '.join(result.kept_backups) or 'none'}",
            soft_wrap=True,
        )
        for name in result.removed_backups + result.removed_files:
            console.print(f"    - {name}")


@app.command()
def check(
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to wait for the segment in each")
    ] = 60,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Prove the archive works end to end: switch the primary's WAL, wait until the
    segment is in every repository, fetch it back from each and check it. Exits 3 when
    a repository fails."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import archive_check

    code = archive_check.run(timeout, config_file, as_json)
    if code:
        raise typer.Exit(code)
