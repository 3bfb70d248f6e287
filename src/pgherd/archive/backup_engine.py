"""Taking a bundled backup: full, differential or incremental, in parallel, resumable.

Runs where the data directory is (the CLI on the node's host, or the node's agent):

1. ``pg_backup_start`` (fast checkpoint) on a session that stays open;
2. the data directory is walked (what pg_basebackup leaves out is left out here:
   pg_wal's contents, postmaster.pid, temporary and unlogged relations…) and its files
   are shared among ``workers`` threads (reading, hashing and zstd release the GIL), each
   cutting files into chunks (:mod:`pgherd.model.backup_manifest`) and packing the ones
   to store into its own bundles (:mod:`pgherd.archive.bundles`);
3. a chunk is stored unless the parent backup holds the same bytes or — for a
   relation's main fork — its pages were not changed through WAL since the parent
   started (block-level by page LSN, honest on PostgreSQL 15 without WAL summaries:
   every change to a page of a logged relation sets the page's LSN, the start
   checkpoint flushed every page changed before it, full_page_writes repairs pages
   read while they were being written; visibility-map and free-space-map forks, which
   change without a new page LSN, are compared by content like every other file);
4. ``pg_backup_stop``, and the segment holding the end archived before the catalog
   entry is written (last), so a listed backup is restorable.

Resuming: bundles are indexed as they are stored; a backup interrupted midway keeps its
label and a ``partial`` marker, and the next ``backup create`` of the same kind reads the
indexes and stores only chunks whose bytes are not there yet.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import RawIOBase
from pathlib import Path

from pgherd.archive.bundles import BundleWriter, chunk_hash, read_index
from pgherd.archive.repository import Repository
from pgherd.model.backup_manifest import (
    CHUNK_SIZE,
    Chunk,
    FileEntry,
    Manifest,
    reuse,
    unchanged_since,
)
from pgherd.model.backup_trust import Stat, backup_skips
from pgherd.model.lsn import Lsn

log = logging.getLogger(__name__)

# What pg_basebackup leaves out (src/backend/backup/basebackup.c): directories whose
# contents are not copied, and files never copied.
SKIP_CONTENTS = frozenset(
    {
        "pg_wal",
        "pg_dynshmem",
        "pg_notify",
        "pg_replslot",
        "pg_serial",
        "pg_snapshots",
        "pg_stat_tmp",
        "pg_subtrans",
        "pgherd_prefetch",
    }
)
SKIP_FILES = frozenset(
    {
        "postmaster.pid",
        "postmaster.opts",
        "pg_internal.init",
        "backup_label",
        "backup_label.old",
        "tablespace_map",
        "current_logfiles",
        "recovery.signal",
        "standby.signal",
        "recovery.done",
        "pgherd-repositories.json",  # a restored server's restore_command (restore.py)
    }
)
READ_CHUNKS = 8  # chunks read at once (1 MB)
CONTROL_FILE = "global/pg_control"  # copied last, as pg_basebackup does
_RELATION = re.compile(r"^(\d+)(_(?:fsm|vm|init))?(?:\.\d+)?$")
_TEMP_RELATION = re.compile(r"^t\d+_\d+")
_RELATION_DIR = re.compile(r"^(?:base/\d+|global|pg_tblspc/\d+/[^/]+/\d+)$")


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative, "/"-separated
    size: int
    mode: int
    relation: bool  # a main-fork segment of a logged relation: compared by page LSN
    mtime_ns: int = 0
    ctime_ns: int = 0  # a delta restore's clue that a restore set the time (backup_trust)


def walk(data_dir: Path) -> tuple[list[SourceFile], list[str]]:
    """(files, directories) of a data directory, as a backup copies them."""
    files: list[SourceFile] = []
    directories: list[str] = []
    for directory, names, found in _walk(data_dir):
        rel_dir = directory.relative_to(data_dir).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if rel_dir:
            directories.append(rel_dir)
        top = rel_dir.split("/", 1)[0]
        if rel_dir and top in SKIP_CONTENTS:
            names[:] = [n for n in names if rel_dir == "pg_wal" and n == "archive_status"]
            continue
        names[:] = [n for n in names if not n.startswith("pgsql_tmp")]
        in_relation_dir = bool(_RELATION_DIR.match(rel_dir))
        unlogged = {
            m.group(1) for n in found if (m := _RELATION.match(n)) and m.group(2) == "_init"
        }
        for name in found:
            if name in SKIP_FILES or name.startswith("pgsql_tmp"):
                continue
            match = _RELATION.match(name) if in_relation_dir else None
            if in_relation_dir and _TEMP_RELATION.match(name):
                continue
            if match and match.group(1) in unlogged and match.group(2) != "_init":
                continue  # an unlogged relation: only its init fork is copied
            path = directory / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # dropped while we looked
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            files.append(
                SourceFile(
                    rel,
                    st.st_size,
                    st.st_mode & 0o777,
                    bool(match and not match.group(2)),
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                )
            )
    return files, directories


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk that follows the symbolic links of pg_tblspc (tablespaces) only."""
    for directory, names, found in os.walk(root):
        here = Path(directory)
        yield here, names, found
        if here == root / "pg_tblspc":
            for name in list(found):
                link = here / name
                if link.is_symlink() and link.is_dir():
                    yield from _walk_link(link, root)


