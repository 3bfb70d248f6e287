"""Backup chains, the chunk reuse rule, delta restore plans and retention by policy:
the pure decisions of bundled backups, table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgherd.model.backup import Backup, BackupFormat, BackupKind
from pgherd.model.backup_chain import (
    BrokenChain,
    chain,
    choose_parent,
    descendants,
    with_ancestors,
)
from pgherd.model.backup_manifest import (
    PAGE_SIZE,
    Chunk,
    FileEntry,
    Manifest,
    delta_plan,
    from_json,
    reuse,
    to_json,
    unchanged_since,
)
from pgherd.model.backup_schedule import ScheduledRun, due
from pgherd.model.lsn import Lsn
from pgherd.model.retention import Policy, plan_policy
from pgherd.model.wal import TimelinePath, TimelineSwitch, parse_name

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def bk(
    label: str,
    start: int,
    kind: BackupKind = BackupKind.FULL,
    parent: str | None = None,
    days: float = 0,
    timeline: int = 1,
    fmt: BackupFormat = BackupFormat.BUNDLES,
) -> Backup:
    when = T0 + timedelta(days=days)
    return Backup(
        label=label,
        node="node1",
        timeline=timeline,
        start_lsn=Lsn(start << 24),
        stop_lsn=Lsn((start << 24) + 0x100),
        stop_timeline=timeline,
        start_time=when,
        stop_time=when + timedelta(minutes=1),
        size_bytes=100,
        next_xid=1000 + start,
        system_identifier="7",
        pg_major=15,
        kind=kind,
        parent=parent,
        format=fmt,
    )


F1 = bk("f1", 2)
I1 = bk("i1", 4, BackupKind.INCREMENTAL, "f1", days=1)
D1 = bk("d1", 6, BackupKind.DIFFERENTIAL, "f1", days=2)
I2 = bk("i2", 8, BackupKind.INCREMENTAL, "d1", days=3)
F2 = bk("f2", 10, days=4)
I3 = bk("i3", 12, BackupKind.INCREMENTAL, "f2", days=5)
ALL = [F1, I1, D1, I2, F2, I3]
TL1 = TimelinePath.of(1, ())


@pytest.mark.parametrize(
    ("asked", "backups", "kind", "parent"),
    [
        (BackupKind.FULL, ALL, BackupKind.FULL, None),
        (BackupKind.INCREMENTAL, ALL, BackupKind.INCREMENTAL, "i3"),
        (BackupKind.DIFFERENTIAL, ALL, BackupKind.DIFFERENTIAL, "f2"),
        (BackupKind.INCREMENTAL, [], BackupKind.FULL, None),
        (BackupKind.DIFFERENTIAL, [I1], BackupKind.FULL, None),  # no full to build on
        # a pg_basebackup copy has no chunk manifest: it cannot be a parent
        (BackupKind.INCREMENTAL, [bk("c", 2, fmt=BackupFormat.COPY)], BackupKind.FULL, None),
    ],
)
def test_choose_parent(
    asked: BackupKind, backups: list[Backup], kind: BackupKind, parent: str | None
) -> None:
    choice = choose_parent(asked, backups, TL1, "7", 15)
    assert choice.kind is kind
    assert (choice.parent.label if choice.parent else None) == parent
    assert choice.reason


def test_a_parent_must_lie_on_the_current_timeline_history() -> None:
    """Timeline 2 branched off at 0/5000000: f2 (taken on timeline 1 later) describes
    pages timeline 2 never had; f1 (before the branch) is fine."""
    path = TimelinePath.of(2, (TimelineSwitch(1, Lsn(0x5000000), ""),))
    choice = choose_parent(BackupKind.INCREMENTAL, [F1, F2], path, "7", 15)
    assert choice.parent == F1
    other_cluster = choose_parent(BackupKind.INCREMENTAL, [F1], TL1, "8", 15)
    assert other_cluster.kind is BackupKind.FULL


def test_chains_ancestors_and_descendants() -> None:
    assert [b.label for b in chain(I2, ALL)] == ["f1", "d1", "i2"]
    assert [b.label for b in chain(F2, ALL)] == ["f2"]
    assert with_ancestors({"i2"}, ALL) == {"i2", "d1", "f1"}
    assert descendants("f1", ALL) == {"i1", "d1", "i2"}
    with pytest.raises(BrokenChain, match="needs d1"):
        chain(I2, [F1, I2])


# ---- the reuse rule for one chunk ------------------------------------------------------


def page(lsn: int, fill: int = 1) -> bytes:
    """A page whose header says pd_lsn = ``lsn`` (xlogid, xrecoff)."""
    header = (lsn >> 32).to_bytes(4, "little") + (lsn & 0xFFFFFFFF).to_bytes(4, "little")
    return header + bytes([fill]) * (PAGE_SIZE - 8)


PARENT = Chunk(0, 2 * PAGE_SIZE, "h-parent", "h-parent", "b", 0, 10)


@pytest.mark.parametrize(
    ("relation", "digest", "data", "expected", "why"),
    [
        (False, "h-parent", page(5) * 2, True, "same bytes as the parent's"),
        (False, "h-new", page(5) * 2, False, "a changed non-relation file is stored"),
        (True, "h-new", page(5) + page(6), True, "pages older than the parent's start"),
        (True, "h-new", page(5) + page(0x20000000), False, "one page changed since"),
        (True, "h-new", page(5) + page(0, 0), False, "a zero page is taken as it is"),
        (True, "h-new", page(5), False, "the size changed"),
    ],
)
def test_reuse(relation: bool, digest: str, data: bytes, expected: bool, why: str) -> None:
    assert reuse(relation, digest, data, PARENT, Lsn(0x10000000)) is expected, why


def test_unchanged_since_needs_whole_pages() -> None:
    assert unchanged_since(page(5), Lsn(6))
    assert not unchanged_since(page(5)[:100], Lsn(6))
    assert not unchanged_since(page(7), Lsn(6))
    assert reuse(True, "x", page(5) * 2, None, Lsn(6)) is False  # no parent chunk


# ---- delta restore ---------------------------------------------------------------------


def chunk(index: int, digest: str, stored: str | None = None) -> Chunk:
    return Chunk(index, 100, digest, stored or digest, "bundle", index * 10, 10)


MANIFEST = Manifest(
    label="x",
    start_lsn=Lsn(1),
    files=(
        FileEntry("base/1/100", 300, 0o600, (chunk(0, "a"), chunk(1, "b"), chunk(2, "c", "c0"))),
        FileEntry("PG_VERSION", 3, 0o600, (chunk(0, "v"),)),
    ),
    directories=("base", "base/1"),
    backup_label="START WAL LOCATION: 0/1",
)


@pytest.mark.parametrize(
    ("local", "fetch", "remove"),
    [
        ({}, [("base/1/100", 0), ("base/1/100", 1), ("base/1/100", 2), ("PG_VERSION", 0)], []),
        (
            {"base/1/100": ["a", "X", "c0"], "PG_VERSION": ["v"], "base/1/999": []},
            [("base/1/100", 1)],
            ["base/1/999"],
        ),
        ({"base/1/100": ["a", "b"], "PG_VERSION": ["v"]}, [("base/1/100", 2)], []),
        ({"base/1/100": ["a", "b", "c", None], "PG_VERSION": [None]}, [("PG_VERSION", 0)], []),
    ],
)
def test_delta_plan(
    local: dict[str, list[str | None]], fetch: list[tuple[str, int]], remove: list[str]
) -> None:
    plan = delta_plan(MANIFEST, local)
    assert [(p, c.index) for p, c in plan.fetch] == fetch
    assert list(plan.remove) == remove
    assert plan.fetched_bytes == 100 * len(fetch)
    assert dict(plan.truncate) == {"base/1/100": 300, "PG_VERSION": 3}


def test_manifest_json_round_trip() -> None:
    again = from_json(to_json(MANIFEST))
    assert again.files == MANIFEST.files
    assert again.backup_label == MANIFEST.backup_label
    assert again.file("PG_VERSION") == MANIFEST.files[1]
    assert MANIFEST.stored_bytes("bun") == 30  # three places: PG_VERSION shares offset 0


# ---- retention by policy ---------------------------------------------------------------

FILES = [parse_name(f"0000000100000000000000{n:02X}") for n in range(1, 16)]


@pytest.mark.parametrize(
    ("policy", "now_days", "kept"),
    [
        (Policy(keep_full=1), 6, {"f2", "i3"}),
        (Policy(keep_full=2), 6, {"f1", "i1", "d1", "i2", "f2", "i3"}),
        # the last 2 days: i2 and later, plus d1 (the newest before the window) and f1
        (Policy(keep_days=2), 5.5, {"f1", "d1", "i2", "f2", "i3"}),
        (Policy(keep_days=100), 6, {b.label for b in ALL}),
        (Policy(keep_full=1, keep_days=3), 6, {"f1", "d1", "i2", "f2", "i3"}),
    ],
)
def test_plan_policy(policy: Policy, now_days: float, kept: set[str]) -> None:
    plan = plan_policy(ALL, policy, T0 + timedelta(days=now_days), FILES, [])
    assert {b.label for b in plan.keep_backups} == kept
    assert {b.label for b in plan.delete_backups} == {b.label for b in ALL} - kept
    oldest = min((b for b in ALL if b.label in kept), key=lambda b: b.start_lsn)
    for name in plan.delete_files:
        segment = parse_name(name).segment
        assert segment is not None
        assert segment.number < oldest.start_lsn.value >> 24


def test_a_policy_needs_a_rule() -> None:
    with pytest.raises(ValueError, match="keep_full or keep_days"):
        plan_policy(ALL, Policy(), T0, FILES, [])


# ---- the schedule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "now", "kinds"),
    [
        ({}, "2026-11-01T00:20", []),  # nothing named yet since the start at 00:00
        ({}, "2026-11-01T01:00", ["full", "incremental"]),  # full first
        ({"0 1 * * *|full|": "2026-11-01T01:00"}, "2026-11-01T01:30", ["incremental"]),
        # a leader down for three days takes a missed 01:00 backup once
        (
            {
                "0 1 * * *|full|": "2026-11-01T01:00",
                "*/30 * * * *|incremental|": "2026-11-04T09:00",
            },
            "2026-11-04T09:00",
            ["full"],
        ),
    ],
)
def test_due(last: dict[str, str], now: str, kinds: list[str]) -> None:
    runs = [ScheduledRun("0 1 * * *", "full"), ScheduledRun("*/30 * * * *", "incremental")]
    when = {k: datetime.fromisoformat(v).replace(tzinfo=UTC) for k, v in last.items()}
    found = due(runs, when, T0, datetime.fromisoformat(now).replace(tzinfo=UTC))
    assert [r.kind for r in found] == kinds
