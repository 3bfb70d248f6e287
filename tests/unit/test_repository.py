"""Repositories without a server: the local directory's failure paths (no leaked temporary
files, a sweep of stale ones), sealing with AES-256-GCM, bundles read back by range,
the spool protocol and the resident pusher against a directory laid out like pg_wal."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from pgherd.archive import spool
from pgherd.archive.bundles import BundleWriter, ChunkReader, chunk_hash, read_index, runs
from pgherd.archive.crypto import Cipher, DecryptError, EncryptedStorage, parse_key, read_key
from pgherd.archive.pusher import Pusher
from pgherd.archive.repository import Repository
from pgherd.archive.storage import LocalStorage, MemoryStorage, StorageError
from pgherd.archive.store import Identity, WalArchive
from pgherd.archive.wal_repos import WalRepositories
from pgherd.errors import CorruptWal
from pgherd.model.backup_manifest import FileEntry, Manifest
from pgherd.model.lsn import Lsn
from pgherd.model.repository import RepositorySpec
from tests.unit.test_wal_store import SIZE, SYSID, name, segment_bytes

KEY = bytes(range(32))


def test_a_push_that_fails_midway_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The known leak: a write that fails for lack of space left .<name>.tmpNNNN."""
    storage = LocalStorage(tmp_path)
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        storage.put_new("wal/x/seg", b"data")
    monkeypatch.setattr(os, "write", real_write)
    assert [p.name for p in (tmp_path / "wal" / "x").iterdir()] == []
    assert storage.put_new("wal/x/seg", b"data")


def test_the_sweep_removes_stale_temporary_files_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "wal").mkdir()
    dead = tmp_path / "wal" / ".seg-abc.zst.tmp999999999"  # no such process
    dead.write_bytes(b"partial")
    mine = tmp_path / "wal" / f".seg-def.zst.tmp{os.getpid()}.1"  # a live writer
    mine.write_bytes(b"partial")
    old = tmp_path / "wal" / f".seg-old.zst.tmp{os.getpid()}"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    kept = tmp_path / "wal" / "seg-ghi.zst"
    kept.write_bytes(b"whole")
    removed = storage.sweep_temporary(older_than=3600)
    assert sorted(removed) == sorted([f"wal/{dead.name}", f"wal/{old.name}"])
    assert mine.exists()
    assert kept.exists()


def test_ranged_reads(tmp_path: Path) -> None:
    for storage in (LocalStorage(tmp_path), MemoryStorage()):
        storage.put_new("k", b"0123456789")
        assert storage.get_range("k", 3, 4) == b"3456"
        with pytest.raises(StorageError):
            storage.get_range("k", 8, 4)
        with pytest.raises(StorageError):
            storage.get_range("missing", 0, 1)


# ---- encryption ------------------------------------------------------------------------


def test_sealed_objects_open_only_under_their_own_name_and_key() -> None:
    inner = MemoryStorage()
    sealed = EncryptedStorage(inner, Cipher(KEY))
    assert sealed.put_new("wal/a", b"secret WAL")
    assert b"secret" not in inner.objects["wal/a"]
    assert sealed.get("wal/a") == b"secret WAL"
    inner.objects["wal/b"] = inner.objects["wal/a"]  # moved under another name
    with pytest.raises(DecryptError, match="wrong key, or the object is damaged"):
        sealed.get("wal/b")
    other = EncryptedStorage(inner, Cipher(bytes(32)))
    with pytest.raises(DecryptError):
        other.get("wal/a")
    flipped = bytearray(inner.objects["wal/a"])
    flipped[-1] ^= 1
    inner.objects["wal/a"] = bytes(flipped)
    with pytest.raises(DecryptError):
        sealed.get("wal/a")


