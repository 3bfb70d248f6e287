"""Insert messages spliced into COPY BINARY rows by code made for each relation's layout.

Every replicated insert passes through here, so its cost per row bounds what the worker
can apply (docs/benchmarks.md, "Apply"). :func:`pgoutput.copy_row` walks any row column by
column; in CPython that loop, with its branches and an unpack per column, costs about
1.5 µs for three columns. A relation's layout is known from its Relation message, and the
types whose send format has a fixed size (an ``int8`` is always 8 bytes) sit at fixed
offsets from the row's start or from the end of the last variable-size column before
them. :func:`row_splicer` writes a straight-line function for that layout, as
``dataclasses`` and ``namedtuple`` write theirs: about 0.8 µs for the same row.

Only integers computed here go into the generated source. Every byte the function relies
on is checked: a fixed-size column's kind byte and length together (one compare), a
variable column's kind byte, and that the last column ends where the message does. A row
that does not match (a null, a value in text form, anything unexpected) goes to
:func:`pgoutput.copy_row`, which handles every row and raises on malformed ones.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from pgherd.mesh.apply import pgoutput as po

Splicer = Callable[[bytes], bytes | None]
KeyReader = Callable[[bytes], tuple[bytes | None, ...] | None]

# Types whose binary send format always has the same size (pg_type.typlen), by OID:
# bool, int8, int2, int4, oid, float4, float8, date, time, timestamp, timestamptz,
# interval, uuid, pg_lsn. Checked against a server in tests/e2e/test_mesh.py.
FIXED_SEND_SIZE: dict[int, int] = {
    16: 1,
    20: 8,
    21: 2,
    23: 4,
    26: 4,
    700: 4,
    701: 8,
    1082: 4,
    1083: 8,
    1114: 8,
    1184: 8,
    1186: 16,
    2950: 16,
    3220: 8,
}

_HEADER = 8  # tag, relid, "N", column count: the tuple data's columns start here
_U32 = struct.Struct(">I")


def _layout(type_oids: Sequence[int]) -> tuple[list[str], list[tuple[str, str]]]:
    """For a tuple of these types, every column binary: the conditions that check its bytes
    (in the order the bytes come: each may use the one before) and, per column, where its
    length word starts and where its value ends (expressions on ``p``)."""
    conditions: list[str] = []
    fields: list[tuple[str, str]] = []
    base = ""  # the variable that offsets are relative to ("" while they are constant)

    def at(offset: int) -> str:
        if not base:
            return str(offset)
        return f"{base} + {offset}" if offset else base

    offset = _HEADER
    for i, oid in enumerate(type_oids):
        size = FIXED_SEND_SIZE.get(oid)
        if size is not None:
            expected = b"b" + size.to_bytes(4, "big")
            conditions.append(f"p[{at(offset)}:{at(offset + 5)}] == {expected!r}")
            fields.append((at(offset + 1), at(offset + 5 + size)))
            offset += 5 + size
            continue
        conditions.append(f"p[{at(offset)}] == 98")
        name = f"e{i}"
        end = f"{at(offset + 5)} + unpack(p, {at(offset + 1)})[0]"
        conditions.append(f"({name} := {end}) <= len(p)")
        fields.append((at(offset + 1), name))
        base, offset = name, 0
    conditions.append(f"{at(offset)} == len(p)")
    return conditions, fields


def _plus(expression: str, n: int) -> str:
    """``expression + n``, folded when the expression is a constant."""
    return str(int(expression) + n) if expression.isdigit() else f"{expression} + {n}"


def _make(name: str, source: str, label: str, fallback: object) -> Any:
    """Compile generated ``source`` (integers and byte literals only) defining ``name``."""
    namespace = {"unpack": _U32.unpack_from, "join": b"".join, "fallback": fallback}
    exec(compile(source, label, "exec"), namespace)  # noqa: S102
    made = namespace[name]
    made.__doc__ = source
    return made


def row_splicer(type_oids: Sequence[int]) -> Splicer:
    """A function that turns an Insert message of a relation whose columns have these
    types into its COPY BINARY row (see the module docstring)."""
    if not type_oids:
        return po.copy_row
    conditions, fields = _layout(type_oids)
    parts = ["p[6:8]", *(f"p[{start}:{end}]" for start, end in fields)]
    source = (
        "def splice(p):\n"
        "    try:\n"
        f"        if {' and '.join(conditions)}:\n"
        f"            return join(({', '.join(parts)},))\n"
        "    except IndexError:\n"
        "        pass\n"
        "    return fallback(p)\n"
    )
    splice: Splicer = _make("splice", source, f"<splice {list(type_oids)}>", po.copy_row)
    return splice


def row_reader(type_oids: Sequence[int]) -> KeyReader:
    """A function that reads the new row of an Update message without an old key (the same
    layout as an Insert's) as :func:`pgoutput.binary_values` does, in straight-line code
    made for these types; any other message goes to ``binary_values``."""

    def fallback(p: bytes) -> tuple[bytes | None, ...] | None:
        return po.binary_values(p, 6)

    if not type_oids:
        return fallback
    conditions, fields = _layout(type_oids)
    count = f"p[6:8] == {len(type_oids).to_bytes(2, 'big')!r}"
    values = [f"p[{_plus(start, 4)}:{end}]" for start, end in fields]
    source = (
        "def read(p):\n"
        "    try:\n"
        f"        if {' and '.join([count, *conditions])}:\n"
        f"            return ({', '.join(values)},)\n"
        "    except IndexError:\n"
        "        pass\n"
        "    return fallback(p)\n"
    )
    read: KeyReader = _make("read", source, f"<update {list(type_oids)}>", fallback)
    return read


def delete_reader(type_oids: Sequence[int], key: Sequence[int]) -> KeyReader:
    """A function that reads a Delete message's values (the key's, the other columns null,
    as pgoutput sends them for ``REPLICA IDENTITY DEFAULT``) as
    :func:`pgoutput.binary_values` does, in straight-line code when every key column has a
    fixed size: the whole message then has one length and one shape, checked byte for byte
    but the key's values. Any other message goes to ``binary_values``."""

    def fallback(p: bytes) -> tuple[bytes | None, ...] | None:
        return po.binary_values(p, 6)

    sizes = [FIXED_SEND_SIZE.get(type_oids[i]) for i in key]
    if not key or any(size is None for size in sizes):
        return fallback
    conditions = [f"p[6:8] == {len(type_oids).to_bytes(2, 'big')!r}"]
    values: list[str] = []
    offset = _HEADER
    for i, oid in enumerate(type_oids):
        if i in key:
            size = FIXED_SEND_SIZE[oid]
            expected = b"b" + size.to_bytes(4, "big")
            conditions.append(f"p[{offset}:{offset + 5}] == {expected!r}")
            values.append(f"p[{offset + 5}:{offset + 5 + size}]")
            offset += 5 + size
        else:
            conditions.append(f"p[{offset}] == 110")
            values.append("None")
            offset += 1
    conditions.insert(0, f"len(p) == {offset}")
    source = (
        "def read(p):\n"
        f"    if {' and '.join(conditions)}:\n"
        f"        return ({', '.join(values)},)\n"
        "    return fallback(p)\n"
    )
    read: KeyReader = _make("read", source, f"<delete {list(type_oids)} key {list(key)}>", fallback)
    return read
