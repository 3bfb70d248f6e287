"""Bundles: a backup's chunks, packed into objects of about ``BUNDLE_SIZE`` bytes.

One object per chunk would mean a million PUTs for a large cluster and one per file
thousands of tiny ones for a new cluster's catalogs; bundles of ~8 MB keep requests few
and still let a delta restore fetch little (chunks are read with ranged GETs). Each
chunk in a bundle is its own zstd frame, sealed on its own when the repository is
encrypted (the bundle's key and the chunk's offset are its associated data), so one
chunk can be read and checked without the rest.

After a bundle is stored, its index (``<bundle>.idx``: which chunk of which file sits
where) is stored beside it: an interrupted backup resumes from these, reusing every
chunk whose bytes have not changed instead of uploading it again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

from pgherd.archive.crypto import Cipher
from pgherd.archive.storage import Storage, StorageError
from pgherd.errors import CorruptWal
from pgherd.model.backup_manifest import Chunk

BUNDLE_SIZE = 8 * 1024 * 1024
ZSTD_LEVEL = 1
INDEX = ".idx"


def chunk_hash(data: bytes) -> str:
    """SHA-256, the first 128 bits: with the CPU's SHA extensions it runs ~4× faster
    than BLAKE2b here (measured: 800 chunks of 128 kB in 0.22 s against 0.80 s)."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Placed:
    """A chunk's place, before its bundle is stored."""

    path: str
    chunk: Chunk


class BundleWriter:
    """Packs chunks into bundles under ``prefix``; not thread-safe (one per worker)."""

    def __init__(
        self,
        storage: Storage,
        index_storage: Storage,
        cipher: Cipher | None,
        prefix: str,
        name: str,
        on_stored: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.storage = storage  # raw: each chunk is sealed on its own
        self.index_storage = index_storage  # sealed when the repository is encrypted
        self.cipher = cipher
        self.prefix = prefix
        self.name = name
        self.sequence = 0
        self.parts: list[bytes] = []
        self.placed: list[Placed] = []
        self.size = 0
        self.raw = 0
        self.stored_bytes = 0
        self.on_stored = on_stored
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.name}-{self.sequence:05d}"

    def add(self, path: str, index: int, data: bytes, data_hash: str) -> Chunk:
        frame = self._compressor.compress(data)
        if self.cipher is not None:
            frame = self.cipher.seal(frame, f"{self.key}@{self.size}")
        chunk = Chunk(index, len(data), data_hash, data_hash, self.key, self.size, len(frame))
        self.parts.append(frame)
        self.placed.append(Placed(path, chunk))
        self.size += len(frame)
        self.raw += len(data)
        if self.raw >= BUNDLE_SIZE:
            self.flush()
        return chunk

    def flush(self) -> None:
        if not self.parts:
            return
        body = b"".join(self.parts)
        if not self.storage.put_new(self.key, body):
            raise StorageError(17, f"bundle {self.key} exists already in {self.storage.describe()}")
        index = [[p.path, *_chunk_row(p.chunk)] for p in self.placed]
        self.index_storage.put_new(self.key + INDEX, json.dumps(index).encode())
        self.stored_bytes += len(body)
        self.on_stored(len(body))
        self.sequence += 1
        self.parts, self.placed, self.size, self.raw = [], [], 0, 0


def _chunk_row(c: Chunk) -> list[object]:
    return [c.index, c.size, c.hash, c.stored, c.bundle, c.offset, c.length]


def read_index(storage: Storage, key: str) -> list[tuple[str, Chunk]]:
    raw = storage.get(key)
    if raw is None:
        return []
    return [
        (path, Chunk(i, size, h, stored, bundle, offset, length))
        for path, i, size, h, stored, bundle, offset, length in json.loads(raw)
    ]


class ChunkReader:
    """Reads chunks back: ranged reads, decompressed, opened and checked."""

    def __init__(self, storage: Storage, cipher: Cipher | None) -> None:
        self.storage = storage
        self.cipher = cipher
        self._local = threading.local()

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        """One per thread: making one costs more than decompressing a chunk."""
        found: zstandard.ZstdDecompressor | None = getattr(self._local, "d", None)
        if found is None:
            found = self._local.d = zstandard.ZstdDecompressor()
        return found

    def decode(self, chunk: Chunk, frame: bytes) -> bytes:
        try:
            if self.cipher is not None:
                frame = self.cipher.open(frame, f"{chunk.bundle}@{chunk.offset}")
            data = self._decompressor().decompress(frame, max_output_size=chunk.size)
        except (zstandard.ZstdError, StorageError) as exc:
            raise CorruptWal(
                f"chunk {chunk.index} in {chunk.bundle} of {self.storage.describe()} is "
                f"corrupt: {exc}",
                "take a new full backup; restore from another repository",
            ) from None
        if len(data) != chunk.size or chunk_hash(data) != chunk.stored:
            raise CorruptWal(
                f"chunk {chunk.index} in {chunk.bundle} of {self.storage.describe()} does not "
                "match its checksum",
                "take a new full backup; restore from another repository",
            )
        return data

    def read_run(self, chunks: list[Chunk]) -> list[bytes]:
        """Chunks that lie one after another in one bundle, with one ranged read."""
        first, last = chunks[0], chunks[-1]
        span = last.offset + last.length - first.offset
        body = self.storage.get_range(first.bundle, first.offset, span)
        return [
            self.decode(c, body[c.offset - first.offset : c.offset - first.offset + c.length])
            for c in chunks
        ]


def runs(chunks: list[Chunk], gap: int = 256 * 1024) -> list[list[Chunk]]:
    """Group chunks into runs of one bundle each, near enough to read in one request
    (a gap of up to ``gap`` bytes is read and thrown away rather than asked again)."""
    ordered = sorted(chunks, key=lambda c: (c.bundle, c.offset))
    found: list[list[Chunk]] = []
    for chunk in ordered:
        if found:
            last = found[-1][-1]
            if last.bundle == chunk.bundle and chunk.offset - (last.offset + last.length) <= gap:
                found[-1].append(chunk)
                continue
        found.append([chunk])
    return found
