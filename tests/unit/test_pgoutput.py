"""The pgoutput decoder, on messages captured from PostgreSQL 15 and on hand-built ones."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from pgherd.mesh.apply import encode
from pgherd.mesh.apply import pgoutput as po
from tests.unit import pgoutput_capture as cap

CAPTURED_BINARY = dict(cap.BINARY)
CAPTURED_TEXT = dict(cap.TEXT)
T_COMMIT = 0x00030420BB3A8497
NUMERIC_1_5 = bytes.fromhex("000200000000000100011388")

COLUMNS = (
    po.Column(1, "id", 23, -1),
    po.Column(0, "name", 25, -1),
    po.Column(0, "big", 25, -1),
    po.Column(0, "m", 16399, -1),
    po.Column(0, "n", 1700, -1),
)

EXPECTED_BINARY: list[tuple[str, po.Decoded]] = [
    ("begin", po.Begin(0x1533E60, T_COMMIT, 730)),
    ("type", po.Type(16399, "public", "mood")),
    ("relation", po.Relation(16403, "public", "cap", "d", COLUMNS)),
    (
        "insert 1",
        po.Insert(
            16403,
            po.TupleData("bbbbb", (b"\0\0\0\x01", b"one", b"x" * 3000, b"happy", NUMERIC_1_5)),
        ),
    ),
    (
        "insert 2",
        po.Insert(16403, po.TupleData("bnbbn", (b"\0\0\0\x02", None, b"small", b"sad", None))),
    ),
    ("commit", po.Commit(0, 0x1533E60, 0x1533E90, T_COMMIT)),
    (
        "update toast unchanged",
        po.Update(
            16403,
            None,
            None,
            po.TupleData("bbubb", (b"\0\0\0\x01", b"uno", None, b"happy", NUMERIC_1_5)),
        ),
    ),
    (
        "update key changed",
        po.Update(
            16403,
            "K",
            po.TupleData("bnnnn", (b"\0\0\0\x02", None, None, None, None)),
            po.TupleData("bnbbn", (b"\0\0\0\x03", None, b"small", b"sad", None)),
        ),
    ),
    (
        "delete",
        po.Delete(16403, "K", po.TupleData("bnnnn", (b"\0\0\0\x03", None, None, None, None))),
    ),
    ("truncate", po.Truncate((16403,), cascade=False, restart_identity=False)),
    ("origin", po.Origin(0xAB, "capo")),
    ("message", po.Message(True, 0x1534F28, "pfx", b"hello")),
]

EXPECTED_TEXT: list[tuple[str, po.Decoded]] = [
    (
        "insert 1",
        po.Insert(16403, po.TupleData("ttttt", (b"1", b"one", b"x" * 3000, b"happy", b"1.5"))),
    ),
    ("insert 2", po.Insert(16403, po.TupleData("tnttn", (b"2", None, b"small", b"sad", None)))),
    (
        "update key changed",
        po.Update(
            16403,
            "K",
            po.TupleData("tnnnn", (b"2", None, None, None, None)),
            po.TupleData("tnttn", (b"3", None, b"small", b"sad", None)),
        ),
    ),
]


@pytest.mark.parametrize(("name", "expected"), EXPECTED_BINARY, ids=[n for n, _ in EXPECTED_BINARY])
def test_captured_binary_messages_decode(name: str, expected: po.Decoded) -> None:
    assert po.decode(bytes.fromhex(CAPTURED_BINARY[name])) == expected


@pytest.mark.parametrize(("name", "expected"), EXPECTED_TEXT, ids=[n for n, _ in EXPECTED_TEXT])
def test_captured_text_messages_decode(name: str, expected: po.Decoded) -> None:
    assert po.decode(bytes.fromhex(CAPTURED_TEXT[name])) == expected


def test_the_key_flag_marks_the_primary_key_column() -> None:
    relation = po.decode(bytes.fromhex(cap.RELATION))
    assert isinstance(relation, po.Relation)
    assert [c.name for c in relation.columns if c.is_key] == ["id"]


def test_commit_timestamps_are_microseconds_since_2000() -> None:
    begin = po.decode(bytes.fromhex(CAPTURED_BINARY["origin begin"]))
    assert isinstance(begin, po.Begin)
    # The transaction ran under a replication origin whose xact_setup set this time.
    assert po.timestamp(begin.commit_time) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert po.to_micros(po.timestamp(begin.commit_time)) == begin.commit_time


@pytest.mark.parametrize("name", ["insert 1", "insert 2"])
def test_copy_row_splices_a_binary_insert_into_copy_binary(name: str) -> None:
    payload = bytes.fromhex(CAPTURED_BINARY[name])
    message = po.decode(payload)
    assert isinstance(message, po.Insert)
    assert po.insert_relid(payload) == 16403
    assert po.copy_row(payload) == encode.copy_row(message.new.values)


def test_copy_row_declines_text_values() -> None:
    assert po.copy_row(bytes.fromhex(CAPTURED_TEXT["insert 2"])) is None


# ---- hand-built messages: what a PG15 server sends with protocol 2 and 3 -----------------


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_bytes(*columns: bytes | None) -> bytes:
    out = struct.pack(">h", len(columns))
    for col in columns:
        out += b"n" if col is None else b"b" + struct.pack(">i", len(col)) + col
    return out


HAND_BUILT: list[tuple[str, bytes, bool, po.Decoded]] = [
    ("stream start", b"S" + struct.pack(">IB", 77, 1), False, po.StreamStart(77, True)),
    ("stream stop", b"E", False, po.StreamStop()),
    (
        "stream commit",
        b"c" + struct.pack(">IBQQq", 77, 0, 0x100, 0x128, 5),
        False,
        po.StreamCommit(77, 0, 0x100, 0x128, 5),
    ),
    ("stream abort", b"A" + struct.pack(">II", 77, 78), False, po.StreamAbort(77, 78)),
    (
        "insert inside a stream carries the xid",
        b"I" + struct.pack(">II", 77, 16403) + b"N" + tuple_bytes(b"\0\0\0\x05"),
        True,
        po.Insert(16403, po.TupleData("b", (b"\0\0\0\x05",)), xid=77),
    ),
    (
        "relation inside a stream",
        b"R" + struct.pack(">II", 77, 5) + s("s") + s("t") + b"f" + struct.pack(">h", 0),
        True,
        po.Relation(5, "s", "t", "f", (), xid=77),
    ),
    (
        "update with a full old row (REPLICA IDENTITY FULL)",
        b"U"
        + struct.pack(">I", 9)
        + b"O"
        + tuple_bytes(b"a", None)
        + b"N"
        + tuple_bytes(b"b", None),
        False,
        po.Update(9, "O", po.TupleData("bn", (b"a", None)), po.TupleData("bn", (b"b", None))),
    ),
    (
        "truncate cascade restart identity",
        b"T" + struct.pack(">iBII", 2, 3, 10, 11),
        False,
        po.Truncate((10, 11), cascade=True, restart_identity=True),
    ),
    (
        "begin prepare",
        b"b" + struct.pack(">QQqI", 0x10, 0x20, 7, 99) + s("gid1"),
        False,
        po.BeginPrepare(0x10, 0x20, 7, 99, "gid1"),
    ),
    (
        "prepare",
        b"P" + struct.pack(">BQQqI", 0, 0x10, 0x20, 7, 99) + s("gid1"),
        False,
        po.Prepare(0, 0x10, 0x20, 7, 99, "gid1"),
    ),
    (
        "stream prepare",
        b"p" + struct.pack(">BQQqI", 0, 0x10, 0x20, 7, 99) + s("gid1"),
        False,
        po.Prepare(0, 0x10, 0x20, 7, 99, "gid1", streamed=True),
    ),
    (
        "commit prepared",
        b"K" + struct.pack(">BQQqI", 0, 0x30, 0x40, 8, 99) + s("gid1"),
        False,
        po.CommitPrepared(0, 0x30, 0x40, 8, 99, "gid1"),
    ),
    (
        "rollback prepared",
        b"r" + struct.pack(">BQQqqI", 0, 0x20, 0x50, 7, 9, 99) + s("gid1"),
        False,
        po.RollbackPrepared(0, 0x20, 0x50, 7, 9, 99, "gid1"),
    ),
    (
        "a non-transactional message",
        b"M" + struct.pack(">BQ", 0, 0x60) + s("p") + struct.pack(">i", 0),
        False,
        po.Message(False, 0x60, "p", b""),
    ),
    (
        "an empty tuple and an empty text value",
        b"I" + struct.pack(">I", 3) + b"N" + struct.pack(">h", 1) + b"t" + struct.pack(">i", 0),
        False,
        po.Insert(3, po.TupleData("t", (b"",))),
    ),
]


@pytest.mark.parametrize(
    ("name", "payload", "in_stream", "expected"), HAND_BUILT, ids=[h[0] for h in HAND_BUILT]
)
def test_hand_built_messages_decode(
    name: str, payload: bytes, in_stream: bool, expected: po.Decoded
) -> None:
    assert po.decode(payload, in_stream) == expected


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty message"),
    ("unknown tag", b"Z123", "unknown pgoutput message type"),
    ("truncated begin", bytes.fromhex(CAPTURED_BINARY["begin"])[:-2], "ends early"),
    ("bytes left over", bytes.fromhex(CAPTURED_BINARY["commit"]) + b"\0", "left over"),
    ("string without terminator", b"O" + struct.pack(">Q", 1) + b"abc", "terminator"),
    (
        "unknown column kind",
        b"I" + struct.pack(">I", 3) + b"N" + struct.pack(">h", 1) + b"x",
        "column kind",
    ),
    ("insert without N", b"I" + struct.pack(">I", 3) + b"K", "tuple marker"),
    (
        "negative length",
        b"I" + struct.pack(">I", 3) + b"N" + struct.pack(">h", 1) + b"b" + struct.pack(">i", -5),
        "negative length",
    ),
]


@pytest.mark.parametrize(("name", "payload", "match"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_messages_are_refused_with_a_reason(
    name: str, payload: bytes, match: str
) -> None:
    with pytest.raises(po.ProtocolError, match=match):
        po.decode(payload)


def test_binary_arrays_round_trip() -> None:
    values = [b"\0\0\0\x01", None, b"\0\0\0\x03"]
    data = encode.binary_array(23, values)
    assert encode.parse_binary_array(data) == values
    assert encode.parse_binary_array(encode.int4_array([1, 2])) == [b"\0\0\0\x01", b"\0\0\0\x02"]


def test_copy_rows_round_trip() -> None:
    values: list[bytes | None] = [b"\0\0\0\x07", None, b""]
    assert encode.parse_copy_row(encode.copy_row(values)) == values


def test_now_micros_is_the_clock_in_pgoutput_time() -> None:
    before = po.to_micros(datetime.now(UTC))
    now = po.now_micros()
    after = po.to_micros(datetime.now(UTC))
    assert before <= now <= after
