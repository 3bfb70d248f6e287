"""Monitoring history: samples from what a sender reads, archive trailing, the series the
charts draw, and the sqlite store (add, read, trim)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgherd.ha.history_store import HistoryStore
from pgherd.model import history
from pgherd.model.history import ArchiverRow, Sample, SampleKind, SenderRow, SenderState
from pgherd.model.lsn import Lsn

L = Lsn.parse
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MB = 1024 * 1024


def sender(name: str, replay: str, logical: bool = False, lag: float | None = 0.5) -> SenderRow:
    return SenderRow(
        application_name=name,
        logical=logical,
        state="streaming",
        write_lsn=L("0/3000000"),
        flush_lsn=L("0/3000000"),
        replay_lsn=L(replay),
        write_lag_s=0.1,
        flush_lag_s=0.2,
        replay_lag_s=lag,
    )


def state(*senders: SenderRow, ready: str | None = None, mode: str = "on") -> SenderState:
    return SenderState(
        in_recovery=False,
        position=L("0/3000100"),
        senders=senders,
        archiver=ArchiverRow(archive_mode=mode, oldest_ready=ready, ready_count=0),
    )


def test_one_sample_per_sender_with_lag_against_the_senders_position() -> None:
    found = history.samples(
        state(
            sender("node2", "0/3000000"),
            sender("sub", "0/3000100", logical=True, lag=None),
            mode="off",
        ),
        T0,
    )
    standby, logical = found
    assert (standby.kind, standby.subject, standby.lag_bytes) == (SampleKind.STANDBY, "node2", 256)
    assert (standby.write_lag_bytes, standby.flush_lag_seconds) == (256, 0.2)
    assert (logical.kind, logical.subject, logical.lag_bytes) == (SampleKind.LOGICAL, "sub", 0)
    assert logical.lag_seconds == 0.0, "caught up and idle: zero, not unknown"
    assert logical.write_lag_bytes is None, "logical senders report one stage"


@pytest.mark.parametrize(
    ("ready", "mode", "trailing"),
    [
        (None, "on", 0x100),  # everything archived but the segment being written
        ("000000010000000000000002.ready", "on", 0x1000100),  # segment 2 still waits
        ("000000010000000000000007.ready", "on", 0x100),  # (a stray newer file)
        ("000000010000000000000002.ready", "off", None),
    ],
)
def test_archive_trailing(ready: str | None, mode: str, trailing: int | None) -> None:
    assert history.archive_trailing(state(ready=ready, mode=mode)) == trailing


def test_no_archive_sample_on_a_standby() -> None:
    standby = SenderState(True, L("0/5000000"), (), ArchiverRow("on", None, 0))
    assert history.samples(standby, T0) == []


def test_lag_series_merges_senders_and_skips_other_streams() -> None:
    def at(seconds: int, subject: str = "node2", source: str = "node1") -> Sample:
        return Sample(
            at=T0 + timedelta(seconds=seconds),
            kind=SampleKind.STANDBY,
            subject=subject,
            source=source,
            lag_bytes=seconds,
        )

    found = [at(10, source="node3"), at(0), at(5), at(5, source="node3"), at(5, "node3")]
    series = history.lag_series(found, SampleKind.STANDBY, "node2", since=T0)
    assert [s.lag_bytes for s in series] == [0, 5, 10]


def test_store_adds_reads_and_trims(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite", "node1")
    rows = [
        Sample(at=T0 + timedelta(days=d), kind=SampleKind.STANDBY, subject=s, lag_bytes=d)
        for d in range(5)
        for s in ("node2", "node3")
    ]
    assert store.add(rows) == 10
    assert (tmp_path / "history.sqlite").stat().st_mode & 0o777 == 0o600
    node2 = store.read(subject="node2")
    assert [s.lag_bytes for s in node2] == [0, 1, 2, 3, 4]
    assert {s.source for s in node2} == {"node1"}
    assert [s.lag_bytes for s in store.read(subject="node2", limit=2)] == [3, 4]
    recent = store.read(since=T0 + timedelta(days=3))
    assert len(recent) == 4
    assert store.oldest() == T0
    removed, kept = store.trim(T0 + timedelta(days=2))
    assert (removed, kept) == (4, 6)
    assert store.oldest() == T0 + timedelta(days=2)
    assert store.read(kind=SampleKind.ARCHIVE) == []