def _walk_link(link: Path, root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for directory, names, found in os.walk(link, followlinks=True):
        yield Path(directory), names, found


@dataclass
class EngineProgress:
    total_bytes: int
    read_bytes: int = 0
    stored_bytes: int = 0
    reused_bytes: int = 0
    files: int = 0


class BackupEngine:
    def __init__(
        self,
        repository: Repository,
        label: str,
        data_dir: Path,
        parent: Manifest | None,
        workers: int,
        on_progress: Callable[[EngineProgress], None] = lambda _p: None,
        read_before_ns: int | None = None,
        checksum: bool = False,
    ) -> None:
        self.repository = repository
        self.label = label
        self.data_dir = data_dir
        self.parent = parent
        self.workers = max(1, workers)
        # Files of the parent's size and time, that time before this bound, are the
        # parent's bytes exactly: not read at all (model/backup_trust.py). None: read all.
        self.read_before_ns = None if checksum else read_before_ns
        # --checksum: every chunk read is hashed (no page-LSN shortcut before the hash)
        self.checksum = checksum
        self.on_progress = on_progress
        self.prefix = f"backups/{label}/"
        self._lock = threading.Lock()
        self._resume: dict[tuple[str, int, str], Chunk] = {}
        self.progress = EngineProgress(0)

    def load_resume(self) -> int:
        """Chunks an interrupted run of this label stored already (by their indexes)."""
        storage = self.repository.storage
        for obj in storage.list(self.prefix):
            if obj.key.endswith(".idx"):
                for path, chunk in read_index(storage, obj.key):
                    self._resume[(path, chunk.index, chunk.hash)] = chunk
        return len(self._resume)

    def copy(self, files: list[SourceFile]) -> list[FileEntry]:
        """Every file, in parallel; pg_control last."""
        self.progress = EngineProgress(sum(f.size for f in files))
        control = [f for f in files if f.path == CONTROL_FILE]
        rest = sorted((f for f in files if f.path != CONTROL_FILE), key=lambda f: -f.size)
        entries = self._parallel(rest)
        entries += self._parallel(control)
        return sorted(entries, key=lambda e: e.path)

    def _parallel(self, files: list[SourceFile]) -> list[FileEntry]:
        todo: queue.SimpleQueue[SourceFile] = queue.SimpleQueue()
        for f in files:
            todo.put(f)
        done: list[FileEntry] = []
        failures: list[BaseException] = []
        run = secrets.token_hex(3)

        def work(number: int) -> None:
            writer = BundleWriter(
                self.repository.raw,
                self.repository.storage,
                self.repository.cipher,
                f"{self.prefix}bundles/",
                f"{run}-{number}",
                self._stored,
            )
            try:
                while not failures:
                    try:
                        source = todo.get_nowait()
                    except queue.Empty:
                        break
                    entry = self._file(source, writer)
                    if entry is not None:
                        with self._lock:
                            done.append(entry)
                writer.flush()
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=work, args=(n,), name=f"backup-{n}")
            for n in range(min(self.workers, max(1, len(files))))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return done

    def _stored(self, size: int) -> None:
        with self._lock:
            self.progress.stored_bytes += size

    def _file(self, source: SourceFile, writer: BundleWriter) -> FileEntry | None:
        parent = self.parent.file(source.path) if self.parent is not None else None
        threshold = self.parent.start_lsn if self.parent is not None else None
        if backup_skips(Stat(source.size, source.mtime_ns), parent, self.read_before_ns):
            assert parent is not None
            with self._lock:
                self.progress.reused_bytes += source.size
                self.progress.files += 1
            return FileEntry(source.path, parent.size, source.mode, parent.chunks, parent.mtime_ns)
        chunks: list[Chunk] = []
        size = 0
        # Read in blocks of READ_CHUNKS chunks into one buffer: fewer system calls and no
        # allocation per chunk; an unchanged relation chunk is then only looked at (its
        # page headers), never copied or hashed.
        buffer = bytearray(READ_CHUNKS * CHUNK_SIZE)
        view = memoryview(buffer)
        try:
            with (self.data_dir / source.path).open("rb", buffering=0) as handle:
                index = 0
                while got := _fill(handle, view):
                    for start in range(0, got, CHUNK_SIZE):
                        data = view[start : min(start + CHUNK_SIZE, got)]
                        chunks.append(self._chunk(source, index, data, parent, threshold, writer))
                        size += len(data)
                        index += 1
                    if got < len(buffer):
                        break
        except FileNotFoundError:
            return None  # dropped during the backup: replay removes it too
        with self._lock:
            self.progress.files += 1
        self.on_progress(self.progress)
        return FileEntry(source.path, size, source.mode, tuple(chunks), source.mtime_ns)

    def _chunk(
        self,
        source: SourceFile,
        index: int,
        view: memoryview,
        parent: FileEntry | None,
        threshold: Lsn | None,
        writer: BundleWriter,
    ) -> Chunk:
        with self._lock:
            self.progress.read_bytes += len(view)
        before = parent.chunks[index] if parent is not None and index < len(parent.chunks) else None
        if (
            source.relation
            and not self.checksum
            and before is not None
            and threshold is not None
            and before.size == len(view)
            and unchanged_since(view, threshold)
        ):
            # Not changed through WAL since the parent started: the parent's copy serves,
            # and the chunk is not even hashed (the cost of an incremental backup is then
            # reading the pages' headers). Its recorded hash is the parent's, so a delta
            # restore keeps a local chunk equal to the parent's copy.
            return self._reused(before, len(view))
        data = bytes(view)  # the buffer is reused for the next block
        digest = chunk_hash(data)
        resumed = self._resume.get((source.path, index, digest))
        if resumed is not None:
            return resumed
        if before is not None and reuse(source.relation, digest, data, before, threshold):
            return self._reused(before, len(data), digest)
        return writer.add(source.path, index, data, digest)

    def _reused(self, before: Chunk, size: int, digest: str | None = None) -> Chunk:
        with self._lock:
            self.progress.reused_bytes += size
        return Chunk(
            before.index,
            size,
            digest or before.hash,
            before.stored,
            before.bundle,
            before.offset,
            before.length,
        )


def _fill(handle: RawIOBase, view: memoryview) -> int:
    """Bytes read into ``view``: all of it unless the file ends first (a short read in
    the middle of a file that grows must not cut a chunk in two)."""
    got = 0
    while got < len(view):
        more = handle.readinto(view[got:])
        if not more:
            break
        got += more
    return got
