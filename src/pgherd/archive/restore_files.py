"""Laying a bundled backup out in a directory: into an empty one, or ``--delta`` into
one that holds an older (or diverged) copy of the cluster, fetching only the chunks
whose bytes differ (model/backup_manifest.py decides), in parallel.

A delta restore also empties what must not survive into the restored server: pg_wal's
contents (stale WAL would be replayed), postmaster.pid and friends, and every file the
backup does not list.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pgherd.archive.backup_engine import SKIP_CONTENTS, SourceFile, walk
from pgherd.archive.bundles import ChunkReader, chunk_hash, runs
from pgherd.archive.catalog import Archive
from pgherd.archive.phases import Phases
from pgherd.model.backup import Backup
from pgherd.model.backup_manifest import CHUNK_SIZE, Chunk, DeltaPlan, Manifest, delta_plan
from pgherd.model.backup_trust import Recorded, Stat, known_hashes, restore_knows
from pgherd.pg.osuser import OsUser


@dataclass(frozen=True)
class LayoutResult:
    files: int
    fetched_bytes: int
    kept_bytes: int
    removed: int
    unread_bytes: int = 0  # local files taken as known by their size and time, not read


@dataclass(frozen=True)
class LocalFiles:
    """What a delta restore found in the directory."""

    hashes: dict[str, list[str | None]]  # per file, its chunks' hashes (known or read)
    unread_bytes: int  # of files known by their size and time


@dataclass(frozen=True)
class Recorder:
    """A backup whose manifest may say what a local file holds, read only if needed."""

    backup: Backup
    manifest: Callable[[], Manifest]


def local_hashes(
    into: Path,
    manifest: Manifest,
    workers: int,
    recorders: Sequence[Recorder] | None = None,
) -> LocalFiles:
    """Each present file's chunk hashes (files the backup does not list: an empty list).

    ``recorders``: the backup restored, then its ancestors (newest first); None
    (``--checksum``) reads every file. A file that shows the size and modification time
    one of them recorded holds that backup's bytes and is not read (model/backup_trust.py
    says when that is safe): only the chunks that differ are fetched. An ancestor's
    manifest is read only for files no newer one knows (an earlier restore of the parent
    is the common case: two manifests)."""
    files, _dirs = walk(into)
    found: dict[str, list[str | None]] = {}
    unread = 0
    pending = {f.path: f for f in files if manifest.file(f.path) is not None}
    for recorder in recorders or ():
        if not pending:
            break
        recorded = recorder.manifest()
        for path, source in list(pending.items()):
            entry = recorded.file(path)
            if entry is None:
                continue
            now = Stat(source.size, source.mtime_ns, source.ctime_ns)
            stamped = Recorded(entry, recorder.backup.start_time, recorder.backup.stop_time)
            known = restore_knows(now, [stamped])
            if known is not None:
                target = manifest.file(path)
                assert target is not None
                found[path] = known_hashes(known, target)
                unread += source.size
                del pending[path]
    for source in files:
        if source.path not in pending and source.path not in found:
            found[source.path] = []  # not in the backup: removed

    def one(source: SourceFile) -> None:
        hashes: list[str | None] = []
        with (into / source.path).open("rb") as handle:
            while data := handle.read(CHUNK_SIZE):
                hashes.append(chunk_hash(data))
        found[source.path] = hashes

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, pending.values()))
    return LocalFiles(found, unread)


def lay_out(
    archive: Archive,
    manifest: Manifest,
    into: Path,
    delta: bool,
    workers: int,
    user: OsUser,
    step: Callable[[str], None],
    recorders: Sequence[Recorder] | None = None,
    phases: Phases | None = None,
) -> LayoutResult:
    """``recorders`` (see :func:`local_hashes`): None reads every local file.
    ``phases``: gets local_scan (--delta: what the directory holds), create_files and
    fetch (the chunks read from the repository and written, in parallel)."""
    phases = phases if phases is not None else Phases()
    unread = 0
    with phases.phase("local_scan"):
        if delta:
            _clear_volatile(into)
            local = local_hashes(into, manifest, workers, recorders)
            plan = delta_plan(manifest, local.hashes)
            unread = local.unread_bytes
            for path in plan.remove:
                (into / path).unlink(missing_ok=True)
        else:
            plan = delta_plan(manifest, {})
    _fetch(archive, manifest, into, plan, workers, user, phases)
    user.write_file(into / "backup_label", manifest.backup_label)
    step(
        f"laid out backup {manifest.label}: fetched {plan.fetched_bytes / 1e6:.0f} MB"
        + (
            f", kept {plan.kept_bytes / 1e6:.0f} MB already in place "
            f"({unread / 1e6:.0f} MB of files known by their size and time, not read)"
            if delta
            else ""
        )
        + (f", removed {len(plan.remove)} files" if plan.remove else "")
    )
    return LayoutResult(
        len(manifest.files), plan.fetched_bytes, plan.kept_bytes, len(plan.remove), unread
    )


def _in_place(path: Path, size: int, mode: int, user: OsUser) -> os.stat_result | None:
    """The local file's status if it already has the size, mode and owner a restore
    gives it (and is a regular file); None otherwise."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    right = (
        stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and stat.S_IMODE(st.st_mode) == mode
        and (st.st_uid, st.st_gid) == (user.uid, user.gid)
    )
    return st if right else None


