"""An S3-compatible repository against a real S3 server (moto's, on loopback) behind a
proxy that injects faults: answers of 500, stalls, a full store, damaged bodies. And a
bundled backup through it, encrypted, restored whole and by delta."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd.archive.backup_engine import BackupEngine, walk
from pgherd.archive.catalog import Archive
from pgherd.archive.crypto import Cipher
from pgherd.archive.repository import Repository, open_repository
from pgherd.archive.restore_files import lay_out
from pgherd.archive.storage import LocalStorage, StorageError
from pgherd.archive.storage_s3 import S3Location, S3Storage, read_credentials
from pgherd.archive.store import Identity, WalArchive
from pgherd.archive.wal_repos import WalRepositories
from pgherd.model.backup_manifest import CHUNK_SIZE, PAGE_SIZE, Manifest
from pgherd.model.lsn import Lsn
from pgherd.model.repository import RepositorySpec
from pgherd.pg import osuser
from tests.s3_server import S3Server, s3_server, write_credentials
from tests.unit.test_wal_store import SIZE, SYSID, name, segment_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as started:
        started.make_bucket("pgherd-test")
        yield started


@pytest.fixture(autouse=True)
def no_faults(server: S3Server) -> None:
    server.faults.__init__()  # type: ignore[misc]


def storage(server: S3Server, tmp_path: Path, prefix: str, **kwargs: float) -> S3Storage:
    return S3Storage(
        S3Location.parse(f"s3://pgherd-test/{prefix}"),
        read_credentials(write_credentials(tmp_path / "s3.credentials")),
        endpoint=server.endpoint,
        **kwargs,  # type: ignore[arg-type]
    )


def test_objects_round_trip_never_replaced_and_listed_by_prefix(
    server: S3Server, tmp_path: Path
) -> None:
    s3 = storage(server, tmp_path, "basics")
    assert s3.put_new("wal/a", b"first")
    assert not s3.put_new("wal/a", b"second")  # a conditional write: nothing replaced
    assert s3.get("wal/a") == b"first"
    assert s3.get("wal/missing") is None
    assert s3.get_range("wal/a", 1, 3) == b"irs"
    big = os.urandom(20 * 1024 * 1024)  # above the multipart threshold
    assert s3.put_new("backups/big", big)
    assert s3.get("backups/big") == big
    assert [o.key for o in s3.list("wal/")] == ["wal/a"]
    assert s3.delete("wal/a") == 5
    assert s3.delete("wal/a") == 0
    assert "POST" in server.faults.seen  # the multipart upload's create and complete


def test_answers_of_500_are_retried_with_backoff_then_reported(
    server: S3Server, tmp_path: Path
) -> None:
    s3 = storage(server, tmp_path, "retries", max_attempts=4)
    server.faults.fail_next = 2
    assert s3.put_new("k", b"made it")
    assert s3.get("k") == b"made it"
    server.faults.fail_next = 100
    with pytest.raises(StorageError, match="InternalError"):
        s3.put_new("k2", b"never")
    server.faults.fail_next = 0
    assert s3.get("k2") is None


def test_a_stalled_store_times_out_and_the_retry_succeeds(server: S3Server, tmp_path: Path) -> None:
    s3 = storage(server, tmp_path, "stall", read_timeout=1, max_attempts=3)
    server.faults.stall_next, server.faults.stall_seconds = 1, 3
    started = time.monotonic()
    assert s3.put_new("k", b"after a stall")
    assert time.monotonic() - started < 10
    assert s3.get("k") == b"after a stall"


def test_a_full_store_fails_the_push_with_no_space_and_leaves_nothing(
    server: S3Server, tmp_path: Path
) -> None:
    s3 = storage(server, tmp_path, "full", max_attempts=2)
    WalArchive(s3).initialise(Identity(str(SYSID), 15, SIZE))
    repositories = WalRepositories([Repository(RepositorySpec("s3", repo="s3://x"), s3, None)])
    segment = tmp_path / name(3)
    segment.write_bytes(segment_bytes(3))
    server.faults.full = True
    with pytest.raises(StorageError) as failed:
        repositories.push(segment)
    assert failed.value.errno == errno.ENOSPC
    server.faults.full = False
    assert [o.key for o in s3.list("wal/")] == []
    repositories.push(segment)
    assert len(s3.list("wal/")) == 1


def test_a_damaged_object_is_caught_and_the_next_repository_serves_it(
    server: S3Server, tmp_path: Path
) -> None:
    s3 = storage(server, tmp_path, "damage")
    local = LocalStorage(tmp_path / "local")
    (tmp_path / "local").mkdir()
    repos = []
    for label, where in (("s3", s3), ("local", local)):
        WalArchive(where).initialise(Identity(str(SYSID), 15, SIZE))
        repos.append(Repository(RepositorySpec(label, path="/x"), where, None))
    both = WalRepositories(repos)
    source = tmp_path / name(4)
    source.write_bytes(segment_bytes(4, fill=7))
    both.push(source)
    server.faults.damage_gets = True
    target = tmp_path / "fetched"
    assert both.fetch(name(4), target)
    assert target.read_bytes() == source.read_bytes()
    s3_only = WalRepositories(repos[:1])
    with pytest.raises(StorageError, match=r"checksum"):
        s3_only.fetch(name(4), target)


def test_an_encrypted_wal_repository_holds_nothing_readable(
    server: S3Server, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    spec = RepositorySpec(
        "offsite",
        repo="s3://pgherd-test/sealed",
        endpoint=server.endpoint,
        credentials_file=str(write_credentials(tmp_path / "creds")),
        encryption_key_file=str(key),
    )
    repository = open_repository(spec)
    WalArchive(repository.storage).initialise(Identity(str(SYSID), 15, SIZE))
    repositories = WalRepositories([repository])
    source = tmp_path / name(5)
    source.write_bytes(segment_bytes(5, fill=9))
    repositories.push(source)
    (stored,) = repository.raw.list("wal/")
    raw = repository.raw.get(stored.key)
    assert raw is not None
    assert raw.startswith(b"PGHE")
    assert b"\x28\xb5\x2f\xfd" not in raw[:64]  # no zstd frame in the clear
    out = tmp_path / "out"
    assert repositories.fetch(name(5), out)
    assert out.read_bytes() == source.read_bytes()


# ---- a bundled backup through S3 -------------------------------------------------------


def page(lsn: int, fill: int) -> bytes:
    header = (lsn >> 32).to_bytes(4, "little") + (lsn & 0xFFFFFFFF).to_bytes(4, "little")
    return header + bytes([fill]) * (PAGE_SIZE - 8)


def data_dir(root: Path) -> Path:
    """A directory laid out like a data directory: a relation of 64 pages, a small file."""
    (root / "base" / "5").mkdir(parents=True)
    (root / "global").mkdir()
    (root / "pg_wal" / "archive_status").mkdir(parents=True)
    (root / "PG_VERSION").write_text("15\n")
    (root / "global" / "pg_control").write_bytes(b"\x01" * 8192)
    (root / "base" / "5" / "16384").write_bytes(
        b"".join(page(0x100, n % 200 + 1) for n in range(64))
    )
    (root / "pg_wal" / "000000010000000000000001").write_bytes(b"wal")  # never copied
    (root / "postmaster.pid").write_text("1\n")  # never copied
    return root


def backup(archive: Archive, label: str, source: Path, parent: Manifest | None) -> Manifest:
    engine = BackupEngine(archive.repository, label, source, parent, workers=2)
    files, directories = walk(source)
    entries = engine.copy(files)
    return Manifest(
        label, Lsn(0x1000), tuple(entries), tuple(directories), "START WAL LOCATION: 0/1000\n"
    )


def test_incremental_backup_through_s3_restores_whole_and_by_delta(
    server: S3Server, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    repository = Repository(
        RepositorySpec("s3", repo="s3://pgherd-test/backups"),
        storage(server, tmp_path, "backup"),
        Cipher(key.read_bytes()),
    )
    archive = Archive(repository)
    source = data_dir(tmp_path / "source")
    full = backup(archive, "F1", source, None)
    assert {f.path for f in full.files} == {"PG_VERSION", "global/pg_control", "base/5/16384"}
    assert "pg_wal/archive_status" in full.directories
    # change two pages through "WAL" (a new LSN) and one by hint bits only (same LSN)
    relation = source / "base" / "5" / "16384"
    pages = bytearray(relation.read_bytes())
    pages[3 * PAGE_SIZE : 4 * PAGE_SIZE] = page(0x5000, 77)
    pages[40 * PAGE_SIZE : 41 * PAGE_SIZE] = page(0x5000, 78)
    pages[60 * PAGE_SIZE + 100] ^= 0x01  # a hint bit: no new page LSN
    relation.write_bytes(bytes(pages))
    incremental = backup(archive, "I1", source, full)
    rel = incremental.file("base/5/16384")
    assert rel is not None
    own = [c for c in rel.chunks if c.bundle.startswith("backups/I1/")]
    assert sorted(c.index * CHUNK_SIZE // PAGE_SIZE for c in own) == [0, 32]  # two chunks
    assert incremental.stored_bytes("backups/I1/") < full.stored_bytes("backups/F1/")

    user = osuser.resolve("postgres")
    into = tmp_path / "restored"
    into.mkdir()
    lay_out(archive, incremental, into, False, 2, user, lambda _t: None)
    restored = (into / "base" / "5" / "16384").read_bytes()
    assert restored[3 * PAGE_SIZE : 4 * PAGE_SIZE] == page(0x5000, 77)
    assert restored[40 * PAGE_SIZE : 41 * PAGE_SIZE] == page(0x5000, 78)
    assert (into / "PG_VERSION").read_text() == "15\n"
    assert not (into / "postmaster.pid").exists()
    assert (into / "backup_label").read_text().startswith("START WAL LOCATION")

    # the restored copy diverges (one page, a stray file, stale WAL); a delta restore
    # fetches only the chunk that differs and removes the rest
    diverged = bytearray(restored)
    diverged[10 * PAGE_SIZE] ^= 0xFF
    (into / "base" / "5" / "16384").write_bytes(bytes(diverged))
    (into / "base" / "5" / "99999").write_bytes(b"stray")
    (into / "pg_wal" / "000000020000000000000009").write_bytes(b"stale")
    seen = len(server.faults.seen)
    untouched = (into / "PG_VERSION").stat()
    result = lay_out(archive, incremental, into, True, 2, user, lambda _t: None)
    assert result.fetched_bytes == CHUNK_SIZE
    # a file kept whole is not opened: its inode is not even touched (ctime unchanged)
    assert (into / "PG_VERSION").stat().st_ctime_ns == untouched.st_ctime_ns
    assert result.removed == 1
    assert (into / "base" / "5" / "16384").read_bytes() == restored
    assert not (into / "base" / "5" / "99999").exists()
    assert list((into / "pg_wal").iterdir()) == [into / "pg_wal" / "archive_status"]
    assert len(server.faults.seen) - seen <= 3  # one ranged GET (and the index reads)
