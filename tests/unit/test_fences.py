"""tests/fences.py: a run forgets the tmpfs fence files of the data directories it removes,
and tells which were left behind; it never touches another directory's fence file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pgherd.pg import keeper
from tests.fences import FenceWatch, directories_under, forget_fences_under


@pytest.fixture
def fences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fence directory of this user's under ``tmp_path``, in place of /dev/shm's."""
    monkeypatch.setattr(keeper, "FENCE_ROOT", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    directory = keeper.fence_dir(os.geteuid(), os.getegid())
    assert directory is not None
    return directory


def data_dir(path: Path) -> Path:
    (path / "base" / "1").mkdir(parents=True)
    (path / "PG_VERSION").write_text("15\n")
    return path


def test_directories_under_a_root_do_not_look_into_data_directories(tmp_path: Path) -> None:
    data = data_dir(tmp_path / "run" / "node1" / "data")
    (tmp_path / "run" / "archive" / "wal").mkdir(parents=True)
    found = dict(directories_under(tmp_path / "run"))
    assert found[data] is True
    assert found[tmp_path / "run" / "archive" / "wal"] is False
    assert data / "base" not in found


def test_a_removed_run_forgets_the_fence_files_of_its_directories_only(
    tmp_path: Path, fences: Path
) -> None:
    uid = os.geteuid()
    ours = data_dir(tmp_path / "run" / "node1" / "data")
    emptied = tmp_path / "run" / "node2" / "data"  # a test emptied it: no PG_VERSION left
    emptied.mkdir(parents=True)
    theirs = data_dir(tmp_path / "other-run" / "node1" / "data")
    for each in (ours, emptied, theirs):
        keeper.write_fence(keeper.tmpfs_fence_file(each, uid), 5.0)
    forget_fences_under(tmp_path / "run", uid)
    assert [p.name for p in fences.iterdir()] == [keeper.fence_name(theirs)]


def test_the_watch_names_a_data_directory_removed_without_its_fence_file(
    tmp_path: Path, fences: Path
) -> None:
    uid = os.geteuid()
    kept = data_dir(tmp_path / "run" / "node1" / "data")
    forgotten = data_dir(tmp_path / "run" / "node2" / "data")
    cleaned = data_dir(tmp_path / "run" / "node3" / "data")
    for each in (kept, forgotten, cleaned):
        keeper.write_fence(keeper.tmpfs_fence_file(each, uid), 5.0)
    watch = FenceWatch()
    watch.note(tmp_path / "run", uid, "test_x")
    shutil.rmtree(forgotten)
    keeper.forget_fence(cleaned, uid)
    shutil.rmtree(cleaned)
    left = watch.left_behind()
    assert [(s.data_dir, s.test) for s in left] == [(forgotten, "test_x")]
    assert left[0].fence_file.exists()
