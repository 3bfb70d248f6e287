"""Splicers made per relation layout agree with pgoutput.copy_row on every row, whatever
the layout, and fall back to it on rows they were not made for."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

import pytest

from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.splice import FIXED_SEND_SIZE, delete_reader, row_reader, row_splicer
from tests.unit import pgoutput_capture as cap

INT4, INT8, TEXT, BOOL, UUID, NUMERIC, JSONB = 23, 20, 25, 16, 2950, 1700, 3802


def insert(columns: Sequence[tuple[str, bytes | None]], relid: int = 16384) -> bytes:
    """An Insert message: each column a kind ("b", "t", "n", "u") and its bytes."""
    out = b"I" + struct.pack(">I", relid) + b"N" + struct.pack(">h", len(columns))
    for kind, value in columns:
        out += kind.encode()
        if value is not None:
            out += struct.pack(">i", len(value)) + value
    return out


def value_of(oid: int, rng: random.Random) -> bytes:
    size = FIXED_SEND_SIZE.get(oid)
    if size is not None:
        return rng.randbytes(size)
    return rng.randbytes(rng.choice([0, 1, 5, 300]))


LAYOUTS = [
    pytest.param([INT8, TEXT, INT4], id="int8 text int4 (the benchmark's)"),
    pytest.param([INT4], id="one fixed"),
    pytest.param([TEXT], id="one variable"),
    pytest.param([TEXT, TEXT, TEXT], id="all variable"),
    pytest.param([INT8, INT4, BOOL, UUID], id="all fixed"),
    pytest.param([TEXT, INT4, INT4, NUMERIC, BOOL, JSONB], id="mixed"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_splicer_agrees_with_copy_row_on_binary_rows(layout: list[int]) -> None:
    splice = row_splicer(layout)
    rng = random.Random(15)
    for _ in range(200):
        payload = insert([("b", value_of(oid, rng)) for oid in layout])
        assert splice(payload) == po.copy_row(payload)
        assert splice(payload) is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rows_it_was_not_made_for_go_to_copy_row(layout: list[int]) -> None:
    splice = row_splicer(layout)
    rng = random.Random(16)
    for column in range(len(layout)):
        values: list[tuple[str, bytes | None]] = [("b", value_of(oid, rng)) for oid in layout]
        values[column] = ("n", None)  # a null: copy_row writes -1
        payload = insert(values)
        assert splice(payload) == po.copy_row(payload) is not None
        values[column] = ("t", b"42")  # text form: not for COPY BINARY
        assert splice(insert(values)) is None


def test_a_fixed_size_column_with_another_length_is_not_trusted() -> None:
    """An int4 column that arrives with 8 bytes (the table changed on the source before
    its new Relation message): the splicer must not cut the row at 4."""
    splice = row_splicer([INT4, TEXT])
    payload = insert([("b", b"\0" * 8), ("b", b"abc")])
    assert splice(payload) == po.copy_row(payload)
    assert splice(payload) == struct.pack(">hi", 2, 8) + b"\0" * 8 + struct.pack(">i", 3) + b"abc"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(insert([("b", b"\0\0\0\0\0\0\0\1"), ("b", b"x")])[:-1], id="cut short"),
        pytest.param(insert([("b", b"\0\0\0\0\0\0\0\1"), ("b", b"x")]) + b"!", id="bytes left"),
    ],
)
def test_malformed_messages_raise_as_copy_row_does(payload: bytes) -> None:
    with pytest.raises((po.ProtocolError, IndexError, struct.error)):
        po.copy_row(payload)
    with pytest.raises((po.ProtocolError, IndexError, struct.error)):
        row_splicer([INT8, TEXT])(payload)


def test_a_captured_insert_from_postgresql() -> None:
    payload = bytes.fromhex(dict(cap.BINARY)["insert 1"])
    relation = po.decode(bytes.fromhex(dict(cap.BINARY)["relation"]))
    assert isinstance(relation, po.Relation)
    splice = row_splicer([c.type_oid for c in relation.columns])
    assert splice(payload) == po.copy_row(payload) is not None


def test_the_generated_code_is_there_to_read() -> None:
    splice = row_splicer([INT8, TEXT, INT4])
    assert splice.__doc__ is not None
    assert "def splice(p):" in splice.__doc__


def delete(columns: Sequence[tuple[str, bytes | None]], relid: int = 16384) -> bytes:
    """A Delete message with its old key: each column a kind and its bytes."""
    return b"D" + insert(columns, relid)[1:5] + b"K" + insert(columns, relid)[6:]


@pytest.mark.parametrize(
    ("oids", "key"),
    [
        pytest.param([INT8, TEXT, INT4], (0,), id="int8 key, the benchmark's"),
        pytest.param([TEXT, UUID, INT4, BOOL], (1, 2), id="uuid and int4 key, not first"),
        pytest.param([INT4], (0,), id="the key alone"),
        pytest.param([TEXT, INT8], (0,), id="a text key: the general loop"),
    ],
)
def test_delete_readers_agree_with_binary_values(oids: list[int], key: tuple[int, ...]) -> None:
    read = delete_reader(oids, key)
    rng = random.Random(7)
    for _ in range(200):
        columns = [
            ("b", value_of(oid, rng)) if i in key else ("n", None) for i, oid in enumerate(oids)
        ]
        message = delete(columns)
        assert read(message) == po.binary_values(message, 6)
        assert read(message) == tuple(v for _k, v in columns)
    # Messages the reader was not made for go to binary_values, which reads or refuses them.
    wrong_size = [("b", b"\x00" * 3) if i in key else ("n", None) for i in range(len(oids))]
    assert read(delete(wrong_size)) == po.binary_values(delete(wrong_size), 6)
    in_text = [("t", b"1") if i in key else ("n", None) for i in range(len(oids))]
    assert read(delete(in_text)) is None
    full_row = [("b", value_of(oid, rng)) for oid in oids]
    assert read(delete(full_row)) == po.binary_values(delete(full_row), 6)
    with pytest.raises(po.ProtocolError):
        read(delete(full_row) + b"\x00")


@pytest.mark.parametrize("oids", LAYOUTS)
def test_update_readers_agree_with_binary_values(oids: list[int]) -> None:
    read = row_reader(oids)
    rng = random.Random(11)
    for _ in range(200):
        columns = [("n", None) if rng.random() < 0.1 else ("b", value_of(oid, rng)) for oid in oids]
        message = b"U" + insert(columns)[1:]
        assert read(message) == po.binary_values(message, 6)
    with pytest.raises(po.ProtocolError):
        read(b"U" + insert([("b", value_of(oid, rng)) for oid in oids])[1:] + b"\x00")
