"""Repositories: where the archive and the backups live, and how to open them.

A :class:`RepositorySpec` is what pgherd.yaml says about one repository (a local or
mounted directory, or an S3-compatible bucket and prefix), as plain data: it is written
as JSON into each node's WAL spool (``repositories.json``) so that archive_command and
restore_command open the repositories without reading pgherd.yaml (no pydantic on the
hot path, and the PostgreSQL OS user need not read the config). Secrets are never in
it: it names the credentials and key files.

:class:`Repository` is an opened one: its raw storage, its cipher when encrypted, and
the sealed storage that WAL, catalogs and manifests go through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgherd.archive.crypto import Cipher, EncryptedStorage, read_key
from pgherd.archive.storage import LocalStorage, Storage
from pgherd.model.repository import SPEC_FILE, RepositorySpec, specs_from_json, write_specs

__all__ = ["SPEC_FILE", "Repository", "open_repository", "read_specs", "write_specs"]


@dataclass(frozen=True)
class Repository:
    spec: RepositorySpec
    raw: Storage  # bytes as stored: backup bundles seal each chunk themselves
    cipher: Cipher | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def storage(self) -> Storage:
        """What WAL, catalogs and manifests are written through (sealed if encrypted)."""
        if self.cipher is None:
            return self.raw
        return EncryptedStorage(self.raw, self.cipher)

    def describe(self) -> str:
        return self.raw.describe()


def open_repository(spec: RepositorySpec) -> Repository:
    raw: Storage
    if spec.path is not None:
        raw = LocalStorage(Path(spec.path))
    else:
        # lazy: only an S3 repository needs it (wal push/fetch start-up)
        from pgherd.archive.storage_s3 import S3Location, S3Storage, read_credentials

        assert spec.repo is not None
        assert spec.credentials_file is not None
        raw = S3Storage(
            S3Location.parse(spec.repo),
            read_credentials(Path(spec.credentials_file)),
            endpoint=spec.endpoint,
            region=spec.region,
        )
    cipher = None
    if spec.encryption_key_file is not None:
        cipher = Cipher(read_key(Path(spec.encryption_key_file)))
    return Repository(spec, raw, cipher)


def read_specs(path: Path) -> tuple[RepositorySpec, ...]:
    """A repositories.json file (a node's spool, a restored server's data directory)."""
    return specs_from_json(path.read_text())
