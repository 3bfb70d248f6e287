"""Waiting for a server to take connections bounds a wait without progress, not a
recovery (pg/instance.py ``wait_ready``, pg/process.py ``recovering_segment``): a standby
rewound from a 20 GB primary replayed for more than the 60 s a rejoin waited."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgherd.errors import TimedOut
from pgherd.lab import layout
from pgherd.pg import process
from pgherd.pg.instance import Instance
from pgherd.pg.local_node import LocalNode

SEGMENT = "00000001000000050000002A"


@pytest.mark.parametrize(
    ("title", "segment"),
    [
        (f"postgres: startup recovering {SEGMENT}", SEGMENT),
        (f"postgres: shop: startup recovering {SEGMENT} waiting", SEGMENT),
        (f"postgres: node1: startup recovering {SEGMENT}  ", SEGMENT),
        ("postgres: startup", None),
        ("postgres: walreceiver streaming 5/2A000000", None),
        (f"postgres: checkpointer recovering {SEGMENT}", None),  # not the startup process
        ("postgres: startup recovering 0000", None),
        ("postgres: startup recovering", None),
    ],
)
def test_the_segment_in_a_startup_process_title(title: str, segment: str | None) -> None:
    assert process.title_segment(title) == segment


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Instance:
    cfg = layout.lab_config(tmp_path, layout.LabShape(1, 25000, "postgres", None))
    monkeypatch.setattr(process, "is_alive", lambda pid: True)
    return LocalNode.open(cfg, "node1").instance


def _starting(monkeypatch: pytest.MonkeyPatch, ready_after: int, segments: list[str]) -> None:
    """A postmaster whose pid file says "starting" until the ``ready_after``-th look, and
    whose startup process replays ``segments`` in turn, one per look at it."""
    looks = {"pid": 0, "segment": 0}

    def read(data_dir: Path) -> process.PostmasterPid:
        looks["pid"] += 1
        status = "standby" if looks["pid"] > ready_after else "starting"
        return process.PostmasterPid(os.getpid(), str(data_dir), None, None, status)

    def replaying(postmaster: int) -> str | None:
        at = min(looks["segment"], len(segments) - 1)
        looks["segment"] += 1
        return segments[at] if segments else None

    monkeypatch.setattr(process, "read_postmaster_pid", read)
    monkeypatch.setattr(process, "recovering_segment", replaying)


def test_a_recovery_that_advances_is_waited_for_past_the_timeout(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments = [f"0000000100000005000000{n:02X}" for n in range(40)]
    _starting(monkeypatch, ready_after=30, segments=segments)  # ~1.5 s at 50 ms a look
    instance.wait_ready(timeout=0.2)  # returns: the startup process kept advancing


def test_a_recovery_that_stands_still_times_out_naming_where(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _starting(monkeypatch, ready_after=10**6, segments=[SEGMENT])
    with pytest.raises(TimedOut, match=f"not ready within 0 s, its recovery still at {SEGMENT}"):
        instance.wait_ready(timeout=0.2)


def test_a_server_not_replaying_times_out_at_the_timeout(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _starting(monkeypatch, ready_after=10**6, segments=[])
    with pytest.raises(TimedOut, match=r"was not ready within 0 s$"):
        instance.wait_ready(timeout=0.2)


def test_a_server_that_logs_its_progress_is_waited_for_past_the_timeout(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before redo, PostgreSQL syncs the data directory, saying so in its log every
    log_startup_progress_interval; its startup process names no segment yet."""
    _starting(monkeypatch, ready_after=30, segments=[])
    log = instance.log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("LOG:  starting PostgreSQL 15\n")
    reports = iter(range(1000))
    real = Instance._progress_logged

    def progress(self: Instance, since: int) -> tuple[bool, int]:
        with log.open("a") as out:  # a report every look, as a busy sync would
            out.write(f"LOG:  syncing data directory (fsync), elapsed time: {next(reports)} s\n")
        return real(self, since)

    monkeypatch.setattr(Instance, "_progress_logged", progress)
    instance.wait_ready(timeout=0.2)


def test_errors_in_the_log_are_not_progress(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewound standby whose WAL its primary already removed logs a FATAL a second,
    forever: waiting on that would never end."""
    _starting(monkeypatch, ready_after=10**6, segments=[])
    log = instance.log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    monkeypatch.setattr(
        Instance,
        "_log_size",
        lambda self: log.stat().st_size,
    )
    real = Instance._progress_logged
    lines = "FATAL:  requested WAL segment 000000020000000400000036 has already been removed\n"

    def spam(self: Instance, since: int) -> tuple[bool, int]:
        with log.open("a") as out:
            out.write(lines)
        return real(self, since)

    monkeypatch.setattr(Instance, "_progress_logged", spam)
    with pytest.raises(TimedOut, match=r"was not ready within 0 s$"):
        instance.wait_ready(timeout=0.2)
