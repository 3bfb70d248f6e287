"""What pgherd.yaml says about a repository, as plain data (see archive/repository.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

SPEC_FILE = "repositories.json"  # in a node's WAL spool, for archive_command


@dataclass(frozen=True)
class Retention:
    """Per repository: full backups to keep (with what depends on them), and days."""

    keep_full: int | None = None
    keep_days: float | None = None


@dataclass(frozen=True)
class RepositorySpec:
    """Where one backup repository lives (a directory, or S3) and what it keeps."""

    name: str
    path: str | None = None  # a local or mounted directory
    repo: str | None = None  # s3://bucket/prefix
    endpoint: str | None = None
    region: str = "us-east-1"
    credentials_file: str | None = None
    encryption_key_file: str | None = None
    retention: Retention = field(default_factory=Retention)

    @property
    def local(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        where = self.path or self.repo or "?"
        return f"{self.name} ({where})"

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> RepositorySpec:
        retention = raw.get("retention") or {}
        assert isinstance(retention, dict)
        values = {k: v for k, v in raw.items() if k != "retention"}
        return cls(**values, retention=Retention(**retention))  # type: ignore[arg-type]


def write_specs(specs: tuple[RepositorySpec, ...]) -> str:
    return json.dumps({"format": 1, "repositories": [s.to_json() for s in specs]}, indent=2)


def specs_from_json(text: str) -> tuple[RepositorySpec, ...]:
    raw = json.loads(text)
    return tuple(RepositorySpec.from_json(r) for r in raw["repositories"])
