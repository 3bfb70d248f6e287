"""Where a backup's and a restore's time goes (archive/phases.py, archive/restore_wait.py),
and what was cut: the restore's markers past the end of the archive, a backup's wait for
its WAL (never done before every repository holds it), one repository opened."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.archive.backup import archive_of, archives_of, wait_archived
from pgherd.archive.catalog import Archive
from pgherd.archive.phases import Phases
from pgherd.archive.repository import Repository
from pgherd.archive.restore import _past_the_end
from pgherd.archive.restore_wait import MARKS, LogWatch, _record
from pgherd.archive.storage import LocalStorage, MemoryStorage
from pgherd.archive.store import Identity, WalArchive
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.model.backup import Backup, BackupFormat
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import RestorePlan, Target, TargetKind
from pgherd.model.repository import RepositorySpec
from pgherd.model.wal import Segment, TimelinePath, TimelineSwitch
from tests.unit.test_wal_store import SIZE, SYSID, name, segment_bytes


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_phases_keep_their_order_add_up_and_are_cut_to_the_millisecond() -> None:
    clock = FakeClock()
    phases = Phases(clock)
    phases.add("cli_start", 0.4567)
    with phases.phase("plan"):
        clock.now += 0.25
    with phases.phase("copy"):
        clock.now += 1.0009
    with phases.phase("plan"):  # a second span of the same phase adds to it
        clock.now += 0.05
    assert phases.as_json() == {"cli_start": 0.456, "plan": 0.3, "copy": 1.0}
    assert sum(phases.as_json().values()) <= phases.total
    assert list(phases.as_json()) == ["cli_start", "plan", "copy"]


def test_a_phase_that_fails_is_still_timed() -> None:
    clock = FakeClock()
    phases = Phases(clock)

    def fetch() -> None:
        with phases.phase("fetch"):
            clock.now += 2
            raise OSError("the repository answered 500")

    with pytest.raises(OSError, match="answered 500"):
        fetch()
    assert phases.as_json() == {"fetch": 2.0}


def test_a_negative_span_counts_as_nothing() -> None:
    phases = Phases(FakeClock())
    phases.add("server", -0.5)
    assert phases.as_json() == {"server": 0.0}


def log_lines(*texts: str) -> str:
    return "".join(f"2026-12-06 21:01:02.320 UTC [1] LOG:  {t}\n" for t in texts)


TEXTS = tuple(t for _phase, marks in MARKS for t in marks)


class ServerRun:
    """A restore's server as the restore watches it: spawned now on a fake clock, its log
    read from where it ends now (an earlier run's lines are not this run's)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.clock = FakeClock()
        self.phases = Phases(self.clock)
        self.spawned = self.clock.now
        self.watch = LogWatch(log, log.stat().st_size if log.exists() else 0)

    def logged(self, seconds: float, text: str) -> None:
        """``seconds`` later the server appends ``text`` and the restore reads the log."""
        self.clock.now += seconds
        with self.log.open("a") as handle:
            handle.write(text)
        self.watch.read(TEXTS, self.clock.now)

    def record(self) -> dict[str, float]:
        _record(self.phases, self.watch, self.spawned)
        return self.phases.as_json()


def test_the_server_phases_follow_the_lines_it_logs(tmp_path: Path) -> None:
    log = tmp_path / "restore.log"
    log.write_text(log_lines("an earlier server's last line: redo done at 0/1"))
    run = ServerRun(log)
    run.logged(0.6, log_lines("database system was interrupted") + "LOG:  starting arch")
    run.logged(0.1, "ive recovery\n")  # the line cut in two between reads: seen whole now
    run.logged(0.1, log_lines("redo starts at 0/16000028", "restored log file"))
    run.logged(0.3, log_lines("redo done at 0/16000100", "selected new timeline ID: 2"))
    run.logged(0.2, log_lines("database system is ready to accept connections"))
    run.clock.now += 0.05  # the connection that confirms
    assert run.record() == {
        "server_start": 0.7,
        "recovery_start": 0.1,
        "replay": 0.3,
        "promotion": 0.2,
        "confirm": 0.05,
    }
    assert run.phases.total == pytest.approx(run.clock.now - run.spawned)


def test_a_line_not_seen_merges_its_phase_into_the_next(tmp_path: Path) -> None:
    log = tmp_path / "restore.log"
    log.write_text("")
    run = ServerRun(log)
    run.logged(1.5, log_lines("starting point-in-time recovery to 2026-12-06", "redo starts at"))
    run.logged(0.5, log_lines("pausing at the end of recovery"))
    # both first lines read at once: recovery_start took no time that can be told apart
    assert run.record() == {
        "server_start": 1.5,
        "recovery_start": 0.0,
        "replay": 0.5,
        "confirm": 0.0,
    }


def test_a_server_that_logged_nothing_is_one_phase(tmp_path: Path) -> None:
    run = ServerRun(tmp_path / "absent.log")
    run.clock.now += 3
    assert run.record() == {"server": 3.0}


def backup_at(start: str, stop: str, timeline: int = 1) -> Backup:
    at = datetime(2026, 12, 6, tzinfo=UTC)
    return Backup(
        label="20261206T000000F",
        node="node1",
        timeline=timeline,
        start_lsn=Lsn.parse(start),
        stop_lsn=Lsn.parse(stop),
        stop_timeline=timeline,
        start_time=at,
        stop_time=at,
        size_bytes=1,
        next_xid=1,
        system_identifier=str(SYSID),
        pg_major=15,
        format=BackupFormat.BUNDLES,
    )


