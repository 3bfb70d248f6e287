"""postmaster.pid and process liveness, where a zombie counts as dead."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pgherd.pg import process
from pgherd.pg.process import PostmasterPid
from tests.support import wait_until

# PostgreSQL 15's postmaster.pid: the status line is padded to a fixed width so that it
# can be rewritten in place.
PG15_PID_FILE = (
    "4242\n"
    "/var/tmp/lab/node1/data\n"
    "1716215250\n"
    "5441\n"
    "/var/tmp/lab/node1/run\n"
    "127.0.0.1\n"
    "  5441001         3\n"
    "ready   \n"
)


def test_parse_a_postgresql_15_pid_file() -> None:
    assert PostmasterPid.parse(PG15_PID_FILE) == PostmasterPid(
        pid=4242,
        data_dir="/var/tmp/lab/node1/data",
        port=5441,
        socket_dir="/var/tmp/lab/node1/run",
        status="ready",
    )


@pytest.mark.parametrize("status", ["starting", "stopping", "ready", "standby"])
def test_parse_each_status(status: str) -> None:
    text = PG15_PID_FILE.replace("ready   ", f"{status:<8}")
    assert PostmasterPid.parse(text).status == status


def test_parse_a_short_pid_file() -> None:
    # Written by a postmaster that has not got to its sockets yet (or an old version).
    pm = PostmasterPid.parse("4242\n/var/tmp/lab/node1/data\n1716215250\n")
    assert pm == PostmasterPid(4242, "/var/tmp/lab/node1/data", None, None, None)


def test_parse_without_a_socket_directory() -> None:
    text = PG15_PID_FILE.replace("/var/tmp/lab/node1/run\n", "\n")
    pm = PostmasterPid.parse(text)
    assert pm.socket_dir is None
    assert pm.port == 5441
    assert pm.status == "ready"


def test_parse_a_single_user_backend_pid() -> None:
    # A standalone backend writes its PID negated.
    assert PostmasterPid.parse("-4242\n/data\n").pid == 4242


@pytest.mark.parametrize("text", ["", "\n", "not a pid\n/data\n", "42abc\n"])
def test_parse_refuses_a_file_without_a_pid(text: str) -> None:
    with pytest.raises(ValueError, match="no PID on its first line"):
        PostmasterPid.parse(text)


def test_read_postmaster_pid(tmp_path: Path) -> None:
    data = tmp_path
    assert process.read_postmaster_pid(data) is None
    (data / "postmaster.pid").write_text("garbage\n")
    assert process.read_postmaster_pid(data) is None
    (data / "postmaster.pid").write_text(PG15_PID_FILE)
    pm = process.read_postmaster_pid(data)
    assert pm is not None
    assert pm.pid == 4242


def test_the_current_process_is_alive() -> None:
    assert process.proc_state(os.getpid()) in ("R", "S")
    assert process.is_alive(os.getpid())
    assert process.parent_pid(os.getpid()) == os.getppid()


def test_a_pid_that_does_not_exist_is_not_alive() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert process.proc_state(pid_max + 1) is None
    assert not process.is_alive(pid_max + 1)


def test_a_zombie_counts_as_dead_until_reaped() -> None:
    # A child that exits and is not waited for stays a zombie: exactly what an orphaned
    # postmaster becomes here, since PID 1 never reaps. (Popen rather than os.fork: forking
    # a process with threads is deprecated from Python 3.12 on.)
    child = subprocess.Popen(["true"])
    pid = child.pid
    try:
        wait_until(lambda: process.proc_state(pid) == "Z", timeout=10, what="a zombie child")
        assert process.is_alive(pid) is False
        os.kill(pid, 0)  # a zombie still takes signals: why kill -0 is not a liveness test
        assert process.parent_pid(pid) == os.getpid()
        assert pid in process.reap_zombie_children()
        assert process.proc_state(pid) is None
    finally:
        child.wait()  # already reaped above; this only settles Popen's own bookkeeping


def test_the_children_of_a_process_and_their_command_lines() -> None:
    # A grandchild is not a child: recovering_segment reads only the postmaster's own.
    child = subprocess.Popen(
        ["sh", "-c", "sleep 30 & wait"], stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert child.pid in process.children_of(os.getpid())
        assert process.command_line(child.pid) == [b"sh", b"-c", b"sleep 30 & wait", b""]
        grandchildren = wait_until(
            lambda: process.children_of(child.pid), timeout=10, what="the shell's child"
        )
        assert len(grandchildren) == 1
        assert grandchildren[0] not in process.children_of(os.getpid())
        assert process.children_of(grandchildren[0]) == []
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert process.command_line(pid_max + 1) is None
    assert process.children_of(pid_max + 1) == []


def test_working_in_finds_a_program_by_the_directory_on_its_command_line(tmp_path: Path) -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30; :", str(tmp_path)], stdin=subprocess.DEVNULL)
    try:
        # Until the child has exec'd, /proc shows this interpreter's command line.
        deadline = time.monotonic() + 10
        while (process.command_line(child.pid) or [])[:1] != [b"sh"]:
            assert time.monotonic() < deadline, process.command_line(child.pid)
            time.sleep(0.01)
        uid = os.geteuid()
        assert process.working_in(tmp_path, ("sh",), uid) == [child.pid]
        assert process.working_in(tmp_path, ("initdb",), uid) == []
        assert process.working_in(tmp_path / "other", ("sh",), uid) == []
        assert process.working_in(tmp_path, ("sh",), uid + 1) == []
    finally:
        child.kill()
        child.wait()
