"""What a bundled backup holds, file by file and chunk by chunk (pure data and rules).

A file is cut into chunks of ``CHUNK_SIZE`` bytes (16 pages). Each chunk records the
hash of its bytes as they were read (``hash``: what a full copy would hold) and where
its content is stored: a bundle object, an offset and a length in it, and the hash of
the stored bytes (``stored``). A differential or incremental backup stores only the
chunks that changed and points at its parent's bundles for the others, so one manifest
describes the whole file: a restore never walks the chain, and retention knows which
backups a kept one depends on.

When a chunk's pages all carry an LSN older than the parent's start, the chunk was not
changed through WAL since the parent started and the parent's copy is used even if
its bytes differ (hint bits, set without WAL): then ``stored`` differs from ``hash``.
Both are valid images of the chunk for a restore that replays WAL from this backup's
start, and a delta restore keeps a local chunk that matches either.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgherd.model.lsn import Lsn

CHUNK_SIZE = 128 * 1024
PAGE_SIZE = 8192
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    size: int  # bytes of the original
    hash: str  # of the bytes as read (SHA-256's first 128 bits, hex)
    stored: str  # of the bytes the bundle holds for it
    bundle: str  # the bundle's key in the repository
    offset: int  # in the bundle
    length: int  # in the bundle (compressed, sealed)

    def same_place(self, other: Chunk) -> bool:
        return (self.bundle, self.offset) == (other.bundle, other.offset)


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the data directory, "/"-separated
    size: int
    mode: int
    chunks: tuple[Chunk, ...]
    mtime_ns: int = 0  # when it was read: an unchanged time lets a child skip reading it

    def chunk_count(self) -> int:
        return (self.size + CHUNK_SIZE - 1) // CHUNK_SIZE


@dataclass(frozen=True)
class Manifest:
    label: str
    start_lsn: Lsn
    files: tuple[FileEntry, ...]
    directories: tuple[str, ...]  # every directory, parents first (modes: 0700)
    backup_label: str  # pg_backup_stop's labelfile: written as backup_label at restore
    tablespace_map: str = ""
    encrypted: bool = False
    by_path: Mapping[str, FileEntry] = field(default_factory=dict, compare=False, repr=False)

    def file(self, path: str) -> FileEntry | None:
        if not self.by_path:
            object.__setattr__(self, "by_path", {f.path: f for f in self.files})
        return self.by_path.get(path)

    def bundles(self) -> set[str]:
        return {c.bundle for f in self.files for c in f.chunks}

    def stored_bytes(self, own_prefix: str) -> int:
        """Bytes of bundles under ``own_prefix`` (this backup's, not its parents')."""
        seen: set[tuple[str, int]] = set()
        total = 0
        for f in self.files:
            for c in f.chunks:
                if c.bundle.startswith(own_prefix) and (c.bundle, c.offset) not in seen:
                    seen.add((c.bundle, c.offset))
                    total += c.length
        return total

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)


def parent_labels(manifest: Manifest, bundle_owner: Mapping[str, str]) -> set[str]:
    """Labels of the backups whose bundles this manifest points at (itself included)."""
    return {bundle_owner[b] for b in manifest.bundles() if b in bundle_owner}


# ---- JSON (compact: bundles listed once, chunks as arrays) ------------------------------


def to_json(manifest: Manifest) -> str:
    bundles = sorted(manifest.bundles())
    number = {b: n for n, b in enumerate(bundles)}
    files = [
        [
            f.path,
            f.size,
            f.mode,
            [
                [c.index, c.size, c.hash, c.stored, number[c.bundle], c.offset, c.length]
                for c in f.chunks
            ],
            f.mtime_ns,
        ]
        for f in manifest.files
    ]
    return json.dumps(
        {
            "format": FORMAT,
            "label": manifest.label,
            "start_lsn": str(manifest.start_lsn),
            "encrypted": manifest.encrypted,
            "backup_label": manifest.backup_label,
            "tablespace_map": manifest.tablespace_map,
            "directories": list(manifest.directories),
            "bundles": bundles,
            "files": files,
        },
        separators=(",", ":"),
    )


def from_json(text: str) -> Manifest:
    raw: dict[str, Any] = json.loads(text)
    if raw.get("format") != FORMAT:
        raise ValueError(f"unknown manifest format {raw.get('format')!r}")
    bundles: list[str] = raw["bundles"]
    files = tuple(
        FileEntry(
            row[0],
            row[1],
            row[2],
            tuple(Chunk(i, sz, h, st, bundles[b], off, ln) for i, sz, h, st, b, off, ln in row[3]),
            row[4] if len(row) > 4 else 0,
        )
        for row in raw["files"]
    )
    return Manifest(
        label=raw["label"],
        start_lsn=Lsn.parse(raw["start_lsn"]),
        files=files,
        directories=tuple(raw["directories"]),
        backup_label=raw["backup_label"],
        tablespace_map=raw.get("tablespace_map", ""),
        encrypted=bool(raw.get("encrypted", False)),
    )


# ---- what changed: the rule for one chunk ------------------------------------------------


_PD_LSN = struct.Struct("<II")  # pd_lsn: xlogid, xrecoff (little-endian, as written)
_PAGE_WORDS = PAGE_SIZE // 4
_NATIVE_LITTLE = sys.byteorder == "little"


def page_lsns(data: bytes | memoryview) -> list[int]:
    """pd_lsn of every whole page in ``data``. On a little-endian machine (where the
    server wrote them) the two words of each header are picked out by a strided view:
    no per-page call, and nothing but the headers is touched."""
    whole = len(data) - len(data) % PAGE_SIZE
    if _NATIVE_LITTLE:
        words = memoryview(data)[:whole].cast("B").cast("I")
        highs = words[0::_PAGE_WORDS].tolist()
        lows = words[1::_PAGE_WORDS].tolist()
        return [(high << 32) | low for high, low in zip(highs, lows, strict=True)]
    return [
        (high << 32) | low
        for high, low in (_PD_LSN.unpack_from(data, start) for start in range(0, whole, PAGE_SIZE))
    ]


def unchanged_since(data: bytes | memoryview, threshold: Lsn) -> bool:
    """Whether every page of a relation chunk was last changed through WAL before
    ``threshold`` (the parent backup's start). A page of zeros (extended, never
    initialised) does not count as unchanged: its bytes are taken as they are, since
    the parent's block at that place may have been truncated away and reused since."""
    if len(data) % PAGE_SIZE:
        return False
    lsns = page_lsns(data)
    return bool(lsns) and min(lsns) > 0 and max(lsns) < threshold.value