def _clear_volatile(into: Path) -> None:
    for name in SKIP_CONTENTS - {"pgherd_prefetch"}:  # the restore's own spool
        directory = into / name
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                if name == "pg_wal" and entry.name == "archive_status":
                    for status in entry.iterdir():
                        status.unlink()
                    continue
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _fetch(
    archive: Archive,
    manifest: Manifest,
    into: Path,
    plan: DeltaPlan,
    workers: int,
    user: OsUser,
    phases: Phases,
) -> None:
    with phases.phase("create_files"):
        fds = _create(manifest, into, plan, workers, user)
    try:
        with phases.phase("fetch"):
            _write_chunks(archive, plan, workers, fds)
            for path, fd in fds.items():  # the times read at backup: see local_hashes
                entry = manifest.file(path)
                if entry is not None and entry.mtime_ns:
                    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            # No fsync here: PostgreSQL syncs the whole data directory before it starts
            # recovering from a backup (backup_label, pg_control not shut down cleanly).
    finally:
        for fd in fds.values():
            os.close(fd)


def _create(
    manifest: Manifest, into: Path, plan: DeltaPlan, workers: int, user: OsUser
) -> dict[str, int]:
    """The backup's directories, and its files that get chunks written (created or
    truncated to their size, opened: path → fd); the others only get their time."""
    for directory in manifest.directories:
        target = into / directory
        if not target.is_dir():
            target.mkdir(mode=0o700)
            user.chown(target)
    fds: dict[str, int] = {}
    writing = {path for path, _chunk in plan.fetch}

    def create(item: tuple[str, int]) -> None:
        path, size = item
        entry = manifest.file(path)
        assert entry is not None
        found = None if path in writing else _in_place(into / path, size, entry.mode or 0o600, user)
        if found is not None:
            # Every chunk kept, the size, mode and owner right: not opened, so its inode
            # stays clean (PostgreSQL fsyncs every file before recovery; a thousand
            # touched inodes cost a journal commit each). Only the recorded time is set,
            # where it is not already.
            if entry.mtime_ns and found.st_mtime_ns != entry.mtime_ns:
                os.utime(into / path, ns=(entry.mtime_ns, entry.mtime_ns))
            return
        fd = os.open(into / path, os.O_RDWR | os.O_CREAT, entry.mode or 0o600)
        os.ftruncate(fd, size)
        os.fchmod(fd, entry.mode or 0o600)
        os.fchown(fd, user.uid, user.gid)
        fds[path] = fd

    # Creating a thousand files is I/O-bound too: in parallel, like the fetch.
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, plan.truncate))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _write_chunks(archive: Archive, plan: DeltaPlan, workers: int, fds: dict[str, int]) -> None:
    targets: dict[tuple[str, int], list[tuple[str, Chunk]]] = {}
    for path, chunk in plan.fetch:
        targets.setdefault((chunk.bundle, chunk.offset), []).append((path, chunk))
    reader = ChunkReader(archive.repository.raw, archive.repository.cipher)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def one(group: list[Chunk]) -> None:
        if failures:
            return
        try:
            for chunk, data in zip(group, reader.read_run(group), strict=True):
                for path, placed in targets[(chunk.bundle, chunk.offset)]:
                    os.pwrite(fds[path], data, placed.index * CHUNK_SIZE)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    unique = list({(c.bundle, c.offset): c for _p, c in plan.fetch}.values())
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, runs(unique)))
    if failures:
        raise failures[0]
