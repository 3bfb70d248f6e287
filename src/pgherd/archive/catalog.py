"""A repository's catalog: base backups and restore points, as plain JSON objects.

::

    <repository>/
      archive.json                           the cluster's identity
      wal/<tli+log>/<segment>-<sha256>.zst   WAL (see store.py)
      wal/history/<tli>.history-<sha256>.zst
      catalog/backups/<label>.json           a bundled backup's entry, written last
      catalog/partial/<label>.json           a bundled backup being taken (resumable)
      backups/<label>/manifest.json          its files and chunks (model/backup_manifest.py)
      backups/<label>/bundles/…              its chunks (archive/bundles.py)
      backups/<label>/backup.json            pgherd's first format (a local directory only):
      backups/<label>/data/                  pg_basebackup's plain copy, with backup_manifest
      restore-points/<name>.json

A listed backup is always a finished one: its entry is the last thing written (a first-
format copy is made in ``backups/.<label>.partial`` and renamed into place). In an
encrypted repository every object but the bundles is sealed whole, and the bundles'
chunks each on their own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pgherd.archive.repository import Repository
from pgherd.archive.storage import LocalStorage, Storage, fsync_dir
from pgherd.archive.store import WalArchive
from pgherd.errors import ArchiveError, InvalidInput
from pgherd.model import backup_manifest
from pgherd.model.backup import Backup, BackupFormat, BackupKind
from pgherd.model.backup_manifest import Manifest
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import RestorePoint
from pgherd.model.repository import RepositorySpec

BACKUPS = "backups"
RESTORE_POINTS = "restore-points"
CATALOG = "catalog/backups/"
PARTIAL = "catalog/partial/"


def backup_to_json(backup: Backup) -> dict[str, Any]:
    return {
        "label": backup.label,
        "node": backup.node,
        "timeline": backup.timeline,
        "start_lsn": str(backup.start_lsn),
        "stop_lsn": str(backup.stop_lsn),
        "stop_timeline": backup.stop_timeline,
        "start_time": backup.start_time.isoformat(),
        "stop_time": backup.stop_time.isoformat(),
        "size_bytes": backup.size_bytes,
        "next_xid": backup.next_xid,
        "system_identifier": backup.system_identifier,
        "pg_major": backup.pg_major,
        "kind": str(backup.kind),
        "parent": backup.parent,
        "format": str(backup.format),
        "stored_bytes": backup.stored_bytes,
        "from_standby": backup.from_standby,
    }


def backup_from_json(raw: dict[str, Any]) -> Backup:
    return Backup(
        label=str(raw["label"]),
        node=str(raw["node"]),
        timeline=int(raw["timeline"]),
        start_lsn=Lsn.parse(raw["start_lsn"]),
        stop_lsn=Lsn.parse(raw["stop_lsn"]),
        stop_timeline=int(raw["stop_timeline"]),
        start_time=datetime.fromisoformat(raw["start_time"]),
        stop_time=datetime.fromisoformat(raw["stop_time"]),
        size_bytes=int(raw["size_bytes"]),
        next_xid=int(raw["next_xid"]),
        system_identifier=str(raw["system_identifier"]),
        pg_major=int(raw["pg_major"]),
        kind=BackupKind(raw.get("kind", "full")),
        parent=raw.get("parent"),
        format=BackupFormat(raw.get("format", "copy")),
        stored_bytes=int(raw.get("stored_bytes", raw["size_bytes"])),
        from_standby=bool(raw.get("from_standby", False)),
    )


def point_to_json(point: RestorePoint) -> dict[str, Any]:
    return {
        "name": point.name,
        "lsn": str(point.lsn),
        "timeline": point.timeline,
        "time": point.time.isoformat(),
    }


def point_from_json(raw: dict[str, Any]) -> RestorePoint:
    return RestorePoint(
        name=str(raw["name"]),
        lsn=Lsn.parse(raw["lsn"]),
        timeline=int(raw["timeline"]),
        time=datetime.fromisoformat(raw["time"]),
    )


@dataclass(frozen=True)
class Archive:
    """One repository: its WAL store plus the catalog beside it."""

    repository: Repository

    @classmethod
    def local(cls, root: Path) -> Archive:
        return cls(Repository(RepositorySpec("main", path=str(root)), LocalStorage(root), None))

    @property
    def name(self) -> str:
        return self.repository.name

    @property
    def root(self) -> Path | None:
        """The directory, for a local repository."""
        raw = self.repository.raw
        return raw.root if isinstance(raw, LocalStorage) else None

    def describe(self) -> str:
        return self.repository.describe()

    @property
    def storage(self) -> Storage:
        return self.repository.storage

    @property
    def wal(self) -> WalArchive:
        return WalArchive(self.storage)

    def require(self) -> None:
        if self.root is not None and not self.root.is_dir():
            raise ArchiveError(
                f"there is no archive at {self.root}",
                "create it with `pgherd archive init` (lab up --archive does it)",
            )
        self.wal.identity()

    # ---- backups ---------------------------------------------------------------------

    @property
    def backups_dir(self) -> Path:
        if self.root is None:
            raise ArchiveError(f"{self.describe()} is not a local directory")
        return self.root / BACKUPS

    def backup_dir(self, label: str) -> Path:
        return self.backups_dir / label

    def backups(self) -> list[Backup]:
        found = self._copies()
        for obj in self.storage.list(CATALOG):
            raw = self.storage.get(obj.key)
            if raw is None:
                continue
            try:
                found.append(backup_from_json(json.loads(raw)))
            except (ValueError, KeyError) as exc:
                raise ArchiveError(f"{self.describe()}/{obj.key} is unreadable: {exc}") from None
        return sorted(found, key=lambda b: (b.stop_lsn, b.stop_time))

    def _copies(self) -> list[Backup]:
        """pgherd's first format: pg_basebackup copies in backups/<label>/data."""
        found: list[Backup] = []
        if self.root is None or not self.backups_dir.is_dir():
            return found
        for entry in sorted(self.backups_dir.iterdir()):
            info = entry / "backup.json"
            if entry.name.startswith(".") or not info.is_file():
                continue
            try:
                found.append(backup_from_json(json.loads(info.read_text())))
            except (ValueError, KeyError) as exc:
                raise ArchiveError(f"{info} is unreadable: {exc}") from None
        return found

    def backup(self, label: str) -> Backup:
        backups = self.backups()
        for backup in backups:
            if backup.label == label:
                return backup
        known = ", ".join(b.label for b in backups) or "none"
        raise InvalidInput(
            f"no backup labelled {label!r} in {self.describe()}", f"backups: {known}"
        )

    def manifest(self, label: str) -> Manifest:
        raw = self.storage.get(f"{BACKUPS}/{label}/manifest.json")
        if raw is None:
            raise ArchiveError(
                f"backup {label} in {self.describe()} has no manifest",
                "the backup is damaged: take a new full backup",
            )
        return backup_manifest.from_json(raw.decode())

    def add_backup(self, backup: Backup, manifest: Manifest) -> None:
        """The manifest, then the catalog entry (last: a listed backup is complete)."""
        self.storage.put_new(
            f"{BACKUPS}/{backup.label}/manifest.json", backup_manifest.to_json(manifest).encode()
        )
        entry = json.dumps(backup_to_json(backup), indent=2).encode()
        if not self.storage.put_new(f"{CATALOG}{backup.label}.json", entry):
            raise ArchiveError(f"backup {backup.label} is already in {self.describe()}")
        self.storage.delete(f"{PARTIAL}{backup.label}.json")

    def delete_backup(self, backup: Backup) -> int:
        """Remove a backup (entry first, so that a half-deleted one is never listed)."""
        if backup.format is BackupFormat.COPY:
            directory = self.backup_dir(backup.label)
            size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
            shutil.rmtree(directory)
            fsync_dir(self.backups_dir)
            return size
        freed = self.storage.delete(f"{CATALOG}{backup.label}.json")
        for obj in self.storage.list(f"{BACKUPS}/{backup.label}/"):
            freed += self.storage.delete(obj.key)
        return freed

    # ---- partial (interrupted) backups -------------------------------------------------

    def partials(self) -> list[dict[str, Any]]:
        found = []
        for obj in self.storage.list(PARTIAL):
            raw = self.storage.get(obj.key)
            if raw is not None:
                found.append(json.loads(raw))
        return found

    def mark_partial(self, label: str, info: dict[str, Any]) -> None:
        self.storage.put_new(
            f"{PARTIAL}{label}.json", json.dumps({**info, "label": label}).encode()
        )

    def drop_partial(self, label: str) -> None:
        for obj in self.storage.list(f"{BACKUPS}/{label}/"):
            self.storage.delete(obj.key)
        self.storage.delete(f"{PARTIAL}{label}.json")

    # ---- restore points --------------------------------------------------------------

    def restore_points(self) -> list[RestorePoint]:
        points = []
        for obj in self.storage.list(f"{RESTORE_POINTS}/"):
            raw = self.storage.get(obj.key)
            if raw is not None:
                points.append(point_from_json(json.loads(raw)))
        return sorted(points, key=lambda p: p.lsn)

    def add_restore_point(self, point: RestorePoint) -> None:
        data = json.dumps(point_to_json(point), indent=2).encode()
        if not self.storage.put_new(f"{RESTORE_POINTS}/{point.name}.json", data):
            raise InvalidInput(
                f"the archive already has a restore point named {point.name!r}",
                "choose another name: recovery stops at the first point of a name",
            )
