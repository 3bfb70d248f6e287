"""pgherd restore, pgherd restore-point create, pgherd replay pause|resume|status."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import console, print_json

if TYPE_CHECKING:
    from pgherd.pg.archive_sql import ReplayState

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).


def restore(
    into: Annotated[Path, typer.Option("--into", help="a new (or empty) data directory")],
    port: Annotated[int, typer.Option("--port", help="port for the restored server")],
    target_time: Annotated[
        str | None, typer.Option("--target-time", help="e.g. '2026-11-25 23:40:00+00'")
    ] = None,
    target_name: Annotated[
        str | None, typer.Option("--target-name", help="a restore point's name")
    ] = None,
    target_lsn: Annotated[str | None, typer.Option("--target-lsn", help="e.g. 0/5000060")] = None,
    target_xid: Annotated[int | None, typer.Option("--target-xid", help="a transaction ID")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="replay everything archived, then promote")
    ] = False,
    target_action: Annotated[
        str | None,
        typer.Option("--target-action", help="pause (default), promote or shutdown at the target"),
    ] = None,
    timeline: Annotated[
        int | None, typer.Option("--timeline", help="timeline to follow (default: latest)")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to wait for the target")
    ] = 1800,
    delta: Annotated[
        bool,
        typer.Option(
            "--delta",
            help="DIR holds a copy of the cluster (a failed node, an earlier restore): "
            "fetch only the chunks that differ",
        ),
    ] = False,
    repo: Annotated[
        str | None, typer.Option("--repo", help="restore from this repository (default: first)")
    ] = None,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum",
            help="with --delta: read and hash every local file; by default a file whose "
            "size and modification time are those the backup (or an ancestor) recorded is "
            "taken as holding its bytes",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point-in-time recovery: the newest backup before the target, its WAL from the
    archive, a server started as the OS user; reports the point reached."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import restore as quick_restore

    quick_restore.run(
        into,
        port,
        target_time,
        target_name,
        target_lsn,
        target_xid,
        latest,
        target_action,
        timeline,
        timeout,
        delta,
        repo,
        checksum,
        config_file,
        as_json,
    )


restore_point_app = typer.Typer(help="Named points to restore to.")


@restore_point_app.command("create")
def restore_point_create(
    name: Annotated[str, typer.Argument(help="letters, digits, _ . - (at most 63)")],
    node: Annotated[
        str | None, typer.Option("--node", help="the node (default: the primary)")
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """pg_create_restore_point on the primary, recorded in the archive's catalog;
    refused on a standby (PostgreSQL cannot write WAL there)."""
    from pgherd.archive import restore_points

    config = load_config(config_file)
    where, made = restore_points.create(config, name, config_mod.read_token(config), node)
    if as_json:
        print_json(made)
    else:
        console.print(f"restore point {name!r} at {made.lsn} on timeline {made.timeline} ({where})")


replay_app = typer.Typer(help="Pause and resume WAL replay on a standby or a restore.")

WhereArg = Annotated[
    str,
    typer.Argument(help="a node name, or the --into directory of a restore", show_default=False),
]


def _replay(where: str, config_file: Path | None, verb: str) -> ReplayState:
    from pgherd.clients.archive import ArchiveAgentClient

    if "/" in where:
        from pgherd.archive import replay_local

        return replay_local.act(Path(where), verb, config_file)
    config = load_config(config_file)
    client = ArchiveAgentClient(config.node(where), config_mod.read_token(config))
    if verb == "pause":
        return client.pause_replay()
    if verb == "resume":
        return client.resume_replay()
    return client.replay()


def _show(where: str, state: ReplayState, as_json: bool) -> None:
    if as_json:
        print_json(state)
        return
    if not state.in_recovery:
        console.print(f"{where}: not in recovery (timeline {state.timeline})")
        return
    at = state.replay_time.isoformat(sep=" ", timespec="seconds") if state.replay_time else "-"
    console.print(
        f"{where}: replay {state.pause_state}; replayed to {state.replay_lsn} "
        f"(last commit {at}), received {state.receive_lsn or '-'}, timeline {state.timeline}"
    )


@replay_app.command()
def pause(where: WhereArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Pause WAL replay (pg_wal_replay_pause)."""
    _show(where, _replay(where, config_file, "pause"), as_json)


@replay_app.command()
def resume(where: WhereArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Resume WAL replay; a restore paused at its target then ends recovery (promotes)."""
    _show(where, _replay(where, config_file, "resume"), as_json)


@replay_app.command(name="status")
def replay_status(where: WhereArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Whether replay is paused, and how far it got."""
    _show(where, _replay(where, config_file, "status"), as_json)
