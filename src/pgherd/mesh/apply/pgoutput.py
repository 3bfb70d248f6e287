"""The pgoutput logical replication protocol (PostgreSQL 13 to 15: protocol versions 1 to 3),
decoded from the bytes of one XLogData payload. Pure functions, no I/O.

Every message starts with a one-byte tag. Inside a streamed block (protocol 2+, between
Stream Start and Stream Stop) the data messages carry the subtransaction's xid after the
tag, so :func:`decode` must be told whether it is inside a stream.

Tuple data keeps each column as its kind and raw bytes: ``n`` null, ``u`` an unchanged
TOASTed value (not sent), ``t`` text, ``b`` binary (the type's send format, which is also
the format COPY BINARY and binary parameters take), so values pass to the target without
being converted to Python objects.

Timestamps are microseconds since 2000-01-01 UTC, as PostgreSQL sends them; LSNs are ints.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pgherd.mesh.apply.messages import (
    BINARY,
    KEY_FLAG,
    NULL,
    TEXT,
    UNCHANGED,
    Begin,
    BeginPrepare,
    Column,
    Commit,
    CommitPrepared,
    Decoded,
    Delete,
    Insert,
    Message,
    Origin,
    Prepare,
    Relation,
    RollbackPrepared,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TupleData,
    Type,
    Update,
)

# The messages are part of this module's interface (po.Begin, po.TupleData, ...).
__all__ = [
    "BINARY",
    "KEY_FLAG",
    "NULL",
    "PG_EPOCH",
    "TEXT",
    "UNCHANGED",
    "Begin",
    "BeginPrepare",
    "Column",
    "Commit",
    "CommitPrepared",
    "Decoded",
    "Delete",
    "Insert",
    "Message",
    "Origin",
    "Prepare",
    "ProtocolError",
    "Relation",
    "RollbackPrepared",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "Type",
    "Update",
    "binary_values",
    "copy_row",
    "decode",
    "insert_relid",
    "now_micros",
    "timestamp",
    "to_micros",
]

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_UNIX_MICROS = int(PG_EPOCH.timestamp()) * 1_000_000

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_BEGIN = struct.Struct(">QqI")  # final LSN, commit time, xid
_COMMIT = struct.Struct(">BQQq")  # flags, commit LSN, end LSN, commit time


class ProtocolError(ValueError):
    """The bytes are not a pgoutput message this decoder understands."""


def timestamp(micros: int) -> datetime:
    """A pgoutput timestamp as an aware datetime (UTC)."""
    return PG_EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    """The current time as a pgoutput timestamp (microseconds since 2000-01-01 UTC)."""
    return time.time_ns() // 1000 - _PG_EPOCH_UNIX_MICROS


def to_micros(moment: datetime) -> int:
    delta = moment - PG_EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---- reading ----------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 1) -> None:
        self.buf = buf
        self.pos = pos

    def _need(self, size: int) -> None:
        if self.pos + size > len(self.buf):
            raise ProtocolError(
                f"message {self.buf[:1]!r} ends early: needs {size} bytes at offset "
                f"{self.pos}, has {len(self.buf) - self.pos}"
            )

    def byte(self) -> int:
        self._need(1)
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def char(self) -> str:
        return chr(self.byte())

    def i16(self) -> int:
        self._need(2)
        (value,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(value)

    def i32(self) -> int:
        self._need(4)
        (value,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def u32(self) -> int:
        self._need(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        self._need(8)
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(value)

    def i64(self) -> int:
        self._need(8)
        (value,) = _I64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(value)

    def string(self) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError(f"message {self.buf[:1]!r}: string without its terminator")
        try:
            value = self.buf[self.pos : end].decode()
        except UnicodeDecodeError:
            raise ProtocolError(
                f"message {self.buf[:1]!r}: a name at offset {self.pos} is not UTF-8 "
                "(the database's encoding must be UTF8 for the mesh)"
            ) from None
        self.pos = end + 1
        return value

    def raw(self, size: int) -> bytes:
        if size < 0:
            raise ProtocolError(f"message {self.buf[:1]!r}: negative length {size}")
        self._need(size)
        value = self.buf[self.pos : self.pos + size]
        self.pos += size
        return bytes(value)

    def tuple_data(self) -> TupleData:
        """Tuple data, parsed inline (this runs once per replicated row): bounds are checked
        by the slices and one length comparison rather than per field."""
        buf, pos = self.buf, self.pos
        if pos + 2 > len(buf):
            self._need(2)
        count = _I16.unpack_from(buf, pos)[0]
        pos += 2
        kinds: list[str] = []
        values: list[bytes | None] = []
        unpack = _I32.unpack_from
        try:
            for _ in range(count):
                kind = buf[pos]
                if kind == 98 or kind == 116:  # b, t
                    size = unpack(buf, pos + 1)[0]
                    end = pos + 5 + size
                    if size < 0 or end > len(buf):
                        raise ProtocolError(
                            f"message {buf[:1]!r}: a column of {size} bytes at offset {pos} "
                            "does not fit"
                            if size >= 0
                            else f"message {buf[:1]!r}: negative length {size}"
                        )
                    values.append(buf[pos + 5 : end])
                    pos = end
                elif kind == 110 or kind == 117:  # n, u
                    values.append(None)
                    pos += 1
                else:
                    raise ProtocolError(f"unknown tuple column kind {chr(kind)!r}")
                kinds.append(chr(kind))
        except (IndexError, struct.error):
            raise ProtocolError(f"message {buf[:1]!r} ends early in its tuple data") from None
        self.pos = pos
        return TupleData("".join(kinds), tuple(values))

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise ProtocolError(
                f"message {self.buf[:1]!r}: {len(self.buf) - self.pos} bytes left over"
            )


def _xid(reader: _Reader, in_stream: bool) -> int | None:
    return reader.u32() if in_stream else None


def _begin(r: _Reader, _s: bool) -> Begin:
    return Begin(r.u64(), r.i64(), r.u32())


def _commit(r: _Reader, _s: bool) -> Commit:
    return Commit(r.byte(), r.u64(), r.u64(), r.i64())


def _origin(r: _Reader, _s: bool) -> Origin:
    return Origin(r.u64(), r.string())


def _relation(r: _Reader, s: bool) -> Relation:
    xid = _xid(r, s)
    relid, namespace, name, ident = r.u32(), r.string(), r.string(), r.char()
    columns = tuple(Column(r.byte(), r.string(), r.u32(), r.i32()) for _ in range(r.i16()))
    return Relation(relid, namespace, name, ident, columns, xid)


def _type(r: _Reader, s: bool) -> Type:
    xid = _xid(r, s)
    return Type(r.u32(), r.string(), r.string(), xid)


def _expect(r: _Reader, allowed: str) -> str:
    tag = r.char()
    if tag not in allowed:
        raise ProtocolError(f"expected one of {allowed!r} in a tuple marker, got {tag!r}")
    return tag


def _insert(r: _Reader, s: bool) -> Insert:
    xid = _xid(r, s)
    relid = r.u32()
    _expect(r, "N")
    return Insert(relid, r.tuple_data(), xid)


def _update(r: _Reader, s: bool) -> Update:
    xid = _xid(r, s)
    relid = r.u32()
    tag = _expect(r, "KON")
    old_kind: str | None = None
    old: TupleData | None = None
    if tag != "N":
        old_kind, old = tag, r.tuple_data()
        _expect(r, "N")
    return Update(relid, old_kind, old, r.tuple_data(), xid)


def _delete(r: _Reader, s: bool) -> Delete:
    xid = _xid(r, s)
    relid = r.u32()
    tag = _expect(r, "KO")
    return Delete(relid, tag, r.tuple_data(), xid)


def _truncate(r: _Reader, s: bool) -> Truncate:
    xid = _xid(r, s)
    count, options = r.i32(), r.byte()
    relids = tuple(r.u32() for _ in range(count))
    return Truncate(relids, bool(options & 1), bool(options & 2), xid)


def _message(r: _Reader, s: bool) -> Message:
    xid = _xid(r, s)
    flags, lsn, prefix = r.byte(), r.u64(), r.string()
    return Message(bool(flags & 1), lsn, prefix, r.raw(r.i32()), xid)


def _stream_start(r: _Reader, _s: bool) -> StreamStart:
    return StreamStart(r.u32(), r.byte() == 1)


def _stream_stop(_r: _Reader, _s: bool) -> StreamStop:
    return StreamStop()


def _stream_commit(r: _Reader, _s: bool) -> StreamCommit:
    return StreamCommit(r.u32(), r.byte(), r.u64(), r.u64(), r.i64())


def _stream_abort(r: _Reader, _s: bool) -> StreamAbort:
    return StreamAbort(r.u32(), r.u32())


def _begin_prepare(r: _Reader, _s: bool) -> BeginPrepare:
    return BeginPrepare(r.u64(), r.u64(), r.i64(), r.u32(), r.string())


def _prepare(r: _Reader, _s: bool) -> Prepare:
    return Prepare(r.byte(), r.u64(), r.u64(), r.i64(), r.u32(), r.string())


def _stream_prepare(r: _Reader, _s: bool) -> Prepare:
    return Prepare(r.byte(), r.u64(), r.u64(), r.i64(), r.u32(), r.string(), streamed=True)


def _commit_prepared(r: _Reader, _s: bool) -> CommitPrepared:
    return CommitPrepared(r.byte(), r.u64(), r.u64(), r.i64(), r.u32(), r.string())


def _rollback_prepared(r: _Reader, _s: bool) -> RollbackPrepared:
    return RollbackPrepared(r.byte(), r.u64(), r.u64(), r.i64(), r.i64(), r.u32(), r.string())


_DECODERS: dict[int, Callable[[_Reader, bool], Decoded]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _message,
    ord("S"): _stream_start,
    ord("E"): _stream_stop,
    ord("c"): _stream_commit,
    ord("A"): _stream_abort,
    ord("b"): _begin_prepare,
    ord("P"): _prepare,
    ord("p"): _stream_prepare,
    ord("K"): _commit_prepared,
    ord("r"): _rollback_prepared,
}


def decode(payload: bytes, in_stream: bool = False) -> Decoded:
    """One pgoutput message. ``in_stream``: between Stream Start and Stream Stop."""
    if not payload:
        raise ProtocolError("empty message")
    # Every transaction has a Begin and a Commit: one unpack each when the length is right
    # (a wrong length takes the general path, which says what is wrong).
    tag = payload[0]
    if tag == 66 and len(payload) == 21:  # B
        return Begin(*_BEGIN.unpack_from(payload, 1))
    if tag == 67 and len(payload) == 26:  # C
        return Commit(*_COMMIT.unpack_from(payload, 1))
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise ProtocolError(f"unknown pgoutput message type {payload[:1]!r}")
    reader = _Reader(payload)
    message = decoder(reader, in_stream)
    reader.done()
    return message


# ---- the fast path for inserts ------------------------------------------------------------


def insert_relid(payload: bytes) -> int:
    """The relation of an Insert message (outside a stream), without decoding the row."""
    return int(_U32.unpack_from(payload, 1)[0])


def copy_row(payload: bytes) -> bytes | None:
    """An Insert message's new row as one COPY BINARY row, or None when a column is not in
    binary form (text or unchanged) and the row must go the slow way.

    pgoutput's tuple data (Int16 count, then per column a kind byte and, for ``b``, Int32
    length and bytes) differs from COPY BINARY's row (Int16 count, then Int32 length and
    bytes, -1 for null) only by the kind bytes, so the row is spliced, not decoded: this
    runs once per replicated row and is what makes COPY apply faster than native apply.
    """
    if payload[5:6] != b"N":
        raise ProtocolError(f"Insert without a new tuple marker: {payload[5:6]!r}")
    pos = 8
    parts = [payload[6:8]]
    unpack = _I32.unpack_from
    try:  # a truncated message ends in IndexError or struct.error: said as what it is
        count = _I16.unpack_from(payload, 6)[0]
        for _ in range(count):
            kind = payload[pos]
            if kind == 98:  # b
                size = unpack(payload, pos + 1)[0]
                if size < 0:  # -1 would read as NULL in COPY BINARY
                    raise ProtocolError(f"Insert message: negative length {size}")
                end = pos + 5 + size
                parts.append(payload[pos + 1 : end])
                pos = end
            elif kind == 110:  # n
                parts.append(b"\xff\xff\xff\xff")
                pos += 1
            else:
                return None
    except (IndexError, struct.error):
        raise ProtocolError("Insert message ends early in its tuple data") from None
    if pos != len(payload):
        raise ProtocolError(f"Insert message: {len(payload) - pos} bytes left over")
    return b"".join(parts)


def binary_values(payload: bytes, pos: int) -> tuple[bytes | None, ...] | None:
    """The values of the tuple data at ``pos`` when every column is binary or null (None
    otherwise: text or unchanged values take the slow way). The fast path for the new row
    of an Update without an old key and for the key of a Delete."""
    values: list[bytes | None] = []
    unpack = _I32.unpack_from
    try:  # a truncated message ends in IndexError or struct.error: said as what it is
        count = _I16.unpack_from(payload, pos)[0]
        pos += 2
        for _ in range(count):
            kind = payload[pos]
            if kind == 98:  # b
                size = unpack(payload, pos + 1)[0]
                if size < 0:
                    raise ProtocolError(f"message {payload[:1]!r}: negative length {size}")
                end = pos + 5 + size
                values.append(payload[pos + 5 : end])
                pos = end
            elif kind == 110:  # n
                values.append(None)
                pos += 1
            else:
                return None
    except (IndexError, struct.error):
        raise ProtocolError(f"message {payload[:1]!r} ends early in its tuple data") from None
    if pos != len(payload):
        raise ProtocolError(f"message {payload[:1]!r}: {len(payload) - pos} bytes left over")
    return tuple(values)
