"""Where archived files live, behind one small interface.

The interface has the shape of an object store (flat keys, listing by prefix, a write
that never replaces, ranged reads): a local or mounted directory here
(:class:`LocalStorage`), an S3-compatible store in :mod:`pgherd.archive.storage_s3`, and
:class:`MemoryStorage` for unit tests. Keys use ``/`` as a separator.

Every backend raises :class:`StorageError` (an OSError, so callers that handle I/O
failures handle it) for a failure the repository reported, after its own retries.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    mtime: float  # seconds since the epoch, when it was stored


class StorageError(OSError):
    """The repository failed (after retries): full, unreachable, refusing, corrupt."""


def read_private(path: Path, what: str) -> bytes:
    """The bytes of a secret file a repository needs (``what``: "the encryption key file",
    "the credentials file"), refused unless only its owner may read it: a key or a
    password others can read is a leaked one."""
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except OSError as exc:
        raise StorageError(
            exc.errno or errno.EIO, f"cannot read {what} {path}: {exc.strerror}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StorageError(
            errno.EPERM,
            f"{what} {path} is readable by others (mode {mode & 0o777:o}); chmod 600 {path}",
        )
    return raw


class Storage(Protocol):
    def put_new(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` durably and atomically, unless ``key`` exists.

        Returns False (and changes nothing) when the key already exists: the archive
        never replaces a file. Readers never see a partly written object.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; StorageError when the key or range is absent."""
        ...

    def list(self, prefix: str) -> list[StoredObject]:
        """Objects whose key starts with ``prefix``, sorted by key."""
        ...

    def delete(self, key: str) -> int:
        """Remove ``key`` (and an emptied folder); returns the bytes freed (0 if absent)."""
        ...

    def describe(self) -> str: ...


class LocalStorage:
    """A directory: files written to a temporary name, fsynced, linked to their final
    name (link fails if it exists, so nothing is ever overwritten) and the directory
    fsynced, so a crash leaves either the whole file or none."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._owner: tuple[int, int] | None = None

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key

    def owner(self) -> tuple[int, int]:
        """Who owns the archive (files root creates are given to them)."""
        if self._owner is None:
            st = self.root.stat()
            self._owner = (st.st_uid, st.st_gid)
        return self._owner

    def _give(self, path: Path) -> None:
        if os.geteuid() == 0:
            uid, gid = self.owner()
            if uid != 0:
                os.chown(path, uid, gid)

    def make_dirs(self, directory: Path) -> None:
        missing = []
        probe = directory
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            self._give(path)
            fsync_dir(path.parent)

    def put_new(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        if final.exists():
            return False
        self.make_dirs(final.parent)
        # pid and thread: the resident pusher writes from several threads at once.
        tmp = final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}.{threading.get_native_id()}")
        # Whatever fails (ENOSPC mid-write, a failed fsync or link), the temporary file
        # goes: a push that fails for lack of space must not leave its partial copy in
        # the archive to fill it further.
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._give(tmp)
            os.link(tmp, final)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(final.parent)
        return True

    def sweep_temporary(self, older_than: float = 3600) -> list[str]:
        """Remove temporary files that no running writer owns: their process is gone,
        or they are older than ``older_than`` seconds (a writer killed by SIGKILL, an
        earlier pgherd that leaked them). Returns the keys removed."""
        removed = []
        now = time.time()
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                match = _TMP_NAME.match(name)
                if match is None:
                    continue
                path = Path(directory) / name
                try:
                    age = now - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if _alive(int(match.group(1))) and age < older_than:
                    continue
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(self.root)))
        return removed

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(start)
                data = handle.read(length)
        except FileNotFoundError:
            raise StorageError(errno.ENOENT, f"{key} is not in {self.root}") from None
        if len(data) != length:
            raise StorageError(errno.EIO, f"{key} in {self.root} is shorter than expected")
        return data

    def list(self, prefix: str) -> list[StoredObject]:
        folder, _, start = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        found = []
        for directory, name in _walk(base, start):
            try:
                st = os.stat(directory / name)
            except FileNotFoundError:
                continue
            key = str((directory / name).relative_to(self.root))
            found.append(StoredObject(key, st.st_size, st.st_mtime))
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> int:
        path = self._path(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        try:
            path.parent.rmdir()  # only succeeds when it is empty
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        return size


TMP_MARK = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.tmp(\d+)(?:\.\d+)?$")


def _alive(pid: int) -> bool:
    """Whether a process runs with this pid (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _walk(base: Path, start: str) -> Iterator[tuple[Path, str]]:
    """Files under ``base`` whose first path part starts with ``start``; temp files skipped."""
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.startswith(start) or entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            for root, _dirs, files in os.walk(entry.path):
                for name in files:
                    if not name.startswith("."):
                        yield Path(root), name
        else:
            yield base, entry.name


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryStorage:
    """The same contract in memory, for unit tests of the archive's rules."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def describe(self) -> str:
        return "memory"

    def put_new(self, key: str, data: bytes) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = bytes(data)
        return True

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data = self.objects.get(key)
        if data is None or start + length > len(data):
            raise StorageError(errno.ENOENT, f"{key}: no such range")
        return data[start : start + length]

    def list(self, prefix: str) -> list[StoredObject]:
        return [
            StoredObject(k, len(v), 0.0)
            for k, v in sorted(self.objects.items())
            if k.startswith(prefix)
        ]

    def delete(self, key: str) -> int:
        data = self.objects.pop(key, None)
        return 0 if data is None else len(data)
