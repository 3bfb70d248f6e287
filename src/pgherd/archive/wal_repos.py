"""WAL in every repository: a segment counts as archived once each one holds it durably;
a fetch reads the first repository that has a good copy.

Like :mod:`pgherd.archive.store`, this is on the archive_command path: the standard
library, zstandard and pure pgherd modules only (boto3 is imported by an S3 repository
when it is opened).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgherd.archive.repository import Repository, open_repository
from pgherd.archive.store import PushResult, WalArchive
from pgherd.errors import ArchiveError, PgherdError
from pgherd.model.repository import RepositorySpec


@dataclass(frozen=True)
class RepoPush:
    repository: str
    result: PushResult


class WalRepositories:
    """The repositories, each opened when first used: a fetch that the first (local)
    repository answers never pays for opening an S3 one (boto3's import and client,
    ~0.3 s of every restore_command run)."""

    def __init__(self, repositories: Sequence[Repository | RepositorySpec]) -> None:
        if not repositories:
            raise ArchiveError("no repository is configured", "add archive: {path: DIR}")
        self._given = list(repositories)
        self._opened: dict[int, tuple[Repository, WalArchive]] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, specs: Sequence[RepositorySpec]) -> WalRepositories:
        return cls(list(specs))

    def __len__(self) -> int:
        return len(self._given)

    def _at(self, index: int) -> tuple[Repository, WalArchive]:
        with self._lock:
            found = self._opened.get(index)
            if found is None:
                given = self._given[index]
                repo = given if isinstance(given, Repository) else open_repository(given)
                found = self._opened[index] = (repo, WalArchive(repo.storage))
            return found

    @property
    def repositories(self) -> list[Repository]:
        """Every repository (opening those not opened yet)."""
        return [self._at(i)[0] for i in range(len(self))]

    @property
    def archives(self) -> list[WalArchive]:
        return [self._at(i)[1] for i in range(len(self))]

    def push(self, source: Path, name: str | None = None) -> list[RepoPush]:
        """Into every repository, in order; raises at the first that fails (those that
        succeeded keep their copy: a retry finds it identical and moves on)."""
        data = source.read_bytes()
        pushed = []
        for index in range(len(self)):
            repo, archive = self._at(index)
            pushed.append(RepoPush(repo.name, archive.push_bytes(name or source.name, data)))
        return pushed

    def fetch(self, name: str, destination: Path) -> bool:
        """From the first repository with a good copy. A corrupt copy, a gap or an
        unreachable repository is remembered and the next one tried; the first of these
        errors is raised when no repository could serve ``name``."""
        problems: list[Exception] = []
        for index in range(len(self)):
            try:
                if self._at(index)[1].fetch(name, destination):
                    return True
            except (PgherdError, OSError) as exc:
                problems.append(exc)
        if problems:
            raise problems[0]
        return False
