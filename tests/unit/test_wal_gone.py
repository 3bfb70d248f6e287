"""A starting standby whose upstream removed the WAL it needs (pg/wal_gone.py)."""

from __future__ import annotations

from pathlib import Path

from pgherd.pg.wal_gone import WAL_GONE_SECONDS, GoneWatch, removed_segment

SEGMENT = "000000020000000400000036"
LINE = (
    b"2026-12-06 23:54:19.002 UTC [16518] FATAL:  could not receive data from WAL stream: "
    b"ERROR:  requested WAL segment " + SEGMENT.encode() + b" has already been removed\n"
)
WAITING = b"2026-12-06 23:54:19.007 UTC [15721] LOG:  waiting for WAL to become available\n"


def test_the_segment_is_read_from_the_wal_receivers_error() -> None:
    assert removed_segment(WAITING) is None
    assert removed_segment(WAITING + LINE + WAITING) == SEGMENT
    later = LINE.replace(b"36 has", b"37 has")
    assert removed_segment(LINE + later) == "000000020000000400000037"


def test_one_miss_is_not_a_verdict_the_same_one_again_later_is() -> None:
    watch = GoneWatch(0)
    assert watch.seen(LINE, now=100.0) is None
    assert watch.seen(b"", now=101.0) is None  # no new line: no verdict, nothing forgotten
    assert watch.seen(LINE, now=100.0 + WAL_GONE_SECONDS - 0.1) is None
    assert watch.seen(LINE, now=100.0 + WAL_GONE_SECONDS) == SEGMENT


def test_another_segment_missing_starts_the_count_again() -> None:
    watch = GoneWatch(0)
    assert watch.seen(LINE, now=0.0) is None
    other = LINE.replace(b"36 has", b"37 has")  # it got the earlier one after all
    assert watch.seen(other, now=WAL_GONE_SECONDS) is None
    assert watch.seen(other, now=2 * WAL_GONE_SECONDS) == "000000020000000400000037"


def test_the_log_is_read_from_the_offset_at_most_once_a_second(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_bytes(LINE)  # written before the wait began: not this start's
    watch = GoneWatch(log.stat().st_size)
    assert watch.check(log, now=0.0) is None
    assert not watch.segment
    with log.open("ab") as out:
        out.write(WAITING + LINE)
    assert watch.check(log, now=0.5) is None  # too soon: not read
    assert not watch.segment
    assert watch.check(log, now=1.0) is None
    assert watch.segment == SEGMENT
    with log.open("ab") as out:
        out.write(LINE)
    assert watch.check(log, now=1.0 + WAL_GONE_SECONDS) == SEGMENT


def test_a_missing_or_truncated_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    watch = GoneWatch(10_000)
    assert watch.check(log, now=0.0) is None  # no log yet
    log.write_bytes(LINE)  # rotated: shorter than the offset
    assert watch.check(log, now=1.0) is None
    assert watch.segment == SEGMENT
