"""``pgherd backup create|verify|delete``: base backups into the archive's catalog.

pg_basebackup copies the node (primary or standby) as the PostgreSQL OS user, with a
fast checkpoint, WAL streamed alongside (the backup is consistent on its own) and a
backup manifest (for pg_verifybackup). The catalog entry is written last and the
directory renamed into place, so a listed backup is a finished one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pgherd.archive.bundles import ChunkReader, runs
from pgherd.archive.catalog import Archive, backup_from_json, backup_to_json
from pgherd.archive.phases import Phases
from pgherd.archive.repository import open_repository
from pgherd.archive.storage import LocalStorage, fsync_dir
from pgherd.clients.agent import lite_statuses
from pgherd.clients.archive import ArchiveAgentClient
from pgherd.config_lite import LiteConfig, Validated, as_lite
from pgherd.errors import ArchiveError, CorruptWal, InvalidInput, PgherdError, Refused
from pgherd.model.backup import Backup, BackupFormat, BackupKind
from pgherd.model.backup_chain import descendants
from pgherd.model.lsn import Lsn
from pgherd.model.repository import RepositorySpec
from pgherd.model.status_lite import LiteStatus, PgState, Role
from pgherd.model.wal import Segment, TimelinePath, WalKind, gaps, parse_history
from pgherd.pg import basebackup, binaries, conninfo, controldata, osuser
from pgherd.pg.basebackup import Progress
from pgherd.pg.run import run

_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)", re.M)
_START_TLI = re.compile(r"^START TIMELINE: (\d+)", re.M)
_START_TIME = re.compile(r"^START TIME: (.+)$", re.M)


def _specs(config: LiteConfig) -> tuple[RepositorySpec, ...]:
    if config.archive is None:
        raise Refused(
            "pgherd.yaml has no archive section",
            "add `archive: {path: /var/lib/pgherd/archive}` (see docs/archive.md), "
            "or create a lab with `pgherd lab up --archive`",
        )
    return config.archive.specs()


def _open(specs: Sequence[RepositorySpec]) -> list[Archive]:
    try:
        return [Archive(open_repository(spec)) for spec in specs]
    except OSError as exc:
        raise ArchiveError(str(exc.strerror or exc), "fix archive: in pgherd.yaml") from None


def archives_of(config: Validated | LiteConfig) -> list[Archive]:
    """Every repository of the cluster, opened (the first is where restores look first)."""
    return _open(_specs(as_lite(config)))


def archive_of(config: Validated | LiteConfig, name: str | None = None) -> Archive:
    """One repository (the first, or the one named), checked to be set up. Only that
    one is opened: a restore or a listing from a local directory does not start an S3
    client (its import alone is a few hundred ms) for another repository."""
    specs = _specs(as_lite(config))
    if name is None:
        spec = specs[0]
    else:
        found = [s for s in specs if s.name == name]
        if not found:
            raise InvalidInput(
                f"no repository named {name!r}",
                f"repositories: {', '.join(s.name for s in specs)}",
            )
        spec = found[0]
    (archive,) = _open([spec])
    archive.require()
    return archive


def primary_status(config: Validated | LiteConfig) -> LiteStatus:
    for status in lite_statuses(as_lite(config).nodes):
        if status.role is Role.PRIMARY and status.state is PgState.RUNNING:
            return status
    raise Refused("no running primary found", "start it: pgherd node start NODE")


def source_status(config: Validated | LiteConfig, node: str | None) -> LiteStatus:
    config = as_lite(config)
    if node is None:
        return primary_status(config)
    config.node(node)
    (status,) = lite_statuses([config.node(node)])
    if status.state is not PgState.RUNNING:
        raise Refused(f"{node} is {status.state}", f"start it: pgherd node start {node}")
    return status


def new_label(archive: Archive) -> str:
    label = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate, n = label, 1
    while archive.backup_dir(candidate).exists():
        n += 1
        candidate = f"{label}-{n}"
    return candidate


def create_copy(
    config: LiteConfig,
    archive: Archive,
    source: LiteStatus,
    on_progress: Callable[[Progress], None],
    phases: Phases | None = None,
) -> Backup:
    """pgherd's first format: a pg_basebackup copy (over the replication protocol, so
    from any machine) into a local repository's directory."""
    phases = phases if phases is not None else Phases()
    identity = archive.wal.identity()
    archive.wal.require_cluster(
        source.system_identifier or "?", (source.version_num or 0) // 10000, f" ({source.name})"
    )
    target = config.node(source.name)
    user = osuser.resolve(config.os_user)
    pgbin = binaries.find(config.pg_bin_for(target))
    label = new_label(archive)
    if archive.root is None:
        raise InvalidInput(
            f"--format copy writes into a local directory; {archive.describe()} is not one",
            "use bundles (the default) for an object store",
        )
    LocalStorage(archive.root).make_dirs(archive.backups_dir)
    partial = archive.backups_dir / f".{label}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    user.make_dir(partial)
    data = partial / "data"
    source_info = conninfo.keyword(
        target.host,
        target.port,
        config.replication_user,
        config.passfile,
        application_name=f"pgherd_backup_{label}",
        sslrootcert=config.ca_file,
    )
    args = basebackup.argv(
        pgbin, source_info, data, None, False, ("--label", f"pgherd backup {label}")
    )
    try:
        with phases.phase("copy"):  # pg_basebackup: its checkpoint, copy and stop
            basebackup.run_basebackup(args, user, on_progress)
        stopped = datetime.now(UTC)
        with phases.phase("describe"):
            backup = _describe(data, label, source, stopped, identity.pg_major, pgbin, user)
        with phases.phase("wal_wait"):
            same = backup.timeline == backup.stop_timeline  # else: the end only
            wait_archived(
                config,
                archives_of(config),
                backup.stop_lsn,
                backup.stop_timeline,
                start_lsn=backup.start_lsn if same else None,
            )
        with phases.phase("catalog"):
            user.write_file(partial / "backup.json", json.dumps(backup_to_json(backup), indent=2))
            os.rename(partial, archive.backup_dir(label))
            fsync_dir(archive.backups_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return backup


def _describe(
    data: Path,
    label: str,
    source: LiteStatus,
    stopped: datetime,
    pg_major: int,
    pgbin: binaries.PgBin,
    user: osuser.OsUser,
) -> Backup:
    backup_label = (data / "backup_label").read_text()
    start = _START.search(backup_label)
    tli = _START_TLI.search(backup_label)
    started = _START_TIME.search(backup_label)
    if not (start and tli and started):
        raise PgherdError(f"cannot read the backup's backup_label in {data}")
    manifest = json.loads((data / "backup_manifest").read_text())
    ranges = manifest.get("WAL-Ranges") or []
    stop = ranges[-1] if ranges else {"End-LSN": start.group(1), "Timeline": tli.group(1)}
    next_xid = controldata.read(pgbin, data, user).next_xid
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    return Backup(
        label=label,
        node=source.name,
        timeline=int(tli.group(1)),
        start_lsn=Lsn.parse(start.group(1)),
        stop_lsn=Lsn.parse(str(stop["End-LSN"])),
        stop_timeline=int(stop["Timeline"]),
        start_time=_parse_label_time(started.group(1).strip()),
        stop_time=stopped,
        size_bytes=size,
        next_xid=next_xid,
        system_identifier=source.system_identifier or "",
        pg_major=pg_major,
    )


def _parse_label_time(text: str) -> datetime:
    """``2026-11-25 23:12:35 UTC`` (the server's log_timezone) as an aware datetime."""
    stamp, _, zone = text.rpartition(" ")
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    if zone in ("UTC", "GMT"):
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def wait_archived(
    config: Validated | LiteConfig,
    archives: list[Archive],
    stop_lsn: Lsn,
    timeline: int,
    switched: bool = False,
    timeout: float = 120,
    start_lsn: Lsn | None = None,
) -> None:
    """Wait until every repository holds every segment of a backup's WAL, from the one
    holding ``start_lsn`` (None: only the last) to the one holding its end, so a restore
    from it finds every segment it needs. Each is checked, not only the last: the
    agent's pusher stores segments in parallel, so the last can land before one before
    it (which may be failing). ``switched``: the backup's stop closed the last segment
    already (pg_backup_stop on a primary does); otherwise (a standby's backup, a copy)
    the primary is made to switch WAL — and so is it when the segments have not come
    after a few seconds."""
    config = as_lite(config)
    size = archives[0].wal.identity().wal_segment_size
    last = (stop_lsn.value - 1) // size
    first = start_lsn.segment_number(size) if start_lsn is not None else last
    missing = [Segment(n, timeline).name(size) for n in range(min(first, last), last + 1)]
    started = time.monotonic()
    switched_at: str | None = None
    pause = 0.01  # the segment usually lands within a few tens of ms: look often, then less
    while time.monotonic() - started < timeout:
        missing = [name for name in missing if not all(a.wal.find(name) for a in archives)]
        if not missing:
            return
        if switched_at is None and (not switched or time.monotonic() - started > 5):
            primary = config.node(primary_status(config).name)
            client = ArchiveAgentClient(primary, config.read_token())
            switched_at = str(client.switch_wal().lsn)
        time.sleep(pause)
        pause = min(0.2, pause * 1.5)
    raise PgherdError(
        f"the backup's WAL segment {missing[0]} was not archived within {timeout:.0f} s"
        + (f" ({len(missing)} segments missing)" if len(missing) > 1 else "")
        + (f" (switched at {switched_at})" if switched_at else ""),
        "check archive_command: `pgherd archive status`",
    )


# ---- verify ----------------------------------------------------------------------------


@dataclass
class VerifyReport:
    label: str
    manifest_ok: bool
    manifest_detail: str
    wal_from: str
    wal_to: str | None
    segments_checked: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest_ok and not self.problems


def verify(
    config: Validated | LiteConfig,
    label: str,
    checksums: bool = True,
    repository: str | None = None,
) -> VerifyReport:
    """The backup's own files (pg_verifybackup on a copy; every stored chunk against its
    checksum for a bundled backup), then the WAL from its start to the archive's end:
    every segment present (no gap) and, with ``checksums``, matching its sha256."""
    config = as_lite(config)
    archive = archive_of(config, repository)
    backup = archive.backup(label)
    if backup.format is BackupFormat.BUNDLES:
        ok, detail = _verify_bundles(archive, label)
    else:
        user = osuser.resolve(config.os_user)
        pgbin = binaries.find(config.pg_bin)
        done = run(
            [pgbin["pg_verifybackup"], archive.backup_dir(label) / "data"],
            user,
            timeout=600,
            check=False,
        )
        ok, detail = done.returncode == 0, (done.stdout + done.stderr).strip().splitlines()
    wal = archive.wal
    size = wal.identity().wal_segment_size
    files = wal.files()
    histories = {
        f.wal.timeline: parse_history(wal.read(f).decode()) for f in files if f.wal.segment is None
    }
    present = {f.wal.segment: f for f in files if f.wal.kind is WalKind.SEGMENT and f.wal.segment}
    latest = max([backup.stop_timeline, *histories], default=backup.stop_timeline)
    path = TimelinePath.of(latest, histories.get(latest, ()))
    if not path.contains(backup.stop_timeline, backup.stop_lsn):
        path = TimelinePath.of(backup.stop_timeline, histories.get(backup.stop_timeline, ()))
    on_path = [s for s in present if path.timeline_of_segment(s.number, size) == s.timeline]
    newest = max(on_path, default=None)
    first = Segment(backup.start_lsn.segment_number(size), backup.timeline)
    report = VerifyReport(
        label=label,
        manifest_ok=ok,
        manifest_detail=detail[-1] if detail else "",
        wal_from=first.name(size),
        wal_to=newest.name(size) if newest else None,
        segments_checked=0,
    )
    if newest is None or newest < first:
        report.problems.append(f"the archive holds no WAL from {first.name(size)} on")
        return report
    needed = path.segments(backup.start_lsn, newest.end(size), size)
    for gap in gaps(needed, set(present)):
        report.problems.append(f"missing WAL {gap.describe(size)}")
    if checksums:
        for seg in needed:
            found = present.get(seg)
            if found is None:
                continue
            try:
                wal.read(found)
            except CorruptWal as exc:
                report.problems.append(exc.message)
            report.segments_checked += 1
    return report


def _verify_bundles(archive: Archive, label: str) -> tuple[bool, list[str]]:
    """Every chunk the backup's manifest names (its own and its parents'), read back,
    decrypted, decompressed and matched to its checksum."""
    manifest = archive.manifest(label)
    reader = ChunkReader(archive.repository.raw, archive.repository.cipher)
    chunks = [c for f in manifest.files for c in f.chunks]
    problems = []
    for group in runs(chunks):
        try:
            reader.read_run(group)
        except (PgherdError, OSError) as exc:
            problems.append(exc.message if isinstance(exc, PgherdError) else str(exc))
    if problems:
        return False, problems
    return True, [f"{len(manifest.files)} files, {len(chunks)} chunks match their checksums"]


def delete(config: Validated | LiteConfig, label: str, repository: str | None = None) -> Backup:
    """Refused while another backup builds on this one (delete that one first)."""
    archive = archive_of(config, repository)
    backups = archive.backups()
    backup = archive.backup(label)
    needing = sorted(descendants(label, backups))
    if needing:
        raise Refused(
            f"backups {', '.join(needing)} build on {label}",
            "delete them first, or let `archive cleanup` decide",
        )
    archive.delete_backup(backup)
    return backup


def create(
    config: Validated | LiteConfig,
    node: str | None,
    kind: BackupKind,
    copy: bool,
    from_standby: bool,
    repository: str | None,
    on_progress: Callable[[int, int], None],
    step: Callable[[str], None],
    checksum: bool = False,
    phases: Phases | None = None,
) -> Backup:
    """A backup of the primary, of ``node``, or of the furthest standby, into one
    repository (the first unless named): bundled (default) or a pg_basebackup copy.
    ``checksum``: read and hash every file, trusting no size and modification time.
    ``phases``: filled with the seconds each phase took (archive/phases.py). ``config``
    in either form: the agents' scheduler passes the validated one, ``backup create`` the
    one read through the config cache (no pydantic on its path: docs/architecture.md)."""
    # Here, not at the top: psycopg (~0.15 s to import) is for taking a bundled backup,
    # not for the restores and listings that import this module.
    from pgherd.archive import backup_bundled

    config = as_lite(config)
    phases = phases if phases is not None else Phases()
    with phases.phase("source"):  # the repository opened, the nodes asked their state
        archive = archive_of(config, repository)
        if from_standby and node is None:
            source = backup_bundled.pick_standby(config)
        else:
            source = source_status(config, node)
    if copy:
        if kind is not BackupKind.FULL:
            raise InvalidInput(
                "--format copy takes full backups only", "drop --type, or use bundles"
            )
        return create_copy(
            config, archive, source, lambda p: on_progress(p.done_bytes, p.total_bytes), phases
        )
    if not backup_bundled.is_local(config, source.name):
        # The data directory is on another machine: its agent takes the backup there.
        step(f"{source.name}'s data directory is not on this machine: its agent takes the backup")
        client = ArchiveAgentClient(config.node(source.name), config.read_token())
        with phases.phase("agent"):
            made = client.take_backup(str(kind), repository, checksum=checksum)
        return backup_from_json(made.model_dump(mode="json"))
    with phases.phase("source"):  # every repository: the end segment must be in each
        archives = archives_of(config)
    workers = config.backup.workers
    return backup_bundled.create(
        config,
        archive,
        archives,
        source,
        kind,
        workers,
        lambda p: on_progress(p.read_bytes, p.total_bytes),
        step,
        lambda start, stop, tli, switched: wait_archived(
            config, archives, stop, tli, switched, start_lsn=start
        ),
        checksum,
        phases,
    )
