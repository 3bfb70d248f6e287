"""The WAL archive: identity, push, fetch and listing of archived files.

Every stored file is the zstd-compressed original under a key that carries the sha256 of
the original (``wal/<first 16 chars>/<name>-<sha256>.zst``, as pgBackRest names them):
the checksum can never be separated from the file, one atomic link stores both, and a
second push of the same name is recognised as identical (success) or different (refused,
the original kept) from the key alone.

The archive records the cluster it belongs to (system identifier, major version, WAL
segment size) in ``archive.json``; every segment pushed is checked against it from the
segment's own first page, so WAL from another cluster is refused whatever the config says.

This module is on the archive_command path: it imports only the standard library,
zstandard and pure pgherd modules.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgherd.archive.storage import LocalStorage, Storage, StoredObject
from pgherd.errors import ArchiveError, ArchiveMismatch, CorruptWal, MissingWal, WalConflict
from pgherd.model.wal import (
    DEFAULT_SEGMENT_SIZE,
    HISTORY_FOLDER,
    Segment,
    WalKind,
    WalName,
    is_wal_name,
    never_archived,
    parse_name,
    parse_segment_header,
)

IDENTITY_KEY = "archive.json"
WAL_PREFIX = "wal/"
ZSTD_LEVEL = 1  # measured on WAL: level 3 costs ~3x the CPU for ~3% smaller files


@dataclass(frozen=True)
class Identity:
    """The cluster an archive belongs to, like pgBackRest's stanza."""

    system_identifier: str
    pg_major: int
    wal_segment_size: int = DEFAULT_SEGMENT_SIZE
    cluster: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps({"format": 1, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Identity:
        raw = json.loads(text)
        return cls(
            system_identifier=str(raw["system_identifier"]),
            pg_major=int(raw["pg_major"]),
            wal_segment_size=int(raw.get("wal_segment_size", DEFAULT_SEGMENT_SIZE)),
            cluster=str(raw.get("cluster", "")),
            created_at=str(raw.get("created_at", "")),
        )


@dataclass(frozen=True)
class ArchivedFile:
    """One archived WAL file: its PostgreSQL name, the sha256 of the original, where."""

    wal: WalName
    sha256: str
    key: str
    stored_bytes: int
    archived_at: float

    @property
    def name(self) -> str:
        return self.wal.name


@dataclass(frozen=True)
class PushResult:
    name: str
    stored: bool  # False: an identical copy was there already
    original_bytes: int
    stored_bytes: int


def folder_of(name: str) -> str:
    if name.endswith(".history"):
        return HISTORY_FOLDER
    return f"{WAL_PREFIX}{name[:16]}"


def key_of(name: str, sha256: str) -> str:
    return f"{folder_of(name)}/{name}-{sha256}.zst"


def parse_key(obj: StoredObject, segment_size: int) -> ArchivedFile | None:
    base = obj.key.rsplit("/", 1)[-1]
    if not base.endswith(".zst"):
        return None
    name, sep, digest = base[: -len(".zst")].rpartition("-")
    if not sep or len(digest) != 64:
        return None
    try:
        wal = parse_name(name, segment_size)
    except ValueError:
        return None
    return ArchivedFile(wal, digest, obj.key, obj.size, obj.mtime)


class WalArchive:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._identity: Identity | None = None

    @classmethod
    def local(cls, path: Path) -> WalArchive:
        return cls(LocalStorage(path))

    def describe(self) -> str:
        return self.storage.describe()

    # ---- identity ------------------------------------------------------------------

    def identity(self) -> Identity:
        if self._identity is None:
            raw = self.storage.get(IDENTITY_KEY)
            if raw is None:
                raise ArchiveError(
                    f"{self.describe()} is not a pgherd archive (no {IDENTITY_KEY})",
                    "create it with `pgherd archive init`, or fix the archive path",
                )
            try:
                self._identity = Identity.from_json(raw.decode())
            except (ValueError, KeyError) as exc:
                raise ArchiveError(
                    f"{self.describe()}/{IDENTITY_KEY} is unreadable: {exc}",
                    "restore it from a copy, or create a new archive",
                ) from None
        return self._identity

    def initialise(self, identity: Identity) -> bool:
        """Record the cluster's identity; True if created, False if it was already this
        cluster's. Refuses an archive that belongs to another cluster."""
        stamped = Identity(
            identity.system_identifier,
            identity.pg_major,
            identity.wal_segment_size,
            identity.cluster,
            identity.created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if self.storage.put_new(IDENTITY_KEY, stamped.to_json().encode()):
            self._identity = stamped
            return True
        self.require_cluster(identity.system_identifier, identity.pg_major)
        return False

    def require_cluster(self, system_identifier: str, pg_major: int, what: str = "") -> None:
        mine = self.identity()
        if mine.system_identifier != system_identifier or mine.pg_major != pg_major:
            raise ArchiveMismatch(
                f"{self.describe()} belongs to another cluster (system identifier "
                f"{mine.system_identifier}, PostgreSQL {mine.pg_major}){what}; this one is "
                f"{system_identifier}, PostgreSQL {pg_major}",
                "give each cluster its own archive path (archive.path in pgherd.yaml)",
            )

    # ---- push ----------------------------------------------------------------------

    def push(self, source: Path, name: str | None = None) -> PushResult:
        """Archive the file at ``source`` (named ``name``, default its file name)."""
        return self.push_bytes(name or source.name, source.read_bytes())

    def push_bytes(self, name: str, data: bytes) -> PushResult:
        """Archive ``data`` as the WAL file ``name``."""
        import zstandard  # lazy: ~30 ms that `wal fetch` of a history file never needs

        identity = self.identity()
        try:
            wal = parse_name(name, identity.wal_segment_size)
        except ValueError:
            raise ArchiveError(
                f"{name} is not a WAL file name", "archive_command must pass %p"
            ) from None
        if wal.kind in (WalKind.SEGMENT, WalKind.PARTIAL):
            self._check_segment(wal, data, identity)
        digest = hashlib.sha256(data).hexdigest()
        if self._existing(name, digest):
            return PushResult(name, False, len(data), 0)
        compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(data)
        if not self.storage.put_new(key_of(name, digest), compressed):
            self._existing(name, digest)  # raced with another push of the same name
            return PushResult(name, False, len(data), 0)
        return PushResult(name, True, len(data), len(compressed))

    def _existing(self, name: str, digest: str) -> bool:
        """True if ``name`` is archived with this content; raise if with another."""
        for found in self.find(name):
            if found.sha256 == digest:
                return True
            raise WalConflict(
                f"{name} is already archived with different contents (sha256 "
                f"{found.sha256[:12]}…, this file {digest[:12]}…); the archived copy is kept",
                "two servers archive into one archive, or a rewound server re-archives "
                "old WAL: give each cluster its own archive, and check for split brain",
            )
        return False

    def _check_segment(self, wal: WalName, data: bytes, identity: Identity) -> None:
        assert wal.segment is not None
        try:
            header = parse_segment_header(data)
        except ValueError as exc:
            raise ArchiveError(f"{wal.name} is not a WAL segment: {exc}") from None
        if header.system_identifier != identity.system_identifier or (
            header.major != identity.pg_major
        ):
            version = header.major or f"unknown (page magic {header.magic:#06x})"
            raise ArchiveMismatch(
                f"{wal.name} comes from another cluster (system identifier "
                f"{header.system_identifier}, PostgreSQL {version}); {self.describe()} "
                f"belongs to {identity.system_identifier}, PostgreSQL {identity.pg_major}",
                "give each cluster its own archive path (archive.path in pgherd.yaml)",
            )
        expected = wal.segment.start(identity.wal_segment_size)
        if header.page_address != expected or len(data) != identity.wal_segment_size:
            raise ArchiveError(
                f"{wal.name} does not hold the segment its name says (first page at "
                f"{header.page_address}, {len(data)} bytes)",
                "archive_command must pass %p unchanged",
            )

    # ---- fetch ---------------------------------------------------------------------

    def find(self, name: str) -> list[ArchivedFile]:
        segment_size = self.identity().wal_segment_size
        objects = self.storage.list(f"{folder_of(name)}/{name}-")
        return [f for o in objects if (f := parse_key(o, segment_size)) and f.name == name]

    def read(self, found: ArchivedFile) -> bytes:
        """The original bytes of an archived file, checked against its sha256."""
        import zstandard  # lazy: ~30 ms that `wal fetch` of a history file never needs

        raw = self.storage.get(found.key)
        if raw is None:
            raise MissingWal(f"{found.name} vanished from {self.describe()} while being read")
        try:
            data = zstandard.ZstdDecompressor().decompress(raw)
        except zstandard.ZstdError as exc:
            raise CorruptWal(
                f"{found.name} in {self.describe()} is corrupt (cannot decompress: {exc})",
                "restore it from another copy, or restore to a point before it",
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != found.sha256:
            raise CorruptWal(
                f"{found.name} in {self.describe()} is corrupt (sha256 {digest[:12]}…, "
                f"expected {found.sha256[:12]}…)",
                "restore it from another copy, or restore to a point before it",
            )
        return data

    def fetch(self, name: str, destination: Path) -> bool:
        """Write the original of ``name`` to ``destination``; False when not archived.

        Raises MissingWal when the segment is missing between archived ones (a gap: a
        restore must stop, not end early), CorruptWal when it fails its checksum.
        """
        if never_archived(name):
            return False
        if not is_wal_name(name):  # before the name becomes part of a path or a key
            raise ArchiveError(
                f"{name[:80]!r} is not a WAL file name", "restore_command must pass %f"
            )
        found = self.find(name)
        if not found:
            self._raise_if_gap(name)
            return False
        data = self.read(found[0])
        tmp = destination.with_name(f".{destination.name}.pgherd{os.getpid()}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, destination)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _raise_if_gap(self, name: str) -> None:
        segment_size = self.identity().wal_segment_size
        try:
            wal = parse_name(name, segment_size)
        except ValueError:
            return
        if wal.kind is not WalKind.SEGMENT or wal.segment is None:
            return
        seg = wal.segment
        numbers = {
            f.wal.segment.number
            for f in self.files(timeline=seg.timeline)
            if f.wal.kind is WalKind.SEGMENT and f.wal.segment is not None
        }
        if any(n < seg.number for n in numbers) and any(n > seg.number for n in numbers):
            after = min(n for n in numbers if n > seg.number)
            raise MissingWal(
                f"{name} is missing from {self.describe()}: the archive has segments of "
                f"timeline {seg.timeline} before it and from "
                f"{Segment(after, seg.timeline).name(segment_size)} on (a gap)",
                "restore to a point before the gap",
            )

    # ---- listing -------------------------------------------------------------------

    def files(self, timeline: int | None = None) -> list[ArchivedFile]:
        """Every archived WAL file (optionally of one timeline), in name order."""
        segment_size = self.identity().wal_segment_size
        prefix = WAL_PREFIX if timeline is None else f"{WAL_PREFIX}{timeline:08X}"
        found = [f for o in self.storage.list(prefix) if (f := parse_key(o, segment_size))]
        return sorted(found, key=lambda f: f.name)

    def segments(self) -> Iterator[Segment]:
        for f in self.files():
            if f.wal.kind is WalKind.SEGMENT and f.wal.segment is not None:
                yield f.wal.segment

    def delete(self, found: ArchivedFile) -> int:
        return self.storage.delete(found.key)