def reuse(
    relation: bool, data_hash: str, data: bytes, parent: Chunk | None, threshold: Lsn | None
) -> bool:
    """Whether a chunk read now may point at the parent's stored copy instead of being
    stored again: the same bytes (any file), or — for a relation's main fork — pages
    not changed through WAL since the parent started. Never across a size change."""
    if parent is None or parent.size != len(data):
        return False
    if parent.hash == data_hash or parent.stored == data_hash:
        return True
    return relation and threshold is not None and unchanged_since(data, threshold)


# ---- delta restore ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaPlan:
    """What a restore into a directory that already holds files must do."""

    fetch: tuple[tuple[str, Chunk], ...]  # (path, chunk) to fetch and write
    truncate: tuple[tuple[str, int], ...]  # (path, size) for every file the backup has
    remove: tuple[str, ...]  # files the backup does not have
    kept_bytes: int
    fetched_bytes: int


def delta_plan(
    manifest: Manifest,
    local: Mapping[str, Sequence[str | None]],
    excluded: Iterable[str] = (),
) -> DeltaPlan:
    """``local``: for each file present in the directory, the hash of each of its chunks
    (None for a chunk that could not be read whole). A chunk is fetched unless the local
    one matches it; files the backup does not list are removed, except ``excluded``
    ones (what a backup never copies: pg_wal's contents, postmaster.pid…)."""
    fetch: list[tuple[str, Chunk]] = []
    kept = fetched = 0
    for entry in manifest.files:
        have = local.get(entry.path, ())
        for chunk in entry.chunks:
            mine = have[chunk.index] if chunk.index < len(have) else None
            if mine is not None and mine in (chunk.hash, chunk.stored):
                kept += chunk.size
            else:
                fetch.append((entry.path, chunk))
                fetched += chunk.size
    listed = {f.path for f in manifest.files}
    skip = set(excluded)
    remove = tuple(sorted(p for p in local if p not in listed and p not in skip))
    return DeltaPlan(
        fetch=tuple(fetch),
        truncate=tuple((f.path, f.size) for f in manifest.files),
        remove=remove,
        kept_bytes=kept,
        fetched_bytes=fetched,
    )
