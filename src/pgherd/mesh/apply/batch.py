"""A batch of replicated row changes of one kind to one table, and the binary arrays it is
sent as (one ``unnest(arrays)`` statement per batch: see :mod:`~pgherd.mesh.apply.target`).

A batch never holds the same key twice: a second change to a key closes the batch, so
that applying the batch as a set gives what applying its rows in order gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pgherd.mesh.apply import encode
from pgherd.mesh.apply.target import BinaryWire, TargetTable
from pgherd.model.conflict import Change

Values = tuple[bytes | None, ...]  # a row's (or a key's) values, in their binary form


@dataclass(frozen=True)
class RemoteTxn:
    """The remote transaction a change belongs to (for conflicts: when and where);
    ``origin``: the member it came from when the source passes it on (a star or a chain,
    model/mesh.py), else None (the source's own)."""

    final_lsn: int
    commit_time: int
    origin: str | None = None


@dataclass
class Batch:
    table: TargetTable
    change: Change
    rows: list[Values] = field(default_factory=list)
    keys: list[Values] = field(default_factory=list)
    key_set: set[Values] = field(default_factory=set)
    remote: list[RemoteTxn] = field(default_factory=list)

    def add(self, values: Values, key: Values, remote: RemoteTxn) -> int:
        """Add a row; the batch's size after it."""
        self.rows.append(values)
        self.keys.append(key)
        self.key_set.add(key)
        self.remote.append(remote)
        return len(self.rows)

    def takes(self, table: TargetTable, change: Change, key: Values) -> bool:
        """Whether a change can join this batch (same table and kind, a key not in it)."""
        return self.table is table and self.change is change and key not in self.key_set

    def seqs(self) -> BinaryWire:
        """The rows' positions 0..n-1, the first array of every batch statement."""
        return BinaryWire(encode.int4_array(range(len(self.rows))))

    def key_arrays(self) -> list[BinaryWire]:
        """One array per key column (for the existing-keys query and batch deletes)."""
        return _arrays(self.table, self.table.key, self.keys, key_only=True)

    def update_arrays(self) -> list[BinaryWire]:
        """One array per column a batch update takes (key and set columns)."""
        return _arrays(self.table, self.table.update_positions, self.rows)


def _arrays(
    table: TargetTable,
    positions: Sequence[int],
    rows: Sequence[Values],
    key_only: bool = False,
) -> list[BinaryWire]:
    """One binary array per column position; ``rows`` hold all columns, or only the key
    columns (in key order) when ``key_only``."""
    out = []
    for n, i in enumerate(positions):
        column = n if key_only else i
        out.append(BinaryWire(encode.binary_array(table.type_oids[i], [r[column] for r in rows])))
    return out
