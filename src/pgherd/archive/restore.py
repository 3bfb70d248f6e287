"""``pgherd restore``: point-in-time recovery into a new data directory.

Chooses the newest backup that can reach the target (model/recovery_target.py), checks
that the archive holds every segment on the way, copies the backup, writes recovery
settings the PostgreSQL 12+ way (recovery.signal and settings, never recovery.conf),
starts the server as the OS user and waits until it reached the target (paused,
promoted or shut down), then reports where it stopped.

While the server replays, this process decompresses the next segments into a spool
beside pg_wal (``pgherd_prefetch/``), each checked against its sha256, and
restore_command first moves a segment from there (a rename) before it falls back to
``pgherd wal fetch``: replay never waits for a Python start-up and a decompression.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from pgherd.archive.backup import archive_of
from pgherd.archive.catalog import Archive
from pgherd.archive.phases import Phases
from pgherd.archive.repository import write_specs
from pgherd.archive.restore_files import Recorder, lay_out
from pgherd.archive.restore_view import archive_view
from pgherd.archive.restore_wait import Waiting, log_size, wait
from pgherd.archive.store import WalArchive
from pgherd.config_lite import LiteConfig, Validated, as_lite
from pgherd.errors import (
    DataDirNotEmpty,
    InvalidInput,
    PgherdError,
)
from pgherd.model.backup import Backup, BackupFormat
from pgherd.model.backup_chain import chain
from pgherd.model.backup_manifest import Manifest
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import (
    Reached,
    RestorePlan,
    Target,
    TargetAction,
    TargetKind,
    choose,
)
from pgherd.model.repository import RepositorySpec
from pgherd.model.sockets import socket_dir_fits
from pgherd.model.wal import Segment, WalKind
from pgherd.pg import binaries, conf, osuser, ports, process
from pgherd.pg.archive_commands import fetch_command, history_dir
from pgherd.pg.instance import RECOVERY_SIGNAL, STANDBY_SIGNAL, Instance
from pgherd.pg.osuser import OsUser
from pgherd.pg.run import run

SPOOL = "pgherd_prefetch"
AGAIN = ".again-"  # the spool's second copies (see Prefetcher)
TIMELINE_ONE_HISTORY = "00000001.history"  # PostgreSQL never writes one
LOG_NAME = "pgherd-restore.log"
# restore_command's repositories, in the data directory: the server keeps using it after
# the restore returns (a promotion probes for history files); backups leave it out
REPOSITORIES_FILE = "pgherd-repositories.json"
PREFETCH_AHEAD = 8  # segments decompressed ahead of replay (128 MB of disk at most)


@dataclass(frozen=True)
class RestoreRequest:
    into: Path
    port: int
    target: Target
    action: TargetAction
    timeline: int | None = None
    timeout: float = 1800
    delta: bool = False  # into a directory that holds a copy: fetch only what differs
    repository: str | None = None  # read backups from this one (default: the first)
    checksum: bool = False  # --delta: read every local file, trust no size and time


@dataclass(frozen=True)
class RestoreResult:
    into: str
    port: int
    backup: str
    target: str
    state: Reached
    lsn: str | None
    time: datetime | None
    timeline: int | None
    seconds: float
    log: str
    fetched_bytes: int = 0  # a bundled backup's bytes fetched from the repository
    kept_bytes: int = 0  # --delta: bytes already in place, kept
    unread_bytes: int = 0  # --delta: of files known by their size and time (not read)
    phases: dict[str, float] = field(default_factory=dict)  # seconds (archive/phases.py)


def plan(archive: Archive, request: RestoreRequest) -> RestorePlan:
    return choose(
        archive.backups(),
        request.target,
        archive_view(archive.wal),
        archive.restore_points(),
        request.timeline,
    )


def check_request(request: RestoreRequest, user: OsUser) -> None:
    if request.target.kind is TargetKind.LATEST and request.action is not TargetAction.PROMOTE:
        raise InvalidInput(
            f"--latest with --target-action {request.action}: without a target, recovery "
            "replays to the end of the archive and always ends (promotes)",
            "drop --target-action, or give a target (--target-time, --target-lsn …)",
        )
    into = request.into
    if request.delta:
        if not (into / "PG_VERSION").is_file():
            raise InvalidInput(
                f"--delta: {into} holds no data directory", "drop --delta to restore into it"
            )
        if process.running_postmaster(into) is not None:
            raise DataDirNotEmpty(
                f"--delta: PostgreSQL is running in {into}", f"stop it first: pg_ctl -D {into} stop"
            )
    elif into.exists() and any(into.iterdir()):
        raise DataDirNotEmpty(
            f"{into} is not empty",
            "restore into a new or empty directory, or pass --delta to reuse what it holds",
        )
    osuser.require_reachable(into.parent if not into.exists() else into, user)
    if not socket_dir_fits(str(into)):
        raise InvalidInput(f"the path {into} is too long for a Unix socket", "use a shorter one")
    if not ports.is_free("127.0.0.1", request.port):
        raise InvalidInput(
            f"port {request.port} on 127.0.0.1 is already in use", "choose another --port"
        )


def restore(
    config: Validated | LiteConfig,
    request: RestoreRequest,
    step: Callable[[str], None],
    phases: Phases | None = None,
) -> RestoreResult:
    """``phases``: filled with the seconds of each phase (plan, local_scan, create_files,
    fetch, settings, then the server's: see archive/restore_wait.py), also in the
    result. ``config`` in either form: ``pgherd restore`` reads it through the config
    cache, without pydantic (docs/architecture.md); a drill passes the validated one."""
    config = as_lite(config)
    phases = phases if phases is not None else Phases()
    started = phases.now()
    user = osuser.resolve(config.os_user)
    request = replace(request, into=request.into.absolute())
    with phases.phase("plan"):  # the request checked, the backup and its chain chosen
        check_request(request, user)
        archive = archive_of(config, request.repository)
        chosen = plan(archive, request)
        needed = [chosen.backup]
        if chosen.backup.format is BackupFormat.BUNDLES:
            needed = chain(chosen.backup, archive.backups())
    step(chosen.reason)
    if chosen.backup.format is BackupFormat.COPY and request.delta:
        raise InvalidInput(
            f"--delta needs a bundled backup; {chosen.backup.label} is a pg_basebackup copy",
            "drop --delta and restore into an empty directory",
        )
    if len(needed) > 1:
        step("backup chain: " + " → ".join(f"{b.label} ({b.kind})" for b in needed))
    pgbin = binaries.find(config.pg_bin)
    into = request.into
    spool = into / SPOOL
    user.make_dir(spool)
    size = archive.wal.identity().wal_segment_size
    names = [
        s.name(size)
        for s in chosen.path.segments(chosen.backup.start_lsn, chosen.last_segment.end(size), size)
    ]
    # Decompressing starts now, beside the copy of the backup (two cores, two jobs).
    prefetcher = Prefetcher(
        archive.wal, names, spool, user, chosen.path.target, _past_the_end(chosen, size)
    )
    prefetcher.start()
    instance = Instance(
        data_dir=into,
        pgbin=pgbin,
        user=user,
        port=request.port,
        socket_dir=into,
        log_file=into / LOG_NAME,
        superuser=config.superuser,
    )
    try:
        fetched, kept, unread = _lay_out(
            config, archive, chosen.backup, needed, request, step, phases
        )
        with phases.phase("settings"):
            specs = _specs_first(config, archive)
            user.write_file(into / REPOSITORIES_FILE, write_specs(specs))
            _write_recovery_settings(into, request, spool, specs, user)
        log_offset = log_size(instance.log_file)
        spawned = phases.now()
        child = instance.spawn_postmaster()
        instance.import_driver_meanwhile()  # for the one connection at the end
        step(
            f"started PostgreSQL {pgbin.version} on port {request.port}, replaying to "
            f"{request.target.describe()}"
        )
        waiting = Waiting(
            request.target, request.action, started + request.timeout, request.timeout, into
        )
        arrival = wait(instance, child, waiting, phases, spawned, log_offset)
    finally:
        with phases.phase("cleanup"):
            prefetcher.stop()
            shutil.rmtree(spool, ignore_errors=True)
    lsn, timeline = arrival.lsn, arrival.timeline
    if timeline is None and lsn is not None:
        timeline = chosen.path.timeline_at(Lsn.parse(lsn))
    return RestoreResult(
        into=str(into),
        port=request.port,
        backup=chosen.backup.label,
        target=request.target.describe(),
        state=arrival.reached,
        lsn=lsn,
        time=arrival.time,
        timeline=timeline,
        seconds=phases.now() - started,
        log=str(instance.log_file),
        fetched_bytes=fetched,
        kept_bytes=kept,
        unread_bytes=unread,
        phases=phases.as_json(),
    )


def _lay_out(
    config: LiteConfig,
    archive: Archive,
    backup: Backup,
    needed: list[Backup],
    request: RestoreRequest,
    step: Callable[[str], None],
    phases: Phases,
) -> tuple[int, int, int]:
    """The backup's files in place: (bytes fetched, bytes kept, bytes of files not read)."""
    user = osuser.resolve(config.os_user)
    if backup.format is BackupFormat.BUNDLES:
        with phases.phase("plan"):
            manifest = archive.manifest(backup.label)
        laid = lay_out(
            archive,
            manifest,
            request.into,
            request.delta,
            config.backup.workers,
            user,
            step,
            _recorders(archive, manifest, needed, request),
            phases,
        )
        return laid.fetched_bytes, laid.kept_bytes, laid.unread_bytes
    with phases.phase("copy"):
        run(
            ["cp", "-a", f"{archive.backup_dir(backup.label)}/data/.", str(request.into)],
            user,
            timeout=3600,
        )
    step(f"copied backup {backup.label} ({backup.size_bytes / 1e6:.0f} MB) into {request.into}")
    return backup.size_bytes, 0, 0


def _recorders(
    archive: Archive, manifest: Manifest, needed: list[Backup], request: RestoreRequest
) -> list[Recorder] | None:
    """What a delta restore may take a local file to hold by its size and time: the
    entries of the backup restored and of its ancestors, newest first (an earlier restore
    of the parent left the parent's times). None with --checksum: every file is read."""
    if not request.delta or request.checksum:
        return None
    *older, backup = needed
    return [Recorder(backup, lambda: manifest)] + [
        Recorder(b, partial(archive.manifest, b.label)) for b in reversed(older)
    ]


def _specs_first(config: LiteConfig, archive: Archive) -> tuple[RepositorySpec, ...]:
    """Every repository, the one the backup came from first (restore_command's order)."""
    assert config.archive is not None
    specs = config.archive.specs()
    return tuple(sorted(specs, key=lambda s: s.name != archive.name))


def _write_recovery_settings(
    into: Path,
    request: RestoreRequest,
    spool: Path,
    specs: tuple[RepositorySpec, ...],
    user: OsUser,
) -> None:
    for stale in (STANDBY_SIGNAL, RECOVERY_SIGNAL, "postmaster.pid", "postmaster.opts"):
        (into / stale).unlink(missing_ok=True)
    settings: dict[str, conf.Setting] = dict(conf.read_include(into))
    # From the spool if prefetched (a rename; the last segment's second copy for its
    # second read); not at all for a name the archive is known not to have (the timeline
    # probes, the segment after the end with --latest); else from the archive.
    spooled = shlex.quote(str(spool))
    restore_command = (
        f"mv -f {spooled}/%f %p 2>/dev/null || "
        f"cp {spooled}/{AGAIN}%f %p 2>/dev/null || "
        f"{{ test ! -e {spooled}/.absent-%f && "
        f"{fetch_command(['--repos', str(into / REPOSITORIES_FILE)], history_dir(specs))}; }}"
    )
    settings.update(
        {
            "listen_addresses": "127.0.0.1",
            "port": request.port,
            "unix_socket_directories": str(into),
            "cluster_name": f"restore_{into.name}"[:60],
            "archive_mode": "off",
            "primary_conninfo": "",
            "primary_slot_name": "",
            "hot_standby": True,
            "restore_command": restore_command,
            "recovery_target_action": request.action,
            "recovery_target_timeline": (
                str(request.timeline) if request.timeline is not None else "latest"
            ),
            **request.target.settings(),
        }
    )
    settings.pop("archive_command", None)
    text = conf.render(f"restore into {into}", settings)
    user.write_file(into / conf.INCLUDE_FILE, text)
    main = into / "postgresql.conf"
    current = main.read_text() if main.exists() else ""
    if conf.with_include(current) != current:
        user.write_file(main, conf.with_include(current))
    user.write_file(into / RECOVERY_SIGNAL, "")


def _past_the_end(chosen: RestorePlan, size: int) -> list[str]:
    """--latest: the names replay asks for after the newest segment archived when the
    restore began (the next segment, on each timeline it may look for it on), which
    the archive did not hold then. Marked absent in the spool, restore_command answers
    "not there" at once instead of starting ``pgherd wal fetch`` to learn it (up to a
    second each, twice at the end of every such restore); a target, which may need a
    segment after the last one planned, marks none."""
    if chosen.target.kind is not TargetKind.LATEST:
        return []
    last = chosen.last_segment
    return [
        Segment(last.number + 1, timeline).name(size)
        for timeline in chosen.path.timelines
        if timeline >= last.timeline
    ]


class Prefetcher(threading.Thread):
    """Decompresses the segments replay will ask for next into the spool, in order,
    at most PREFETCH_AHEAD at a time; restore_command moves them into pg_wal.

    The last one is placed twice: a promotion reads the segment it ends in once more
    (to start the new timeline's first segment), and restore_command copies it from
    the second copy rather than fetch it again (history files likewise). ``absent``:
    names marked as not in the archive (see :func:`_past_the_end`)."""

    def __init__(
        self,
        wal: WalArchive,
        names: list[str],
        spool: Path,
        user: OsUser,
        timeline: int,
        absent: list[str] | None = None,
    ) -> None:
        super().__init__(name="prefetch", daemon=True)
        self.wal = wal
        self.names = names
        self.spool = spool
        self.user = user
        self.timeline = timeline
        self.absent = absent or []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def _waiting(self) -> int:
        try:
            return sum(
                1
                for e in os.scandir(self.spool)
                if not e.name.startswith(".") and not e.name.endswith(".history")
            )
        except FileNotFoundError:
            return 0

    def _place(self, name: str, data: bytes) -> None:
        tmp = self.spool / f".{name}.tmp"
        tmp.write_bytes(data)
        self.user.chown(tmp)
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.spool / name)

    def _stage_histories(self) -> None:
        """History files first (PostgreSQL reads them before any segment), each twice: at
        promotion it reads the parent timeline's once more, to copy it into the new
        timeline's. Markers for the next timeline's, which recovery probes for at its
        start and its end, and for timeline 1's, which never exists but which a
        promotion from timeline 1 asks for (each ask a ``pgherd wal fetch`` otherwise:
        0.3 s from S3, measured)."""
        newest = self.timeline
        for found in self.wal.files():
            if found.wal.kind is WalKind.HISTORY:
                data = self.wal.read(found)
                self._place(f"{AGAIN}{found.name}", data)
                self._place(found.name, data)
                newest = max(newest, found.wal.timeline)
        for name in [f"{newest + 1:08X}.history", TIMELINE_ONE_HISTORY, *self.absent]:
            marker = self.spool / f".absent-{name}"
            marker.touch()
            self.user.chown(marker)

    def run(self) -> None:
        with contextlib.suppress(PgherdError, OSError):
            self._stage_histories()
            for name in self.names:
                while self._waiting() >= PREFETCH_AHEAD:
                    if self._halt.wait(0.02):
                        return
                if self._halt.is_set():
                    return
                found = self.wal.find(name)
                if not found:
                    continue
                # A corrupt one stops the prefetch: restore_command's own fetch then
                # reports it and stops the restore.
                data = self.wal.read(found[0])
                if name == self.names[-1]:
                    self._place(f"{AGAIN}{name}", data)
                self._place(name, data)
