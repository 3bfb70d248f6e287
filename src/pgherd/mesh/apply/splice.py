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

from pgherd.mesh.apply import pgoutput as po

Splicer = Callable[[bytes], bytes | None]

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


def row_splicer(type_oids: Sequence[int]) -> Splicer:
    """A function that turns an Insert message of a relation whose columns have these
    types into its COPY BINARY row (see the module docstring)."""
    if not type_oids:
        return po.copy_row
    conditions: list[str] = []  # in the order the bytes come: each may use the one before
    parts = ["p[6:8]"]
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
            parts.append(f"p[{at(offset + 1)}:{at(offset + 5 + size)}]")
            offset += 5 + size
            continue
        conditions.append(f"p[{at(offset)}] == 98")
        name = f"e{i}"
        end = f"{at(offset + 5)} + unpack(p, {at(offset + 1)})[0]"
        conditions.append(f"({name} := {end}) <= len(p)")
        parts.append(f"p[{at(offset + 1)}:{name}]")
        base, offset = name, 0
    conditions.append(f"{at(offset)} == len(p)")
    source = (
        "def splice(p):\n"
        "    try:\n"
        f"        if {' and '.join(conditions)}:\n"
        f"            return join(({', '.join(parts)},))\n"
        "    except IndexError:\n"
        "        pass\n"
        "    return fallback(p)\n"
    )
    namespace = {"unpack": _U32.unpack_from, "join": b"".join, "fallback": po.copy_row}
    exec(compile(source, f"<splice {list(type_oids)}>", "exec"), namespace)  # noqa: S102
    splice: Splicer = namespace["splice"]  # type: ignore[assignment]
    splice.__doc__ = source
    return splice
