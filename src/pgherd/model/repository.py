"""What pgherd.yaml says about a repository, as plain data (see archive/repository.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Retention:
    """Per repository: full backups to keep (with what depends on them), and days."""

    keep_full: int | None = None
    keep_days: float | None = None


@dataclass(frozen=True)
class RepositorySpec:
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
