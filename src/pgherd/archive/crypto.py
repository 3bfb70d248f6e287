"""Repository encryption: AES-256-GCM (``cryptography``) with a key read from a file.

Each object (or, in a backup bundle, each chunk) is sealed on its own::

    b"PGHE" | version (1) | nonce (12 random bytes) | ciphertext | tag (16)

with the object's key as associated data: an object moved or swapped under another
name fails to open, as does any flipped bit (GCM's tag), as does the wrong key. The
store's operator sees sizes and names (WAL names, backup labels), never contents.

The key file holds 32 random bytes, raw, as 64 hex digits or in base64 (``head -c 32
/dev/urandom > key``, or ``openssl rand -hex 32``), mode 0600 or stricter. Losing it
loses the repository: keep a copy apart from the repository.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
from pathlib import Path

from pgherd.archive.storage import Storage, StorageError, StoredObject, read_private

MAGIC = b"PGHE"
VERSION = 1
NONCE = 12
TAG = 16
OVERHEAD = len(MAGIC) + 1 + NONCE + TAG


class DecryptError(StorageError):
    """An object that does not open: the wrong key, or damaged or swapped bytes."""


def read_key(path: Path) -> bytes:
    return parse_key(read_private(path, "the encryption key file"), str(path))


def parse_key(raw: bytes, where: str = "the key") -> bytes:
    if len(raw) == 32:
        return raw
    text = raw.strip()
    try:
        if len(text) == 64:
            return binascii.unhexlify(text)
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == 32:
            return decoded
    except (binascii.Error, ValueError):
        pass
    raise StorageError(
        errno.EINVAL,
        f"{where} is not a 256-bit key (32 bytes raw, 64 hex digits or base64); make one "
        "with `openssl rand -hex 32`",
    )


class Cipher:
    """AES-256-GCM with a fresh random nonce per seal."""

    def __init__(self, key: bytes) -> None:
        # lazy: cryptography only for an encrypted repository (wal push/fetch start-up)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"pgherd key id\0" + key).hexdigest()[:16]

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE)
        return MAGIC + bytes([VERSION]) + nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        from cryptography.exceptions import InvalidTag  # lazy, as above

        head = len(MAGIC) + 1
        if sealed[: len(MAGIC)] != MAGIC or len(sealed) < OVERHEAD:
            raise DecryptError(errno.EIO, f"{context} is not encrypted by pgherd")
        if sealed[len(MAGIC)] != VERSION:
            raise DecryptError(errno.EIO, f"{context}: unknown encryption format {sealed[4]}")
        nonce = sealed[head : head + NONCE]
        try:
            return self._aead.decrypt(nonce, sealed[head + NONCE :], context.encode())
        except InvalidTag:
            raise DecryptError(
                errno.EIO,
                f"{context} does not decrypt: the wrong key, or the object is damaged",
            ) from None


class EncryptedStorage:
    """Any storage, each object sealed with the repository's key (AAD: its key)."""

    def __init__(self, inner: Storage, cipher: Cipher) -> None:
        self.inner = inner
        self.cipher = cipher

    def describe(self) -> str:
        return self.inner.describe()

    def put_new(self, key: str, data: bytes) -> bool:
        return self.inner.put_new(key, self.cipher.seal(data, key))

    def get(self, key: str) -> bytes | None:
        sealed = self.inner.get(key)
        return None if sealed is None else self.cipher.open(sealed, key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        raise StorageError(errno.EINVAL, "ranged reads of a sealed object are not possible")

    def list(self, prefix: str) -> list[StoredObject]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> int:
        return self.inner.delete(key)
