"""The fence deadline reaches the keeper's file without holding up whoever publishes it
(ha/supervisor.py, ``post_fence``): a data disk stalled for seconds held the lease lock
and the fence thread's lock in a fault run, and the fence fired late."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pgherd.ha.supervisor import Supervisor
from pgherd.lab import layout
from pgherd.pg import keeper
from pgherd.pg.local_node import LocalNode


class _StalledDisk:
    """keeper.write_fence on a disk that holds the first write until ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.written: list[float | None] = []
        self._real = keeper.write_fence

    def __call__(
        self, path: Path, at: float | None, uid: int | None = None, gid: int | None = None
    ) -> None:
        if not self.written:
            self.stalled.set()
            assert self.release.wait(10)
        self._real(path, at)
        self.written.append(at)


@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    monkeypatch.setattr(keeper, "FENCE_ROOT", tmp_path / "shm")  # the test's own tmpfs
    (tmp_path / "shm").mkdir()
    cfg = layout.lab_config(
        tmp_path, layout.LabShape(3, 25000, "postgres", None, failover="automatic", dcs="etcd")
    )
    local = LocalNode.open(cfg, "node1")
    local.instance.socket_dir.mkdir(parents=True)
    return Supervisor(local.instance, auto_restart=False)


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_posting_never_waits_for_the_disk_and_the_latest_value_is_written(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _StalledDisk()
    monkeypatch.setattr(keeper, "write_fence", disk)
    supervisor.post_fence(10.0)
    assert disk.stalled.wait(5)
    began = time.monotonic()
    for at in (11.0, 12.0, 13.0):
        supervisor.post_fence(at)  # the disk still holds the first write
    assert time.monotonic() - began < 0.5
    disk.release.set()
    _wait_for(lambda: keeper.read_fence(supervisor.fence_file) == 13.0)
    assert disk.written == [10.0, 13.0]  # 11 and 12 skipped: only the latest counts


def test_a_value_set_at_once_is_not_overwritten_by_an_older_posted_one(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's handover at shutdown sets the fence at once; a renewal's deadline
    posted before it and still waiting for the disk must not replace it."""
    disk = _StalledDisk()
    monkeypatch.setattr(keeper, "write_fence", disk)
    supervisor.post_fence(10.0)
    assert disk.stalled.wait(5)
    supervisor.post_fence(11.0)  # pending behind the stalled write
    setter = threading.Thread(target=supervisor.set_fence, args=(50.0,))
    setter.start()
    disk.release.set()
    setter.join(5)
    time.sleep(0.2)  # the publisher thread had its chance
    assert keeper.read_fence(supervisor.fence_file) == 50.0
    assert 11.0 not in disk.written[disk.written.index(50.0) :]


def test_the_fence_is_published_on_tmpfs_not_on_the_data_disk(supervisor: Supervisor) -> None:
    supervisor.set_fence(21.0)
    shm = keeper.FENCE_ROOT / f"pgherd-{supervisor.instance.user.uid}"
    assert supervisor.fence_file.parent == shm
    assert keeper.read_fence(supervisor.fence_file) == 21.0
    assert not (supervisor.instance.socket_dir / keeper.FENCE_FILE).exists()


def test_an_adopted_postmaster_kept_by_an_earlier_pgherd_is_fenced_through_its_file(
    supervisor: Supervisor,
) -> None:
    """An earlier pgherd's keeper reads the socket directory's file: the agent that
    adopts its postmaster must publish there, or a renewed lease would not reach it and
    its stale deadline would stop a healthy primary (or none would stop a stale one)."""
    old_file = supervisor.instance.socket_dir / keeper.FENCE_FILE
    keeper.write_fence(old_file, None)
    report_r, report_w = os.pipe()
    kept = subprocess.Popen(
        keeper.command(sys.executable, old_file, report_w, ["sleep", "30"]),
        pass_fds=(report_w,),
    )
    os.close(report_w)
    try:
        postmaster = int(os.read(report_r, 64).decode())
        supervisor.publish_for_keeper_of(postmaster)
        supervisor.set_fence(time.monotonic() + 60)
        assert keeper.read_fence(old_file) is not None
        time.sleep(0.3)
        assert kept.poll() is None  # the deadline is a minute away
        supervisor.post_fence(time.monotonic() + 0.2)  # the lease is no longer renewed
        assert kept.wait(5) == -signal.SIGQUIT  # the keeper stopped it, as it must
    finally:
        os.close(report_r)
        if kept.poll() is None:
            kept.kill()
            kept.wait(5)