@pytest.mark.parametrize(
    "text",
    [KEY, KEY.hex().encode(), b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"],
)
def test_key_formats(text: bytes) -> None:
    assert parse_key(text) == KEY


def test_a_key_file_readable_by_others_or_too_short_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(0o644)
    with pytest.raises(StorageError, match="readable by others"):
        read_key(key)
    key.chmod(0o600)
    assert read_key(key) == KEY
    key.write_bytes(b"short")
    with pytest.raises(StorageError, match="not a 256-bit key"):
        read_key(key)


# ---- bundles ---------------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True])
def test_bundles_store_chunks_that_read_back_by_range(encrypted: bool) -> None:
    raw = MemoryStorage()
    cipher = Cipher(KEY) if encrypted else None
    index_storage = EncryptedStorage(raw, cipher) if cipher else raw
    writer = BundleWriter(raw, index_storage, cipher, "backups/x/bundles/", "w0")
    datas = [bytes([n]) * (1000 + n) for n in range(5)]
    chunks = [writer.add("base/1/1", n, d, chunk_hash(d)) for n, d in enumerate(datas)]
    writer.flush()
    assert len(read_index(index_storage, writer.prefix + "w0-00000.idx")) == 5
    reader = ChunkReader(raw, cipher)
    (run,) = runs(chunks)
    assert reader.read_run(run) == datas
    assert reader.read_run([chunks[3]]) == [datas[3]]
    key = chunks[0].bundle
    damaged = bytearray(raw.objects[key])
    damaged[chunks[2].offset + 20] ^= 0xFF
    raw.objects[key] = bytes(damaged)
    with pytest.raises(CorruptWal, match=r"corrupt|checksum"):
        reader.read_run([chunks[2]])


# ---- the spool and the pusher ----------------------------------------------------------


def test_spool_answers_are_consumed_once(tmp_path: Path) -> None:
    assert spool.take_answer(tmp_path, "x") is None
    spool.write_answer(tmp_path, "x", spool.OK)
    assert spool.take_answer(tmp_path, "x") == (True, "")
    assert spool.take_answer(tmp_path, "x") is None
    spool.write_answer(tmp_path, "y", spool.ERROR, "the repository is full")
    assert spool.take_answer(tmp_path, "y") == (False, "the repository is full")
    assert not spool.pusher_running(tmp_path)


def repos(*storages: MemoryStorage) -> WalRepositories:
    found = []
    for n, storage in enumerate(storages):
        WalArchive(storage).initialise(Identity(str(SYSID), 15, SIZE))
        found.append(Repository(RepositorySpec(f"r{n}", path="/x"), storage, None))
    return WalRepositories(found)


def pg_wal(tmp_path: Path, numbers: range) -> Path:
    data = tmp_path / "data"
    (data / "pg_wal" / "archive_status").mkdir(parents=True)
    for n in numbers:
        (data / "pg_wal" / name(n)).write_bytes(segment_bytes(n))
        (data / "pg_wal" / "archive_status" / f"{name(n)}.ready").touch()
    return data


def test_the_pusher_archives_ahead_into_every_repository(tmp_path: Path) -> None:
    first, second = MemoryStorage(), MemoryStorage()
    data = pg_wal(tmp_path, range(1, 7))
    spooled = tmp_path / "spool"
    spooled.mkdir()
    pusher = Pusher(data, spooled, repos(first, second), workers=3, segment_size=SIZE)
    spool.mark_in_use(spooled)  # as archive_command does
    worker = threading.Thread(target=pusher.run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(list(spooled.glob("*.ok"))) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert spool.pusher_running(spooled)
    finally:
        pusher.stop()
        worker.join(5)
    assert len(list(spooled.glob("*.ok"))) == 6
    for storage in (first, second):
        assert len([k for k in storage.objects if k.startswith("wal/")]) == 6
    status = pusher.status()
    assert (status.pushed, status.failures, status.waiting) == (6, 0, 6)
    assert status.waiting_bytes == 6 * SIZE
    assert not spool.pusher_running(spooled)


class FullStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.full = True

    def put_new(self, key: str, data: bytes) -> bool:
        if self.full and key.startswith("wal/"):
            raise StorageError(errno.ENOSPC, "the repository is full")
        return super().put_new(key, data)


def test_a_failing_repository_is_answered_with_its_reason_and_nothing_is_acknowledged(
    tmp_path: Path,
) -> None:
    good = MemoryStorage()
    full = FullStorage()
    data = pg_wal(tmp_path, range(1, 3))
    spooled = tmp_path / "spool"
    spooled.mkdir()
    pusher = Pusher(data, spooled, repos(good, full), workers=2, segment_size=SIZE)
    pusher._push(name(1))
    assert spool.take_answer(spooled, name(1)) == (
        False,
        "the repository is full",
    )
    assert not list(spooled.glob("*.ok"))
    assert pusher.status().failures == 1
    assert pusher.status().last_error == f"{name(1)}: the repository is full"


def test_the_pushers_error_is_forgotten_once_the_failing_segment_is_pushed(
    tmp_path: Path,
) -> None:
    """A full repository that got space back: ``archive status`` reads ``last_error`` as
    "the pusher fails now", so it must not outlive the failure (failures keeps the count)."""
    storage = FullStorage()
    data = pg_wal(tmp_path, range(1, 3))
    spooled = tmp_path / "spool"
    spooled.mkdir()
    pusher = Pusher(data, spooled, repos(storage), workers=1, segment_size=SIZE)
    pusher._push(name(1))
    pusher._push(name(2))
    storage.full = False  # space is back
    pusher._push(name(1))
    assert pusher.status().last_error == f"{name(2)}: the repository is full"  # still failing
    pusher._push(name(2))
    assert (pusher.status().failures, pusher.status().last_error) == (2, None)


# ---- an interrupted backup resumes -------------------------------------------------------


class FailingAfter(MemoryStorage):
    """Stores ``allowed`` bundles, then fails like a store that went away."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed = allowed

    def put_new(self, key: str, data: bytes) -> bool:
        if "/bundles/" in key and not key.endswith(".idx"):
            if self.allowed <= 0:
                raise StorageError(errno.EIO, "the connection was reset")
            self.allowed -= 1
        return super().put_new(key, data)


def test_an_interrupted_backup_resumes_without_storing_its_chunks_again(tmp_path: Path) -> None:
    from pgherd.archive.backup_engine import BackupEngine, walk

    source = tmp_path / "data"
    (source / "base" / "5").mkdir(parents=True)
    for n in range(4):  # four files of ~9 MB: one bundle each, at least
        (source / "base" / "5" / f"1638{n}").write_bytes(os.urandom(9 * 1024 * 1024))
    storage = FailingAfter(allowed=2)
    repository = Repository(RepositorySpec("r", path="/x"), storage, None)
    files, _dirs = walk(source)
    first = BackupEngine(repository, "F1", source, None, workers=1)
    with pytest.raises(StorageError, match="reset"):
        first.copy(files)
    stored_before = {k for k in storage.objects if "/bundles/" in k and not k.endswith(".idx")}
    assert len(stored_before) == 2
    storage.allowed = 100
    again = BackupEngine(repository, "F1", source, None, workers=1)
    assert again.load_resume() > 0
    entries = again.copy(files)
    reused = {c.bundle for e in entries for c in e.chunks} & stored_before
    assert reused, "chunks stored by the interrupted run are used again"
    assert again.progress.stored_bytes < 4 * 9 * 1024 * 1024 * 0.8


def test_a_file_untouched_since_the_parent_read_it_is_not_read_again(tmp_path: Path) -> None:
    """Same size and modification time as the parent recorded, that time before the
    parent started: the parent's entry serves. A file put back with other times (a copy
    restored by hand) is read and compared as usual."""
    from pgherd.archive.backup_engine import BackupEngine, walk

    source = tmp_path / "data"
    (source / "base" / "5").mkdir(parents=True)
    kept, put_back = source / "base" / "5" / "1", source / "base" / "5" / "2"
    kept.write_bytes(b"a" * 300_000)
    put_back.write_bytes(b"b" * 300_000)
    for path in (kept, put_back):
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    repository = Repository(RepositorySpec("r", path="/x"), MemoryStorage(), None)
    files, _dirs = walk(source)
    full = BackupEngine(repository, "F1", source, None, workers=1).copy(files)
    parent = Manifest_of(full)
    put_back.write_bytes(b"c" * 300_000)  # other bytes, put back with an old time
    os.utime(put_back, ns=(999_000_000_000_000_000, 999_000_000_000_000_000))
    files, _dirs = walk(source)
    child = BackupEngine(repository, "I1", source, parent, workers=1, read_before_ns=time.time_ns())
    entries = {e.path: e for e in child.copy(files)}
    assert child.progress.read_bytes == 300_000  # only the file put back was read
    assert entries["base/5/1"].chunks == parent.files[0].chunks
    assert entries["base/5/2"].chunks[0].hash != parent.files[1].chunks[0].hash
    checked = BackupEngine(
        repository, "I2", source, parent, workers=1, read_before_ns=time.time_ns(), checksum=True
    )
    checked.copy(files)
    assert checked.progress.read_bytes == 600_000  # --checksum: every file read


def Manifest_of(entries: list[FileEntry]) -> Manifest:
    return Manifest("F1", Lsn(0x1000), tuple(entries), (), "")
