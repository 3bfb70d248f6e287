"""The tmpfs fence files of the nodes that tests start (pg/keeper.py: one per data
directory, /dev/shm/pgherd-<uid>/<digest>.fence). tmpfs keeps them until the next boot, so
whatever removes a test's data directories forgets their fence files too
(``forget_fences_under``), and the run checks at its end that none was left behind for a
data directory that is gone (``FenceWatch``).

Only the fence files of directories this run made are ever touched: other engineers'
runs share the machine, and the fence directory of the ``postgres`` OS user."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgherd.pg import keeper


def directories_under(root: Path) -> Iterator[tuple[Path, bool]]:
    """Every directory below ``root`` (itself included), each with whether it is a data
    directory (it holds PG_VERSION); data directories are not looked into."""
    for directory, subdirectories, files in os.walk(root):
        is_data = "PG_VERSION" in files
        if is_data:
            subdirectories.clear()
        yield Path(directory), is_data


def forget_fences_under(root: Path, uid: int) -> None:
    """Forget the fence file of every directory below ``root``, which is about to be
    removed: of every directory, not only those that still hold a data directory's files
    (a test may have emptied one its agent ran on)."""
    for directory, _ in directories_under(root):
        keeper.forget_fence(directory, uid)


@dataclass(frozen=True)
class Seen:
    """A data directory a test had, as the end of its body found it."""

    data_dir: Path
    uid: int  # of its PostgreSQL OS user
    test: str  # the node id of the first test that had it

    @property
    def fence_file(self) -> Path:
        return keeper.tmpfs_fence_file(self.data_dir, self.uid)


class FenceWatch:
    """The data directories the tests had at the end of each test body, to tell at the
    end of the run which of them were removed without their fence file."""

    def __init__(self) -> None:
        self.seen: dict[Path, Seen] = {}

    def note(self, root: Path, uid: int, test: str) -> None:
        for directory, is_data in directories_under(root):
            if is_data and directory not in self.seen:
                self.seen[directory] = Seen(directory, uid, test)

    def left_behind(self) -> list[Seen]:
        """The data directories seen, gone since, whose fence file is still on tmpfs."""
        return [
            seen
            for seen in self.seen.values()
            if not seen.data_dir.exists() and seen.fence_file.exists()
        ]
