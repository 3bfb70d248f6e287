"""``pgherd restore``: point-in-time recovery into a new directory, or ``--delta`` into
one that holds a copy of the cluster.

A quick command (issue 20): a delta restore after 1 % of the data changed is timed
against a full restore, and Python's start-up with Typer, rich and pydantic was a fixed
~0.4 s of it (docs/benchmarks.md). The Typer command (cli/restore.py) calls :func:`run`
too; the work is :func:`pgherd.archive.restore.restore`'s either way.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pgherd.archive import restore as restore_mod
from pgherd.archive.phases import from_process_start
from pgherd.cli.output import RichReporter, print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Printer
from pgherd.errors import InvalidInput
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import Reached, Target, TargetAction, TargetKind


def run(
    into: Path,
    port: int,
    target_time: str | None,
    target_name: str | None,
    target_lsn: str | None,
    target_xid: int | None,
    latest: bool,
    target_action: str | None,
    timeline: int | None,
    timeout: float,
    delta: bool,
    repo: str | None,
    checksum: bool,
    config_file: Path | None,
    as_json: bool,
) -> int:
    phases = from_process_start()

    if checksum and not delta:
        raise InvalidInput(
            "--checksum checks the files of a --delta restore", "add --delta, or drop --checksum"
        )
    target = parse_target(target_time, target_name, target_lsn, target_xid, latest)
    action = TargetAction.parse(target_action or ("promote" if latest else "pause"))
    request = restore_mod.RestoreRequest(
        into, port, target, action, timeline, timeout, delta, repo, checksum
    )
    reporter = RichReporter()
    with phases.phase("config"):
        config = load_config(config_file)
    result = restore_mod.restore(
        config, request, (lambda _t: None) if as_json else reporter.step, phases
    )
    if as_json:
        print_json(result)
        return 0
    at = result.time.isoformat(sep=" ", timespec="seconds") if result.time else "-"
    Printer().line(
        f"restored {result.into} from backup {result.backup}: {result.state} at LSN "
        f"{result.lsn}, last commit {at}, timeline {result.timeline} "
        f"({result.seconds:.1f} s); PostgreSQL runs on port {result.port}"
        if result.state is not Reached.SHUT_DOWN
        else f"restored {result.into} from backup {result.backup}: shut down at LSN "
        f"{result.lsn} ({result.seconds:.1f} s)"
    )
    return 0


def parse_target(
    time: str | None, name: str | None, lsn: str | None, xid: int | None, latest: bool
) -> Target:
    """The one recovery target given, checked."""
    given = [
        flag
        for flag, value in (
            ("--target-time", time),
            ("--target-name", name),
            ("--target-lsn", lsn),
            ("--target-xid", xid),
            ("--latest", latest or None),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidInput(
            f"give exactly one recovery target (got {', '.join(given) or 'none'})",
            "use one of --target-time, --target-name, --target-lsn, --target-xid, --latest",
        )
    if time is not None:
        try:
            when = datetime.fromisoformat(time)
        except ValueError:
            raise InvalidInput(
                f"--target-time {time!r} is not a time",
                "use ISO 8601 with a zone, e.g. '2026-11-25 23:40:00+00:00'",
            ) from None
        if when.tzinfo is None:
            raise InvalidInput(
                f"--target-time {time!r} has no time zone", "add one, e.g. +00:00 for UTC"
            )
        return Target(TargetKind.TIME, time=when)
    if name is not None:
        return Target(TargetKind.NAME, name=name)
    if lsn is not None:
        try:
            return Target(TargetKind.LSN, lsn=Lsn.parse(lsn))
        except ValueError as exc:
            raise InvalidInput(f"--target-lsn: {exc}", "e.g. --target-lsn 0/5000060") from None
    if xid is not None:
        if xid < 3:
            raise InvalidInput(f"--target-xid {xid} is not a normal transaction ID", "use ≥ 3")
        return Target(TargetKind.XID, xid=xid)
    return Target(TargetKind.LATEST)
