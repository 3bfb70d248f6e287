"""Wire formats the applier sends to the target, built from pgoutput's binary values without
converting them to Python objects: COPY BINARY rows and one-dimensional binary arrays (for
``unnest($1::type[], ...)`` statements that update or delete a batch of rows at once).
Pure functions.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LEN = struct.Struct(">i")
_INT4 = struct.Struct(">ii")
_ARRAY_HEAD = struct.Struct(">iiIii")
INT4_OID = 23


def copy_row(values: Sequence[bytes | None]) -> bytes:
    """One COPY BINARY row from binary column values (None is SQL NULL)."""
    parts = [struct.pack(">h", len(values))]
    for value in values:
        parts.append(_NULL if value is None else _LEN.pack(len(value)) + value)
    return b"".join(parts)


def binary_array(element_oid: int, values: Sequence[bytes | None]) -> bytes:
    """A one-dimensional array in binary form, elements given in their binary form."""
    has_null = any(value is None for value in values)
    parts = [_ARRAY_HEAD.pack(1, int(has_null), element_oid, len(values), 1)]
    for value in values:
        parts.append(_NULL if value is None else _LEN.pack(len(value)) + value)
    return b"".join(parts)


def int4_array(values: Iterable[int]) -> bytes:
    items = list(values)
    head = _ARRAY_HEAD.pack(1, 0, INT4_OID, len(items), 1)
    return head + b"".join(_INT4.pack(4, value) for value in items)


def parse_binary_array(data: bytes) -> list[bytes | None]:
    """The elements of a one-dimensional binary array (the inverse of binary_array)."""
    ndim, _has_null, _oid = struct.unpack_from(">iiI", data, 0)
    if ndim == 0:
        return []
    if ndim != 1:
        raise ValueError(f"expected a one-dimensional array, got {ndim} dimensions")
    count = struct.unpack_from(">i", data, 12)[0]
    pos = 20
    items: list[bytes | None] = []
    for _ in range(count):
        size = _LEN.unpack_from(data, pos)[0]
        pos += 4
        if size < 0:
            items.append(None)
        else:
            items.append(data[pos : pos + size])
            pos += size
    return items


def parse_copy_row(row: bytes) -> list[bytes | None]:
    """The fields of one COPY BINARY row (the inverse of copy_row)."""
    count = struct.unpack_from(">h", row, 0)[0]
    pos = 2
    fields: list[bytes | None] = []
    for _ in range(count):
        size = _LEN.unpack_from(row, pos)[0]
        pos += 4
        if size < 0:
            fields.append(None)
        else:
            fields.append(row[pos : pos + size])
            pos += size
    return fields
