"""When a backup or a delta restore takes a file as known by its size and modification
time (model/backup_trust.py), table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgherd.model.backup_manifest import PAGE_SIZE, Chunk, FileEntry, page_lsns, unchanged_since
from pgherd.model.backup_trust import (
    MARGIN_NS,
    Recorded,
    Stat,
    backup_read_before,
    backup_skips,
    known_hashes,
    restore_knows,
    settled_before_ns,
)
from pgherd.model.lsn import Lsn

START = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000
OLD = START_NS - 60 * 1_000_000_000  # a minute before the parent started
RACY = START_NS - MARGIN_NS // 2  # within the margin: the same second as the start
LATER = START_NS + 5 * 1_000_000_000


def entry(size: int = 100, mtime_ns: int = OLD, *hashes: str) -> FileEntry:
    chunks = tuple(
        Chunk(n, 10, h.split("/")[0], h.split("/")[-1], "b", n, 5) for n, h in enumerate(hashes)
    )
    return FileEntry("base/5/16384", size, 0o600, chunks, mtime_ns)


# ---- the backup's rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent_started", "parent_node", "checksum", "expected"),
    [
        (START, "node1", False, settled_before_ns(START)),
        (START, "node1", True, None),  # --checksum: nothing trusted
        (START, "node2", False, None),  # the parent read another node's files
        (None, None, False, None),  # a full backup
    ],
)
def test_backup_read_before(
    parent_started: datetime | None, parent_node: str | None, checksum: bool, expected: int | None
) -> None:
    assert backup_read_before(parent_started, parent_node, "node1", checksum) == expected


BOUND = settled_before_ns(START)


@pytest.mark.parametrize(
    ("now", "parent", "bound", "skip", "why"),
    [
        (Stat(100, OLD), entry(), BOUND, True, "same size and time, settled: the parent's"),
        (Stat(100, OLD + 1), entry(), BOUND, False, "written since (one nanosecond later)"),
        (Stat(101, OLD), entry(), BOUND, False, "another size"),
        (Stat(100, RACY), entry(mtime_ns=RACY), BOUND, False, "racy: as new as the start"),
        (Stat(100, BOUND), entry(mtime_ns=BOUND), BOUND, False, "not strictly older"),
        (Stat(100, BOUND - 1), entry(mtime_ns=BOUND - 1), BOUND, True, "strictly older"),
        (Stat(100, 0), entry(mtime_ns=0), BOUND, False, "the parent recorded no time"),
        (Stat(100, OLD), None, BOUND, False, "a file the parent did not have"),
        (Stat(100, OLD), entry(), None, False, "--checksum, or another node"),
    ],
)
def test_backup_skips(
    now: Stat, parent: FileEntry | None, bound: int | None, skip: bool, why: str
) -> None:
    assert backup_skips(now, parent, bound) is skip, why


# ---- the delta restore's rule -----------------------------------------------------------

FINISHED = START + timedelta(minutes=1)
FINISHED_NS = START_NS + 60 * 1_000_000_000
NEWEST = entry(100, LATER + 10**9, "n0", "n1")
PARENT = entry(100, OLD, "p0", "p1")
RACY_PARENT = entry(100, RACY, "r0", "r1")


def rec(e: FileEntry, started: datetime = START) -> Recorded:
    return Recorded(e, started, started + timedelta(minutes=1))


@pytest.mark.parametrize(
    ("now", "recorded", "known", "why"),
    [
        (Stat(100, NEWEST.mtime_ns), [rec(NEWEST, FINISHED)], NEWEST, "the backup's own time"),
        (Stat(100, OLD), [rec(NEWEST, FINISHED), rec(PARENT)], PARENT, "an ancestor's"),
        (Stat(100, OLD + 1), [rec(NEWEST, FINISHED), rec(PARENT)], None, "written since"),
        (Stat(99, OLD), [rec(PARENT)], None, "another size"),
        (Stat(100, RACY, RACY), [rec(RACY_PARENT)], None, "racy, written then (ctime = mtime)"),
        (
            Stat(100, RACY, FINISHED_NS + 1),
            [rec(RACY_PARENT)],
            RACY_PARENT,
            "racy, but the time was set after that backup finished: a restore set it",
        ),
        (Stat(100, 0), [rec(entry(mtime_ns=0))], None, "no time recorded"),
        (Stat(100, OLD), [], None, "nothing recorded"),
    ],
)
def test_restore_knows(
    now: Stat, recorded: list[Recorded], known: FileEntry | None, why: str
) -> None:
    assert restore_knows(now, recorded) == known, why


@pytest.mark.parametrize(
    ("known", "target", "hashes"),
    [
        (entry(100, OLD, "a", "b"), entry(100, OLD, "a", "b"), ["a", "b"]),
        # the parent's stored bytes differ from the bytes read (hint bits): either serves
        (entry(100, OLD, "a/s", "b"), entry(100, OLD, "a", "x"), ["a", "b"]),
        (entry(100, OLD, "a/s", "b"), entry(100, OLD, "z/s", "b"), ["s", "b"]),
        (entry(100, OLD, "a", "b"), entry(100, OLD, "a"), ["a", "b"]),  # the file shrank
    ],
)
def test_known_hashes(known: FileEntry, target: FileEntry, hashes: list[str]) -> None:
    assert known_hashes(known, target) == hashes


# ---- page LSNs, read by a strided view ----------------------------------------------------


def page(lsn: int, fill: int = 1) -> bytes:
    header = (lsn >> 32).to_bytes(4, "little") + (lsn & 0xFFFFFFFF).to_bytes(4, "little")
    return header + bytes([fill]) * (PAGE_SIZE - 8)


@pytest.mark.parametrize(
    ("data", "threshold", "unchanged"),
    [
        (page(5) + page(0x1_0000_0005), 0x2_0000_0000, True),
        (page(5) + page(0x1_0000_0005), 0x1_0000_0005, False),  # not strictly older
        (page(5) + page(0, 0), 0x2_0000_0000, False),  # a page of zeros
        (page(5)[:-1], 0x2_0000_0000, False),  # not whole pages
        (b"", 0x2_0000_0000, False),
    ],
)
def test_unchanged_since(data: bytes, threshold: int, unchanged: bool) -> None:
    assert unchanged_since(memoryview(data), Lsn(threshold)) is unchanged
    assert unchanged_since(data, Lsn(threshold)) is unchanged


def test_page_lsns_reads_every_header_and_ignores_a_partial_page() -> None:
    data = page(0x1_0000_0001) + page(7) + page(9)[:100]
    assert page_lsns(data) == [0x1_0000_0001, 7]
    assert page_lsns(memoryview(data)[PAGE_SIZE:]) == [7]
