"""The archive's catalog: base backups and restore points, as plain JSON files.

::

    <archive>/
      archive.json                       the cluster's identity
      wal/<tli+log>/<segment>-<sha256>.zst   WAL (see store.py)
      wal/history/<tli>.history-<sha256>.zst
      backups/<label>/backup.json        the catalog entry, written last
      backups/<label>/data/              pg_basebackup's plain copy, with backup_manifest
      restore-points/<name>.json

A backup being made lives in ``backups/.<label>.partial`` and is renamed into place once
its catalog entry is written, so a listed backup is always a finished one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pgherd.archive.storage import LocalStorage
from pgherd.archive.store import WalArchive
from pgherd.errors import ArchiveError, InvalidInput
from pgherd.model.backup import Backup
from pgherd.model.lsn import Lsn
from pgherd.model.recovery_target import RestorePoint

BACKUPS = "backups"
RESTORE_POINTS = "restore-points"


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
    """A local archive directory: the WAL store plus the catalog beside it."""

    root: Path

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.root)

    @property
    def wal(self) -> WalArchive:
        return WalArchive(self.storage)

    def require(self) -> None:
        if not self.root.is_dir():
            raise ArchiveError(
                f"there is no archive at {self.root}",
                "create it with `pgherd archive init` (lab up --archive does it)",
            )
        self.wal.identity()

    # ---- backups ---------------------------------------------------------------------

    @property
    def backups_dir(self) -> Path:
        return self.root / BACKUPS

    def backup_dir(self, label: str) -> Path:
        return self.backups_dir / label

    def backups(self) -> list[Backup]:
        found = []
        if self.backups_dir.is_dir():
            for entry in sorted(self.backups_dir.iterdir()):
                info = entry / "backup.json"
                if entry.name.startswith(".") or not info.is_file():
                    continue
                try:
                    found.append(backup_from_json(json.loads(info.read_text())))
                except (ValueError, KeyError) as exc:
                    raise ArchiveError(f"{info} is unreadable: {exc}") from None
        return sorted(found, key=lambda b: (b.stop_lsn, b.stop_time))

    def backup(self, label: str) -> Backup:
        for backup in self.backups():
            if backup.label == label:
                return backup
        known = ", ".join(b.label for b in self.backups()) or "none"
        raise InvalidInput(f"no backup labelled {label!r} in {self.root}", f"backups: {known}")

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
