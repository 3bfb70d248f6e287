"""WAL in every repository: a segment counts as archived once each one holds it durably;
a fetch reads the first repository that has a good copy.

Like :mod:`pgherd.archive.store`, this is on the archive_command path: the standard
library, zstandard and pure pgherd modules only (boto3 is imported by an S3 repository
when it is opened).
"""

from __future__ import annotations

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
    def __init__(self, repositories: Sequence[Repository]) -> None:
        if not repositories:
            raise ArchiveError("no repository is configured", "add archive: {path: DIR}")
        self.repositories = tuple(repositories)
        self.archives = tuple(WalArchive(r.storage) for r in self.repositories)

    @classmethod
    def open(cls, specs: Sequence[RepositorySpec]) -> WalRepositories:
        return cls([open_repository(s) for s in specs])

    def push(self, source: Path, name: str | None = None) -> list[RepoPush]:
        """Into every repository, in order; raises at the first that fails (those that
        succeeded keep their copy: a retry finds it identical and moves on)."""
        data = source.read_bytes()
        return [
            RepoPush(repo.name, archive.push_bytes(name or source.name, data))
            for repo, archive in zip(self.repositories, self.archives, strict=True)
        ]

    def fetch(self, name: str, destination: Path) -> bool:
        """From the first repository with a good copy. A corrupt copy, a gap or an
        unreachable repository is remembered and the next one tried; the first of these
        errors is raised when no repository could serve ``name``."""
        problems: list[Exception] = []
        for archive in self.archives:
            try:
                if archive.fetch(name, destination):
                    return True
            except (PgherdError, OSError) as exc:
                problems.append(exc)
        if problems:
            raise problems[0]
        return False
