"""The keeper's fence file and command line, and that it starts light (pg/keeper.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgherd.pg import keeper, osuser


def test_the_fence_moment_goes_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / keeper.FENCE_FILE
    assert keeper.read_fence(path) is None  # no file: nothing to fence
    keeper.write_fence(path, 1234.5678)
    assert keeper.read_fence(path) == pytest.approx(1234.568)
    assert path.stat().st_mode & 0o777 == 0o600
    keeper.write_fence(path, None)
    assert path.read_text() == "none\n"
    assert keeper.read_fence(path) is None
    path.write_text("garbage\n")
    assert keeper.read_fence(path) is None
    assert [p.name for p in tmp_path.iterdir()] == [keeper.FENCE_FILE]  # no temporary left


def test_the_keeper_command_line() -> None:
    argv = keeper.command(
        "/venv/bin/python", Path("/h/run/pgherd.fence"), 7, ["postgres", "-D", "/d"]
    )
    assert argv == [
        "/venv/bin/python",
        "-I",
        "-m",
        "pgherd.pg.keeper",
        "--fence",
        "/h/run/pgherd.fence",
        "--report-fd",
        "7",
        "--",
        "postgres",
        "-D",
        "/d",
    ]


def test_the_keeper_imports_only_what_it_needs() -> None:
    """It starts at every postmaster start: no pydantic, psycopg, FastAPI or yaml."""
    code = "import sys, json, pgherd.pg.keeper; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    heavy = {"pydantic", "psycopg", "fastapi", "uvicorn", "yaml", "httpx", "pgherd.config"}
    assert not loaded & heavy


def test_the_fence_directory_on_tmpfs_is_made_closed_and_trusted_only_so(tmp_path: Path) -> None:
    uid, gid = os.geteuid(), os.getegid()
    made = keeper.fence_dir(uid, gid, root=tmp_path)
    assert made == tmp_path / f"pgherd-{uid}"
    assert made.stat().st_mode & 0o777 == 0o700
    assert keeper.fence_dir(uid, gid, root=tmp_path) == made  # found again, as it is
    made.chmod(0o755)  # others could read it: refused, not repaired
    assert keeper.fence_dir(uid, gid, root=tmp_path) is None
    made.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    made.symlink_to(elsewhere)  # planted by somebody: never followed
    assert keeper.fence_dir(uid, gid, root=tmp_path) is None
    assert keeper.fence_dir(uid + 1, gid, root=tmp_path / "missing" / "deeper") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a directory for another uid")
def test_a_fence_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    uid, gid = osuser.resolve("postgres").uid, osuser.resolve("postgres").gid
    made = keeper.fence_dir(uid, gid, root=tmp_path)
    assert made is not None and made.stat().st_uid == uid  # root makes it for the user
    os.chown(made, 0, 0)
    assert keeper.fence_dir(uid, gid, root=tmp_path) is None


def test_each_data_directory_has_its_own_fence_file(tmp_path: Path) -> None:
    one, two = tmp_path / "node1" / "data", tmp_path / "node2" / "data"
    assert keeper.fence_name(one) == keeper.fence_name(one)
    assert keeper.fence_name(one) != keeper.fence_name(two)
    assert keeper.fence_name(one).endswith(".fence")


def _child_of(argv_tail: list[str]) -> tuple[subprocess.Popen[str], int]:
    """A parent whose command line ends with ``argv_tail``, and its child's PID."""
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, *argv_tail], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    with parent.stdout:
        return parent, int(parent.stdout.readline())


def test_which_fence_the_keeper_of_a_running_postmaster_reads() -> None:
    parent, child = _child_of(["-m", "pgherd.pg.keeper", "--fence", "/h/run/pgherd.fence"])
    try:
        assert keeper.keeper_of(child) == keeper.KeeperOf(Path("/h/run/pgherd.fence"), True)
    finally:
        os.kill(child, signal.SIGKILL)
        parent.wait(5)
    parent, child = _child_of(["postgres-started-by-hand"])
    try:
        assert keeper.keeper_of(child) == keeper.KeeperOf(None, known=True)
    finally:
        os.kill(child, signal.SIGKILL)
        parent.wait(5)
    assert keeper.keeper_of(child) == keeper.KeeperOf(None, known=False)  # gone


def test_a_removed_data_directory_forgets_its_fence_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper, "FENCE_ROOT", tmp_path)
    uid = os.geteuid()
    directory = keeper.fence_dir(uid, os.getegid())
    assert directory is not None
    data = tmp_path / "node1" / "data"
    keeper.write_fence(directory / keeper.fence_name(data), 5.0)
    keeper.forget_fence(data, uid)
    assert list(directory.iterdir()) == []
    keeper.forget_fence(data, uid)  # gone already: nothing to say