def plan_of(target: Target, last: Segment, path: TimelinePath) -> RestorePlan:
    return RestorePlan(
        backup=backup_at("0/3000028", "0/3000100"),
        path=path,
        target=target,
        target_lsn=None,
        first_segment=Segment(3, 1),
        last_segment=last,
        reason="",
    )


def test_latest_marks_the_segment_after_the_end_on_the_timelines_replay_may_ask() -> None:
    path = TimelinePath.of(
        3, (TimelineSwitch(1, Lsn(2 * SIZE), ""), TimelineSwitch(2, Lsn(5 * SIZE), ""))
    )
    latest = Target(TargetKind.LATEST)
    assert _past_the_end(plan_of(latest, Segment(7, 3), path), SIZE) == [name(8, 3)]
    # the newest archived is still on timeline 2: timeline 3's may come next
    assert _past_the_end(plan_of(latest, Segment(4, 2), path), SIZE) == [name(5, 2), name(5, 3)]


def test_a_target_marks_nothing_past_the_end() -> None:
    path = TimelinePath.of(1, ())
    target = Target(TargetKind.LSN, lsn=Lsn(7 * SIZE + 40))
    assert _past_the_end(plan_of(target, Segment(7, 1), path), SIZE) == []


# ---- a backup is complete only once the segment holding its end is archived ----------


def archive() -> Archive:
    storage = MemoryStorage()
    assert WalArchive(storage).initialise(Identity(str(SYSID), 15, SIZE))
    return Archive(Repository(RepositorySpec("main", path="/x"), storage, None))


def config(**more: object) -> ClusterConfig:
    """A one-node cluster's configuration, with ``more`` keys (its archive, say)."""
    return config_mod.parse(
        {
            "cluster": "unit",
            "passfile": "/nonexistent/pgpass",
            "api_token_file": "/nonexistent/token",
            "nodes": [{"name": "node1", "port": 6001, "data_dir": "/nonexistent/data"}],
            **more,
        }
    )


def push(repository: Archive, directory: Path, number: int) -> Path:
    """Segment ``number`` of timeline 1, written in ``directory`` and pushed."""
    segment = directory / name(number)
    segment.write_bytes(segment_bytes(number))
    repository.wal.push(segment)
    return segment


def test_the_wait_ends_when_every_repository_holds_the_end_segment(tmp_path: Path) -> None:
    first, second = archive(), archive()
    stop = Lsn(5 * SIZE + 0x100)  # in segment 5
    segment = push(first, tmp_path, 5)

    def archived_later() -> None:
        time.sleep(0.3)
        second.wal.push(segment)

    pushing = threading.Thread(target=archived_later)
    pushing.start()
    began = time.monotonic()
    wait_archived(config(), [first, second], stop, 1, switched=True, timeout=10)
    waited = time.monotonic() - began
    pushing.join()
    assert 0.3 <= waited < 1.5  # not before the second repository had it; soon after


def test_a_backup_whose_end_segment_never_arrives_is_not_completed() -> None:
    with pytest.raises(PgherdError, match=f"segment {name(5)} was not archived within"):
        wait_archived(config(), [archive()], Lsn(5 * SIZE + 0x100), 1, switched=True, timeout=0.5)


def test_a_backup_ending_on_a_segment_boundary_needs_the_segment_before() -> None:
    # stop_lsn at the very start of segment 6: its last byte is in segment 5
    with pytest.raises(PgherdError, match=name(5)):
        wait_archived(config(), [archive()], Lsn(6 * SIZE), 1, switched=True, timeout=0.2)


# ---- a restore from one repository opens only that one --------------------------------


def test_one_repository_is_opened_without_the_others(tmp_path: Path) -> None:
    local = tmp_path / "archive"
    WalArchive(LocalStorage(local)).initialise(Identity(str(SYSID), 15, SIZE))
    unreadable = tmp_path / "no-such-credentials"  # the S3 one could not even be opened
    cluster = config(
        archive={
            "path": str(local),
            "repositories": [
                {
                    "name": "s3",
                    "repo": "s3://bucket/archive",
                    "endpoint": "http://127.0.0.1:9",
                    "credentials_file": str(unreadable),
                }
            ],
        }
    )
    assert archive_of(cluster).root == local
    with pytest.raises(PgherdError):
        archives_of(cluster)  # what a backup's wait for its WAL opens: every repository
    with pytest.raises(PgherdError, match="no repository named 'other'"):
        archive_of(cluster, "other")


def test_the_end_segment_archived_before_an_earlier_one_is_not_enough(tmp_path: Path) -> None:
    # the pusher stores segments in parallel: 7 (the end) can land while 6 still fails
    repository = archive()
    for number in (5, 7):
        push(repository, tmp_path, number)
    start, stop = Lsn(5 * SIZE + 0x28), Lsn(7 * SIZE + 0x100)
    with pytest.raises(PgherdError, match=f"segment {name(6)} was not archived within"):
        wait_archived(config(), [repository], stop, 1, True, timeout=0.3, start_lsn=start)
    push(repository, tmp_path, 6)
    wait_archived(config(), [repository], stop, 1, True, timeout=5, start_lsn=start)
