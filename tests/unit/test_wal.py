"""WAL names, segments, histories and timeline paths: table-driven."""

from __future__ import annotations

import pytest

from pgherd.model.lsn import Lsn
from pgherd.model.wal import (
    Gap,
    Segment,
    TimelinePath,
    WalKind,
    contiguous_end,
    gaps,
    parse_history,
    parse_name,
    parse_segment,
    parse_segment_header,
    segment_of,
)

MB16 = 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "segment_size", "number", "timeline"),
    [
        ("000000010000000000000001", MB16, 1, 1),
        ("0000000200000000000000FF", MB16, 0xFF, 2),
        ("000000010000000100000000", MB16, 0x100, 1),  # 256 segments of 16 MB per "log id"
        ("00000003000000A2000000C4", MB16, 0xA2 * 0x100 + 0xC4, 3),
        ("000000010000000100000000", 1024 * 1024 * 1024, 4, 1),  # 4 segments of 1 GB per id
    ],
)
def test_segment_names_round_trip(name: str, segment_size: int, number: int, timeline: int) -> None:
    seg = parse_segment(name, segment_size)
    assert seg == Segment(number, timeline)
    assert seg.name(segment_size) == name


@pytest.mark.parametrize(
    "bad",
    [
        "00000001000000000000001",  # too short
        "000000000000000000000001",  # timeline 0 does not exist
        "000000010000000000000100",  # segment part past 0xFF with 16 MB segments
        "00000001000000000000000g",
        "RECOVERYXLOG",
    ],
)
def test_bad_segment_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a WAL segment name"):
        parse_segment(bad)


@pytest.mark.parametrize(
    ("name", "kind", "timeline", "number"),
    [
        ("000000010000000000000003", WalKind.SEGMENT, 1, 3),
        ("000000010000000000000003.partial", WalKind.PARTIAL, 1, 3),
        ("000000010000000000000002.00000028.backup", WalKind.BACKUP_LABEL, 1, 2),
        ("00000002.history", WalKind.HISTORY, 2, None),
        ("0000000A.history", WalKind.HISTORY, 10, None),
    ],
)
def test_archived_file_kinds(name: str, kind: WalKind, timeline: int, number: int | None) -> None:
    wal = parse_name(name)
    assert (wal.kind, wal.timeline) == (kind, timeline)
    assert (wal.segment.number if wal.segment else None) == number


@pytest.mark.parametrize("bad", ["00000001.history", "archive_status", "x.partial", ""])
def test_names_postgresql_never_archives_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_name(bad)


@pytest.mark.parametrize(
    ("lsn", "timeline", "name"),
    [
        ("0/0", 1, "000000010000000000000000"),
        ("0/FFFFFF", 1, "000000010000000000000000"),
        ("0/1000000", 1, "000000010000000000000001"),
        ("1/A2000060", 3, "0000000300000001000000A2"),
    ],
)
def test_lsn_to_segment(lsn: str, timeline: int, name: str) -> None:
    assert segment_of(Lsn.parse(lsn), timeline).name() == name


HISTORY_3 = "1\t0/5000098\tno recovery target specified\n\n2\t0/9000060\tbefore 2026-11-25\n"


def test_history_files_parse_oldest_first() -> None:
    entries = parse_history(HISTORY_3)
    assert [(e.timeline, str(e.switch_lsn)) for e in entries] == [
        (1, "0/5000098"),
        (2, "0/9000060"),
    ]
    assert entries[0].reason == "no recovery target specified"


@pytest.mark.parametrize("bad", ["x\t0/1\treason", "2\t0/5\tr\n1\t0/6\tr", "1"])
def test_malformed_history_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"history file line|not an LSN|must increase"):
        parse_history(bad)


PATH_3 = TimelinePath.of(3, parse_history(HISTORY_3))


@pytest.mark.parametrize(
    ("lsn", "timeline"),
    [("0/1000000", 1), ("0/5000097", 1), ("0/5000098", 2), ("0/9000059", 2), ("0/9000060", 3)],
)
def test_timeline_at_follows_the_switch_points(lsn: str, timeline: int) -> None:
    assert PATH_3.timeline_at(Lsn.parse(lsn)) == timeline


def test_replay_reads_the_switch_segment_from_the_new_timeline() -> None:
    names = [s.name() for s in PATH_3.segments(Lsn.parse("0/4000028"), Lsn.parse("0/A000000"))]
    assert names == [
        "000000010000000000000004",
        "000000020000000000000005",  # the switch at 0/5000098 is inside segment 5
        "000000020000000000000006",
        "000000020000000000000007",
        "000000020000000000000008",
        "000000030000000000000009",
    ]


@pytest.mark.parametrize(
    ("timeline", "lsn", "on_path"),
    [
        (1, "0/5000098", True),
        (1, "0/6000000", False),
        (2, "0/9000000", True),
        (3, "5/0", True),
        (4, "0/1", False),
    ],
)
def test_positions_on_a_path(timeline: int, lsn: str, on_path: bool) -> None:
    assert PATH_3.contains(timeline, Lsn.parse(lsn)) is on_path


def test_gaps_name_consecutive_missing_runs() -> None:
    needed = [Segment(n, 1) for n in range(1, 10)]
    present = {Segment(n, 1) for n in (1, 2, 5, 9)}
    assert gaps(needed, present) == [
        Gap(Segment(3, 1), Segment(4, 1)),
        Gap(Segment(6, 1), Segment(8, 1)),
    ]
    assert gaps(needed, set(needed)) == []
    assert gaps(needed, present)[0].describe() == (
        "000000010000000000000003 to 000000010000000000000004"
    )


def test_contiguous_end_stops_before_the_first_hole() -> None:
    present = {Segment(4, 1), Segment(5, 2), Segment(6, 2), Segment(8, 2)}
    assert contiguous_end(PATH_3, Lsn.parse("0/4000028"), present) == Segment(6, 2)
    assert contiguous_end(PATH_3, Lsn.parse("0/3000000"), present) is None


def header(magic: int = 0xD110, info: int = 2, sysid: int = 7712250953690097144) -> bytes:
    return (
        magic.to_bytes(2, "little")
        + info.to_bytes(2, "little")
        + (1).to_bytes(4, "little")
        + (0x1000000).to_bytes(8, "little")
        + bytes(8)
        + sysid.to_bytes(8, "little")
        + MB16.to_bytes(4, "little")
        + (8192).to_bytes(4, "little")
    )


def test_segment_header_names_cluster_and_version() -> None:
    parsed = parse_segment_header(header())
    assert parsed.system_identifier == "7712250953690097144"
    assert parsed.major == 15
    assert parsed.page_address == Lsn(0x1000000)
    assert (parsed.segment_size, parsed.block_size) == (MB16, 8192)
    assert parse_segment_header(header(magic=0xD116)).major == 17
    assert parse_segment_header(header(magic=0xBEEF)).major is None


def test_a_page_without_long_header_is_not_a_segment_start() -> None:
    with pytest.raises(ValueError, match="no long header"):
        parse_segment_header(header(info=0))
    with pytest.raises(ValueError, match="too short"):
        parse_segment_header(b"\x10\xd1")
