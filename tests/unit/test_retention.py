"""Retention decisions: which backups and WAL files ``archive cleanup --keep N`` removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgherd.model.backup import Backup
from pgherd.model.lsn import Lsn
from pgherd.model.retention import StandbyPosition, plan
from pgherd.model.wal import parse_name

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def backup(label: str, start: str, stop: str, timeline: int = 1, minutes: int = 0) -> Backup:
    return Backup(
        label=label,
        node="node1",
        timeline=timeline,
        start_lsn=Lsn.parse(start),
        stop_lsn=Lsn.parse(stop),
        stop_timeline=timeline,
        start_time=T0 + timedelta(minutes=minutes),
        stop_time=T0 + timedelta(minutes=minutes + 1),
        size_bytes=1,
        next_xid=700 + minutes,
        system_identifier="1",
        pg_major=15,
    )


B1 = backup("b1", "0/2000028", "0/2000100", minutes=0)
B2 = backup("b2", "0/5000028", "0/5000100", minutes=10)
B3 = backup("b3", "0/9000028", "0/9000100", minutes=20)
FILES = [
    parse_name(n)
    for n in [
        *(f"0000000100000000000000{n:02X}" for n in range(1, 12)),
        "000000010000000000000002.00000028.backup",
        "000000010000000000000005.00000028.backup",
        "000000010000000000000009.00000028.backup",
        "000000010000000000000008.partial",
        "00000002.history",
    ]
]


@pytest.mark.parametrize(
    ("keep", "kept", "first_kept_segment"),
    [(1, ["b3"], 9), (2, ["b2", "b3"], 5), (3, ["b1", "b2", "b3"], 2), (9, ["b1", "b2", "b3"], 2)],
)
def test_keep_n_keeps_the_wal_of_the_oldest_kept_backup(
    keep: int, kept: list[str], first_kept_segment: int
) -> None:
    result = plan([B3, B1, B2], keep, FILES, [])
    assert [b.label for b in result.keep_backups] == kept
    assert result.keep_from_segment == first_kept_segment
    for f in FILES:
        assert f.segment is None or (f.name in result.delete_files) == (
            f.segment.number < first_kept_segment
        ), f.name
    assert "00000002.history" not in result.delete_files  # newer than every kept backup


def test_the_kept_backups_own_backup_history_file_stays() -> None:
    result = plan([B1, B2, B3], 1, FILES, [])
    assert "000000010000000000000009.00000028.backup" not in result.delete_files
    assert "000000010000000000000005.00000028.backup" in result.delete_files
    assert "000000010000000000000008.partial" in result.delete_files


def test_a_standby_behind_the_oldest_backup_holds_its_wal() -> None:
    behind = StandbyPosition("node2", Lsn.parse("0/3000000"), 1)
    result = plan([B1, B2, B3], 1, FILES, [behind])
    assert result.keep_from_segment == 3
    assert "000000010000000000000002" in result.delete_files
    assert "000000010000000000000003" not in result.delete_files
    assert any("node2" in r for r in result.reasons)


def test_a_standby_whose_position_is_unknown_holds_all_wal() -> None:
    result = plan([B1, B2, B3], 1, FILES, [StandbyPosition("node3", None, None)])
    assert result.delete_files == ()
    assert [b.label for b in result.delete_backups] == ["b1", "b2"]
    assert "node3's position is unknown, so all WAL is kept" in result.reasons


def test_without_backups_nothing_is_deleted() -> None:
    result = plan([], 1, FILES, [])
    assert (result.delete_files, result.delete_backups) == ((), ())


def test_history_of_timelines_older_than_every_kept_backup_goes() -> None:
    on_tl3 = backup("b4", "0/B000028", "0/B000100", timeline=3, minutes=30)
    files = [*FILES, parse_name("00000003.history")]
    result = plan([B3, on_tl3], 1, files, [])
    assert "00000002.history" in result.delete_files
    assert "00000003.history" not in result.delete_files


def test_keep_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="keep at least one backup"):
        plan([B1], 0, FILES, [])
