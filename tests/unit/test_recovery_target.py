"""Choosing the backup and the WAL for a point-in-time recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgherd.errors import MissingWal, TargetUnreachable
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import (
    ArchiveView,
    RestorePoint,
    Target,
    TargetKind,
    choose,
)
from pgherd.model.wal import Segment, parse_history
from tests.unit.test_retention import B1, B2, B3, T0, backup

SEGMENTS = frozenset(Segment(n, 1) for n in range(2, 12))
VIEW = ArchiveView(SEGMENTS, {}, T0 + timedelta(minutes=40))
POINTS = [RestorePoint("before_deploy", Lsn.parse("0/7000090"), 1, T0 + timedelta(minutes=15))]


def lsn(text: str) -> Target:
    return Target(TargetKind.LSN, lsn=Lsn.parse(text))


def at(minutes: float) -> Target:
    return Target(TargetKind.TIME, time=T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("target", "label"),
    [
        (lsn("0/2000100"), "b1"),  # exactly when b1 became consistent
        (lsn("0/50000FF"), "b1"),  # b2 is not consistent yet
        (lsn("0/5000100"), "b2"),
        (lsn("0/B000000"), "b3"),
        (at(5), "b1"),
        (at(11), "b2"),
        (at(35), "b3"),
        (Target(TargetKind.NAME, name="before_deploy"), "b2"),
        (Target(TargetKind.XID, xid=705), "b1"),
        (Target(TargetKind.XID, xid=710), "b2"),
        (Target(TargetKind.LATEST), "b3"),
    ],
)
def test_the_newest_backup_consistent_before_the_target(target: Target, label: str) -> None:
    chosen = choose([B1, B2, B3], target, VIEW, POINTS)
    assert chosen.backup.label == label
    assert chosen.first_segment == Segment(chosen.backup.start_lsn.value >> 24, 1)


def test_a_target_before_the_oldest_backup_is_refused_with_its_time() -> None:
    with pytest.raises(TargetUnreachable, match=r"before the oldest backup \(b1, consistent at"):
        choose([B1, B2], lsn("0/1000000"), VIEW)
    with pytest.raises(TargetUnreachable, match="before the oldest backup"):
        choose([B1, B2], at(-5), VIEW)


def test_a_target_after_the_end_of_the_archive_is_refused() -> None:
    with pytest.raises(TargetUnreachable, match=r"after the end of the archive \(0/C000000\)"):
        choose([B1], lsn("0/D000000"), VIEW)
    with pytest.raises(TargetUnreachable, match="after the end of the archive"):
        choose([B1], at(60), VIEW)


def test_an_unknown_restore_point_lists_the_known_ones() -> None:
    with pytest.raises(TargetUnreachable, match="unknown restore point 'nope'") as err:
        choose([B1], Target(TargetKind.NAME, name="nope"), VIEW, POINTS)
    assert err.value.hint == "restore points in the archive: before_deploy"


def test_a_missing_segment_is_named_as_a_gap() -> None:
    holed = ArchiveView(SEGMENTS - {Segment(6, 1), Segment(7, 1)}, {}, VIEW.newest_archived_at)
    with pytest.raises(
        MissingWal, match="missing WAL 000000010000000000000006 to 000000010000000000000007"
    ):
        choose([B1, B2, B3], lsn("0/8000000"), holed)
    # a target before the hole needs none of it
    assert choose([B1], lsn("0/5000000"), holed).last_segment == Segment(5, 1)


def test_no_backup_at_all() -> None:
    with pytest.raises(TargetUnreachable, match="holds no backup"):
        choose([], Target(TargetKind.LATEST), VIEW)


def test_restore_follows_the_history_to_the_latest_timeline() -> None:
    history = parse_history("1\t0/8000060\tfailover\n")
    segments = frozenset(
        {Segment(n, 1) for n in range(2, 11)} | {Segment(n, 2) for n in range(8, 13)}
    )
    view = ArchiveView(segments, {2: history}, T0 + timedelta(minutes=40))
    chosen = choose([B1, B2, B3], Target(TargetKind.LATEST), view)
    # b3 stopped at 0/9000100 on timeline 1, after the switch: it is not on timeline 2's path
    assert chosen.backup.label == "b2"
    assert chosen.path.timelines == (1, 2)
    assert chosen.last_segment == Segment(12, 2)
    # the old timeline stays reachable when asked for
    old = choose([B1, B2, B3], Target(TargetKind.LATEST), view, timeline=1)
    assert (old.backup.label, old.last_segment) == ("b3", Segment(10, 1))
    on_tl2 = backup("b9", "0/B000028", "0/B000100", timeline=2, minutes=30)
    assert choose([B2, on_tl2], lsn("0/C000000"), view).backup.label == "b9"


def test_an_unknown_timeline_is_refused() -> None:
    with pytest.raises(TargetUnreachable, match="no history file for timeline 4"):
        choose([B1], Target(TargetKind.LATEST), VIEW, timeline=4)


@pytest.mark.parametrize(
    ("target", "settings"),
    [
        (lsn("0/5000060"), {"recovery_target_lsn": "0/5000060"}),
        (Target(TargetKind.NAME, name="p1"), {"recovery_target_name": "p1"}),
        (Target(TargetKind.XID, xid=742), {"recovery_target_xid": "742"}),
        (
            Target(TargetKind.TIME, time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
            {"recovery_target_time": "2026-01-02 03:04:05+00:00"},
        ),
        (Target(TargetKind.LATEST), {}),
    ],
)
def test_recovery_settings(target: Target, settings: dict[str, str]) -> None:
    assert target.settings() == settings
