"""``pgherd backup create``: a bundled backup (full, differential or incremental) of a
node whose data directory is on this machine, into one repository.

The node is the primary, the named node, or with ``from_standby`` the running standby
that is furthest ahead. The parent of a differential or incremental backup is chosen in
model/backup_chain.py; an interrupted backup of the same kind, node and parent is
resumed (its stored chunks are not uploaded again).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from pgherd.archive.backup_engine import BackupEngine, EngineProgress, walk
from pgherd.archive.catalog import Archive
from pgherd.archive.phases import Phases
from pgherd.archive.restore_view import archive_view
from pgherd.clients.agent import lite_statuses
from pgherd.config_lite import LiteConfig
from pgherd.errors import PgherdError, Refused
from pgherd.model.backup import Backup, BackupFormat, BackupKind
from pgherd.model.backup_chain import ParentChoice, choose_parent
from pgherd.model.backup_manifest import Manifest
from pgherd.model.backup_trust import backup_read_before
from pgherd.model.lsn import Lsn
from pgherd.model.status_lite import LiteStatus, PgState, Role
from pgherd.model.wal import Segment, TimelinePath
from pgherd.pg import backup_sql
from pgherd.pg.local_node import LocalNode

_START_TLI = re.compile(r"^START TIMELINE: (\d+)", re.M)
_START_TIME = re.compile(r"^START TIME: (.+)$", re.M)


def pick_standby(config: LiteConfig) -> LiteStatus:
    """The running standby that has replayed furthest (the least behind)."""
    running = [
        s
        for s in lite_statuses(config.nodes)
        if s.role is not Role.PRIMARY and s.state is PgState.RUNNING and s.replay_lsn
    ]
    if not running:
        raise Refused("--from-standby: no standby is running", "start one, or back up the primary")
    return max(running, key=lambda s: (s.replay_lsn or Lsn(0), s.name))


def is_local(config: LiteConfig, name: str) -> bool:
    """Whether the node's data directory is on this machine (and readable here)."""
    return (config.node(name).data_dir / "PG_VERSION").is_file()


def local_node(config: LiteConfig, name: str) -> LocalNode:
    if not is_local(config, name):
        raise Refused(
            f"{name}'s data directory {config.node(name).data_dir} is not on this machine "
            "(or not readable)",
            f"ask {name}'s agent (`pgherd backup create --node {name}` does), or use "
            "--format copy (pg_basebackup over the network)",
        )
    return LocalNode.open(config, name)


