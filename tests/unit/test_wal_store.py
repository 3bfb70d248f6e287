"""The archive's rules on an in-memory storage: identity, no overwrite, checksums, gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.archive.storage import MemoryStorage
from pgherd.archive.store import Identity, WalArchive, key_of
from pgherd.errors import ArchiveError, ArchiveMismatch, CorruptWal, MissingWal, WalConflict
from pgherd.model.wal import Segment

SIZE = 1024 * 1024  # 1 MB segments keep the test fast; PostgreSQL allows them
SYSID = 7712250953690097144


def segment_bytes(number: int, sysid: int = SYSID, magic: int = 0xD110, fill: int = 0) -> bytes:
    head = (
        magic.to_bytes(2, "little")
        + (2).to_bytes(2, "little")
        + (1).to_bytes(4, "little")
        + (number * SIZE).to_bytes(8, "little")
        + bytes(8)
        + sysid.to_bytes(8, "little")
        + SIZE.to_bytes(4, "little")
        + (8192).to_bytes(4, "little")
    )
    body = bytes([fill]) * 4096 + bytes(SIZE - len(head) - 4096)
    return head + body


def name(number: int, timeline: int = 1) -> str:
    return Segment(number, timeline).name(SIZE)


@pytest.fixture
def archive() -> WalArchive:
    wal = WalArchive(MemoryStorage())
    assert wal.initialise(Identity(str(SYSID), 15, SIZE, "lab"))
    return wal


def write(tmp_path: Path, file_name: str, data: bytes) -> Path:
    path = tmp_path / file_name
    path.write_bytes(data)
    return path


def test_push_then_fetch_gives_back_the_same_bytes(archive: WalArchive, tmp_path: Path) -> None:
    data = segment_bytes(3, fill=7)
    result = archive.push(write(tmp_path, name(3), data))
    assert result.stored
    assert result.stored_bytes < result.original_bytes / 10
    assert archive.fetch(name(3), tmp_path / "RECOVERYXLOG")
    assert (tmp_path / "RECOVERYXLOG").read_bytes() == data
    assert not archive.fetch(name(4), tmp_path / "RECOVERYXLOG2")


def test_pushing_the_same_segment_again_succeeds(archive: WalArchive, tmp_path: Path) -> None:
    path = write(tmp_path, name(3), segment_bytes(3))
    assert archive.push(path).stored
    again = archive.push(path)
    assert not again.stored
    assert len(archive.files()) == 1


def test_a_different_file_under_an_archived_name_fails_and_keeps_the_original(
    archive: WalArchive, tmp_path: Path
) -> None:
    original = segment_bytes(3, fill=1)
    archive.push(write(tmp_path, name(3), original))
    with pytest.raises(WalConflict, match="already archived with different contents"):
        archive.push(write(tmp_path, name(3), segment_bytes(3, fill=2)))
    assert archive.fetch(name(3), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == original


def test_wal_of_another_cluster_is_refused(archive: WalArchive, tmp_path: Path) -> None:
    with pytest.raises(ArchiveMismatch, match="comes from another cluster"):
        archive.push(write(tmp_path, name(3), segment_bytes(3, sysid=42)))
    with pytest.raises(ArchiveMismatch, match="PostgreSQL 16"):
        archive.push(write(tmp_path, name(3), segment_bytes(3, magic=0xD113)))
    assert archive.files() == []


def test_a_segment_under_the_wrong_name_is_refused(archive: WalArchive, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="does not hold the segment its name says"):
        archive.push(write(tmp_path, name(4), segment_bytes(3)))


def test_initialising_over_another_clusters_archive_is_refused(archive: WalArchive) -> None:
    assert not archive.initialise(Identity(str(SYSID), 15, SIZE))  # same cluster: fine
    with pytest.raises(ArchiveMismatch, match="belongs to another cluster"):
        archive.initialise(Identity("42", 15, SIZE))


def test_a_corrupted_file_is_named_on_fetch(archive: WalArchive, tmp_path: Path) -> None:
    data = segment_bytes(3, fill=9)
    archive.push(write(tmp_path, name(3), data))
    (stored,) = archive.files()
    storage = archive.storage
    assert isinstance(storage, MemoryStorage)
    raw = bytearray(storage.objects[stored.key])
    raw[len(raw) // 2] ^= 0xFF
    storage.objects[stored.key] = bytes(raw)
    with pytest.raises(CorruptWal, match=f"{name(3)} in memory is corrupt"):
        archive.fetch(name(3), tmp_path / "out")


def test_a_checksum_mismatch_is_named_too(archive: WalArchive, tmp_path: Path) -> None:
    archive.push(write(tmp_path, name(3), segment_bytes(3)))
    (stored,) = archive.files()
    storage = archive.storage
    assert isinstance(storage, MemoryStorage)
    wrong_key = key_of(name(3), "0" * 64)
    storage.objects[wrong_key] = storage.objects.pop(stored.key)
    with pytest.raises(CorruptWal, match=r"is corrupt \(sha256 .*expected 000000000000"):
        archive.fetch(name(3), tmp_path / "out")


def test_a_segment_missing_between_archived_ones_is_a_gap(
    archive: WalArchive, tmp_path: Path
) -> None:
    for n in (2, 3, 5):
        archive.push(write(tmp_path, name(n), segment_bytes(n)))
    with pytest.raises(MissingWal, match=f"{name(4)} is missing .* from {name(5)} on"):
        archive.fetch(name(4), tmp_path / "out")
    assert not archive.fetch(name(6), tmp_path / "out")  # the end of the archive
    assert not archive.fetch(name(4, timeline=2), tmp_path / "out")  # another timeline


def test_history_and_backup_files_are_kept(archive: WalArchive, tmp_path: Path) -> None:
    history = b"1\t0/3000060\tno recovery target specified\n"
    archive.push(write(tmp_path, "00000002.history", history))
    archive.push(write(tmp_path, f"{name(2)}.00000028.backup", b"START WAL LOCATION: 0/2000028"))
    assert [f.name for f in archive.files()] == [f"{name(2)}.00000028.backup", "00000002.history"]
    assert archive.fetch("00000002.history", tmp_path / "h")
    assert (tmp_path / "h").read_bytes() == history


def test_timeline_ones_history_is_never_archived_and_never_an_error(
    archive: WalArchive, tmp_path: Path
) -> None:
    """A PITR from S3 that promoted ended with FATAL: PostgreSQL 15 asks restore_command
    for 00000001.history after it selects timeline 2 (bench/archive.py found it; a local
    archive's restore_command answers history files in the shell, S3's cannot)."""
    assert archive.fetch("00000001.history", tmp_path / "RECOVERYHISTORY") is False
    assert not (tmp_path / "RECOVERYHISTORY").exists()
    with pytest.raises(ArchiveError, match="is not a WAL file name"):
        archive.push(write(tmp_path, "00000001.history", b"1\t0/3000060\tx\n"))


def test_a_name_postgresql_would_not_archive_is_refused(
    archive: WalArchive, tmp_path: Path
) -> None:
    with pytest.raises(ArchiveError, match="is not a WAL file name"):
        archive.push(write(tmp_path, "postgresql.conf", b"x"))


def test_an_archive_without_identity_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="is not a pgherd archive") as err:
        WalArchive.local(tmp_path).push(write(tmp_path, name(1), segment_bytes(1)))
    assert "pgherd archive init" in err.value.hint


def test_local_storage_never_replaces_and_hides_temp_files(tmp_path: Path) -> None:
    from pgherd.archive.storage import LocalStorage

    storage = LocalStorage(tmp_path)
    assert storage.put_new("wal/a/x-1.zst", b"one")
    assert not storage.put_new("wal/a/x-1.zst", b"two")
    assert storage.get("wal/a/x-1.zst") == b"one"
    (tmp_path / "wal" / "a" / ".x-2.zst.tmp99").write_bytes(b"half")
    assert [o.key for o in storage.list("wal/")] == ["wal/a/x-1.zst"]
    assert [o.key for o in storage.list("wal/a/x-")] == ["wal/a/x-1.zst"]
    assert storage.delete("wal/a/x-1.zst") == 3
    assert storage.delete("wal/a/x-1.zst") == 0
    with pytest.raises(ValueError, match="bad storage key"):
        storage.get("../etc/passwd")


def test_walcmd_exit_codes_tell_postgresql_what_to_do(tmp_path: Path) -> None:
    """0 done; 1 not archived (or a push to retry); 126 a fetch that must stop recovery."""
    from pgherd.archive import walcmd

    root = tmp_path / "archive"
    root.mkdir()
    WalArchive.local(root).initialise(Identity(str(SYSID), 15, SIZE))
    where = ["--archive", str(root)]
    segment = write(tmp_path, name(3), segment_bytes(3, fill=3))
    assert walcmd.main(["push", str(segment), *where]) == 0
    assert walcmd.main(["push", str(segment), *where]) == 0
    assert walcmd.main(["push", str(write(tmp_path, name(4), segment_bytes(5))), *where]) == 1
    assert walcmd.main(["fetch", name(3), str(tmp_path / "RECOVERYXLOG"), *where]) == 0
    assert (tmp_path / "RECOVERYXLOG").read_bytes() == segment.read_bytes()
    assert walcmd.main(["fetch", name(9), str(tmp_path / "RECOVERYXLOG"), *where]) == 1
    # Asked at the end of every recovery that promotes off timeline 1 (PostgreSQL copies
    # the parent's history): "not there", never the error that ends the recovery.
    assert (
        walcmd.main(["fetch", "00000001.history", str(tmp_path / "RECOVERYHISTORY"), *where]) == 1
    )
    (stored,) = WalArchive.local(root).files()
    (root / stored.key).write_bytes(b"not zstd at all")
    assert walcmd.main(["fetch", name(3), str(tmp_path / "RECOVERYXLOG"), *where]) == 126
    assert walcmd.main(["fetch", name(3), str(tmp_path / "x"), "--archive", "/nonexistent"]) == 126


@pytest.mark.parametrize(
    ("name", "history_present", "reaches_pgherd"),
    [
        ("00000002.history", False, False),  # a promotion's probe: answered by the shell
        ("00000002.history", True, True),
        ("000000010000000000000004", False, True),  # segments: pgherd judges gaps
    ],
)
def test_restore_command_answers_a_missing_history_file_without_pgherd(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    history_present: bool,
    reaches_pgherd: bool,
) -> None:
    import subprocess

    from pgherd.model.wal import HISTORY_FOLDER
    from pgherd.pg import archive_commands as commands

    monkeypatch.setattr(commands, "pgherd_program", lambda: ["echo", "PGHERD"])
    archive = tmp_path / "archive dir"  # a space: the path must be quoted
    (archive / HISTORY_FOLDER).mkdir(parents=True)
    if history_present:
        (archive / HISTORY_FOLDER / f"{name}-{'0' * 64}.zst").write_bytes(b"")
    command = (
        commands.fetch_command(["--archive", str(archive)], archive / HISTORY_FOLDER)
        .replace("%f", name)
        .replace("%p", "pg_wal/x")
    )
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert (done.returncode == 0) is reaches_pgherd
    assert done.stdout.startswith("PGHERD wal fetch") is reaches_pgherd
    behind = subprocess.run(["sh", "-c", f"false && {command}"], capture_output=True, text=True)
    assert behind.stdout == "", "one brace group: nothing of it runs behind a failed &&"