def create(
    config: LiteConfig,
    archive: Archive,
    archives: list[Archive],
    source: LiteStatus,
    asked: BackupKind,
    workers: int,
    on_progress: Callable[[EngineProgress], None],
    step: Callable[[str], None],
    ensure_archived: Callable[[Lsn, Lsn, int, bool], None],
    checksum: bool = False,
    phases: Phases | None = None,
) -> Backup:
    """``phases``: the seconds of each phase (plan, connect, start_checkpoint, scan,
    copy, stop, wal_wait, catalog), measured here."""
    phases = phases if phases is not None else Phases()
    with phases.phase("plan"):  # the catalog read, the parent chosen and its manifest
        local = local_node(config, source.name)
        choice, parent_manifest, label, resumed = _plan(archive, source, asked)
    step(choice.reason)
    engine = BackupEngine(
        archive.repository,
        label,
        local.node.data_dir,
        parent_manifest,
        workers,
        on_progress,
        backup_read_before(
            choice.parent.start_time if choice.parent else None,
            choice.parent.node if choice.parent else None,
            source.name,
            checksum,
        ),
        checksum,
    )
    with phases.phase("plan"):
        if resumed:
            count = engine.load_resume()
            step(f"resuming the interrupted backup {label}: {count} chunks are stored already")
        else:
            archive.mark_partial(label, _partial_info(choice, source.name))
    with ExitStack() as session:
        with phases.phase("connect"):
            conn = session.enter_context(local.instance.connect())
        with phases.phase("start_checkpoint"):
            started = backup_sql.start(conn, f"pgherd backup {label}")
        step(f"backup {label} started at {started.lsn} on {source.name}")
        with phases.phase("scan"):
            files, directories = walk(local.node.data_dir)
        with phases.phase("copy"):
            entries = engine.copy(files)
        with phases.phase("stop"):
            stopped = backup_sql.stop(conn, started.version_num, wait_for_archive=False)
    tli = _START_TLI.search(stopped.backup_label)
    start_time = _START_TIME.search(stopped.backup_label)
    if tli is None or start_time is None:
        raise PgherdError(f"cannot read pg_backup_stop's backup label: {stopped.backup_label!r}")
    start_tli = int(tli.group(1))
    # pg_backup_stop on a primary switched WAL itself; a standby's cannot
    with phases.phase("wal_wait"):
        ensure_archived(started.lsn, stopped.lsn, start_tli, not started.in_recovery)
    manifest = Manifest(
        label=label,
        start_lsn=started.lsn,
        files=tuple(entries),
        directories=tuple(directories),
        backup_label=stopped.backup_label,
        tablespace_map=stopped.tablespace_map,
        encrypted=archive.repository.cipher is not None,
    )
    backup = Backup(
        label=label,
        node=source.name,
        timeline=start_tli,
        start_lsn=started.lsn,
        stop_lsn=stopped.lsn,
        stop_timeline=start_tli,
        start_time=_label_time(start_time.group(1).strip()),
        stop_time=datetime.now(UTC),
        size_bytes=manifest.size_bytes,
        next_xid=started.next_xid,
        system_identifier=started.system_identifier,
        pg_major=started.version_num // 10000,
        kind=choice.kind,
        parent=choice.parent.label if choice.parent else None,
        format=BackupFormat.BUNDLES,
        stored_bytes=manifest.stored_bytes(f"backups/{label}/"),
        from_standby=started.in_recovery,
    )
    with phases.phase("catalog"):
        archive.add_backup(backup, manifest)
    return backup


def _plan(
    archive: Archive, source: LiteStatus, asked: BackupKind
) -> tuple[ParentChoice, Manifest | None, str, bool]:
    """(the parent choice, the parent's manifest, the label, whether it resumes one)."""
    identity = archive.wal.identity()
    archive.wal.require_cluster(
        source.system_identifier or "?", (source.version_num or 0) // 10000, f" ({source.name})"
    )
    backups = archive.backups()
    view = archive_view(archive.wal)
    timeline = source.timeline or 1
    path = TimelinePath.of(timeline, view.histories.get(timeline, ()))
    choice = choose_parent(asked, backups, path, identity.system_identifier, identity.pg_major)
    parent_manifest = archive.manifest(choice.parent.label) if choice.parent else None
    label, resumed = _label(archive, choice, source.name, backups)
    return choice, parent_manifest, label, resumed


def end_segment(stop_lsn: Lsn, timeline: int, segment_size: int) -> str:
    return Segment((stop_lsn.value - 1) // segment_size, timeline).name(segment_size)


def _partial_info(choice: ParentChoice, node: str) -> dict[str, Any]:
    return {
        "kind": str(choice.kind),
        "parent": choice.parent.label if choice.parent else None,
        "node": node,
    }


def _label(
    archive: Archive, choice: ParentChoice, node: str, backups: list[Backup]
) -> tuple[str, bool]:
    """(label, resumed): an interrupted backup of the same kind, node and parent is
    resumed; any other interrupted one is removed (it can never complete)."""
    wanted = _partial_info(choice, node)
    for partial in archive.partials():
        label = str(partial.get("label", ""))
        if {k: partial.get(k) for k in wanted} == wanted and label:
            return label, True
        if label:
            archive.drop_partial(label)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = {BackupKind.FULL: "F", BackupKind.DIFFERENTIAL: "D", BackupKind.INCREMENTAL: "I"}
    label = f"{stamp}{suffix[choice.kind]}"
    taken = {b.label for b in backups}
    n = 1
    while label in taken:
        n += 1
        label = f"{stamp}{suffix[choice.kind]}-{n}"
    return label, False


def _label_time(text: str) -> datetime:
    """``2026-11-25 23:12:35 UTC`` (the server's log_timezone) as an aware datetime."""
    stamp, _, zone = text.rpartition(" ")
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    if zone in ("UTC", "GMT"):
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
