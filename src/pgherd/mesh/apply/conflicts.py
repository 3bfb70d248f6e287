"""One replicated row at a time, with conflict handling: the path for every row a batch
could not apply as a set (a possible conflict), and for rows batches cannot carry (values
in text form, an old key).

The local row is read and locked with who wrote it last (node and commit time, from
``pg_xact_commit_timestamp_origin``), the mesh's policy decides (model/conflict.py: pure),
the decision is carried out, and a conflict is recorded in ``pgherd.conflicts`` in the same
local transaction as the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.batch import RemoteTxn
from pgherd.mesh.apply.session import TargetSession
from pgherd.mesh.apply.target import TargetTable, wire
from pgherd.model.conflict import (
    Change,
    ConflictKind,
    Decision,
    Policy,
    Resolution,
    Version,
    decide,
    saw,
)
from pgherd.model.lsn import Lsn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyContext:
    mesh: str
    source: str
    target: str
    policy: Policy
    priority: tuple[str, ...]
    origin: str  # the replication origin's name on the target
    origin_nodes: dict[int, str]  # roident -> node, for the mesh's origins
    resolution_us: int
    origin_names: dict[str, str]  # origin name -> node, for the mesh's origins
    baseline_roident: int = 0  # the origin of this node's initial copy (0: none)
    forwarded: frozenset[str] = frozenset()  # members whose changes the source passes on

    @property
    def source_roident(self) -> int:
        """The source's origin id on the target (0 if it has none yet)."""
        return next((rid for rid, node in self.origin_nodes.items() if node == self.source), 0)


@dataclass(frozen=True)
class ConflictRecord:
    table: str
    kind: ConflictKind
    key: str  # JSON
    local_row: str | None
    local_node: str | None
    local_time: int | None
    remote_row: str | None
    remote_time: int
    remote_lsn: int
    resolution: Resolution
    reason: str


@dataclass
class Counters:
    """Totals of the worker's process, shown in its status file. What a group applied is
    added when the group commits: a group rolled back and replayed is counted once."""

    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    groups: int = 0
    skipped_loops: int = 0  # transactions dropped because they carry an origin
    forwarded: int = 0  # transactions another member made that the source passed on
    schema_changes: int = 0  # schema changes of the mesh run from the source's stream
    last_conflict: ConflictRecord | None = None
    # Conflicts by (kind, resolution): what /metrics exposes as pgherd_mesh_conflicts_total.
    by_kind: dict[tuple[ConflictKind, Resolution], int] = field(default_factory=dict)

    def add_conflicts(self, by_kind: dict[tuple[ConflictKind, Resolution], int]) -> None:
        for key, count in by_kind.items():
            self.by_kind[key] = self.by_kind.get(key, 0) + count
            self.conflicts += count

    def conflict_counts(self) -> list[dict[str, Any]]:
        """For the status file: one entry per kind and resolution met."""
        return [
            {"kind": str(kind), "resolution": str(resolution), "count": count}
            for (kind, resolution), count in sorted(self.by_kind.items())
        ]


class ConflictStop(Exception):
    """The ``error`` policy met a conflict: the worker stops and shows it."""

    def __init__(self, record: ConflictRecord) -> None:
        super().__init__(f"{record.kind} on {record.table} key {record.key}")
        self.record = record


class RowApplier:
    def __init__(
        self,
        session: TargetSession,
        ctx: ApplyContext,
        seen: dict[str, int],
        on_conflict: Callable[[ConflictRecord], None],
    ) -> None:
        """``seen``: per node, the commit time up to which the source had applied that
        node's transactions (kept up to date by the applier); ``on_conflict``: called with
        each conflict met (before it is resolved)."""
        self.session = session
        self.ctx = ctx
        self.seen = seen
        self._on_conflict = on_conflict

    def apply(
        self,
        table: TargetTable,
        change: Change,
        key_source: po.TupleData,
        new: po.TupleData | None,
        remote: RemoteTxn,
    ) -> None:
        conn = self.session.conn
        key = [wire(key_source.kinds[i], key_source.values[i]) for i in table.key]
        found = self.session.execute(table.local_row_sql(conn), key).fetchone()
        local = self._version(found)
        ctx = self.ctx
        # A change the source passes on is decided as its maker's (whose name and time
        # every member sees alike); a row this node got from the source's stream is one the
        # source had, whoever made it.
        decision = decide(
            ctx.policy,
            change,
            local,
            Version(remote.origin or ctx.source, remote.commit_time),
            ctx.priority,
            ctx.resolution_us,
            source_saw_local=saw(self.seen, local)
            or (local is not None and local.node == ctx.source),
        )
        record = None
        if decision.conflict is not None:
            record = self._record(table, decision, key_source, new, found, local, remote)
        if decision.resolution is Resolution.ERROR:
            assert record is not None
            raise ConflictStop(record)
        if decision.resolution in (Resolution.APPLY, Resolution.APPLY_REMOTE):
            self._write(table, change, key, new, exists=found is not None)
        if record is not None:
            write_conflict(self.session, ctx, record)

    def _write(
        self,
        table: TargetTable,
        change: Change,
        key: list[Any],
        new: po.TupleData | None,
        exists: bool,
    ) -> None:
        conn = self.session.conn
        if change is Change.DELETE:
            self.session.execute(table.delete_sql(conn), key)
            return
        assert new is not None
        present = tuple(i for i, kind in enumerate(new.kinds) if kind != po.UNCHANGED)
        values = [wire(new.kinds[i], new.values[i]) for i in present]
        if change is Change.INSERT and not exists:
            self.session.execute(table.insert_sql(conn), values)
        else:
            self.session.execute(table.update_sql(conn, present), [*values, *key])

    def _version(self, found: Sequence[Any] | None) -> Version | None:
        if found is None:
            return None
        _row, commit_time, roident, xmin = found
        if commit_time is None:
            if str(xmin) == self.session.xid():
                return Version(self.ctx.source, None)  # written by this very transaction
            return Version(None, None)
        when = po.to_micros(commit_time)
        if roident and int(roident) == self.ctx.baseline_roident:
            return Version(None, when, baseline=True)
        if not roident:
            return Version(self.ctx.target, when)
        return Version(self.ctx.origin_nodes.get(int(roident), f"origin {roident}"), when)

    def _record(
        self,
        table: TargetTable,
        decision: Decision,
        key_source: po.TupleData,
        new: po.TupleData | None,
        found: Sequence[Any] | None,
        local: Version | None,
        remote: RemoteTxn,
    ) -> ConflictRecord:
        assert decision.conflict is not None
        key_json = self._json(table, table.key, key_source)
        remote_json = None
        if new is not None:
            present = tuple(i for i, kind in enumerate(new.kinds) if kind != po.UNCHANGED)
            remote_json = self._json(table, present, new)
        record = ConflictRecord(
            table=table.qualified,
            kind=decision.conflict,
            key=key_json,
            local_row=str(found[0]) if found is not None else None,
            local_node=local.node if local is not None else None,
            local_time=local.commit_time if local is not None else None,
            remote_row=remote_json,
            remote_time=remote.commit_time,
            remote_lsn=remote.final_lsn,
            resolution=decision.resolution,
            reason=decision.reason,
        )
        self._on_conflict(record)
        log.info(
            "conflict %s on %s key %s: %s (%s)",
            record.kind,
            record.table,
            record.key,
            record.resolution,
            record.reason,
        )
        return record

    def _json(self, table: TargetTable, positions: tuple[int, ...], data: po.TupleData) -> str:
        values = [wire(data.kinds[i], data.values[i]) for i in positions]
        conn = self.session.conn
        row = self.session.execute(table.json_sql(conn, positions), values).fetchone()
        return str(row[0]) if row else "{}"


def write_conflict(
    session: TargetSession, ctx: ApplyContext, record: ConflictRecord, once: bool = False
) -> None:
    """Insert ``record`` into pgherd.conflicts (in the current transaction, if one is open).
    ``once``: not if the same conflict is already recorded (a stopped worker that retries)."""
    params = {
        "mesh": ctx.mesh,
        "source": ctx.source,
        "target": ctx.target,
        "table": record.table,
        "kind": str(record.kind),
        "key": record.key,
        "local_row": record.local_row,
        "local_node": record.local_node,
        "local_time": _time(record.local_time),
        "remote_row": record.remote_row,
        "remote_time": _time(record.remote_time),
        "remote_lsn": str(Lsn(record.remote_lsn)),
        "policy": str(ctx.policy),
        "resolution": str(record.resolution),
        "reason": record.reason,
    }
    session.execute(INSERT_CONFLICT if not once else INSERT_CONFLICT_ONCE, params)


def _time(micros: int | None) -> datetime | None:
    return po.timestamp(micros) if micros is not None else None


_CONFLICT_COLUMNS = """
    mesh, source_node, target_node, table_name, kind, key, local_row, local_node,
    local_commit_ts, remote_row, remote_commit_ts, remote_lsn, policy, resolution, reason
"""
_CONFLICT_VALUES = """
    %(mesh)s, %(source)s, %(target)s, %(table)s, %(kind)s, %(key)s::jsonb,
    %(local_row)s::jsonb, %(local_node)s, %(local_time)s, %(remote_row)s::jsonb,
    %(remote_time)s, %(remote_lsn)s::pg_lsn, %(policy)s, %(resolution)s, %(reason)s
"""
INSERT_CONFLICT = f"INSERT INTO pgherd.conflicts ({_CONFLICT_COLUMNS}) VALUES ({_CONFLICT_VALUES})"  # noqa: S608
INSERT_CONFLICT_ONCE = (
    f"INSERT INTO pgherd.conflicts ({_CONFLICT_COLUMNS}) SELECT {_CONFLICT_VALUES} "  # noqa: S608
    "WHERE NOT EXISTS (SELECT 1 FROM pgherd.conflicts WHERE mesh = %(mesh)s "
    "AND source_node = %(source)s AND table_name = %(table)s AND key = %(key)s::jsonb "
    "AND remote_lsn = %(remote_lsn)s::pg_lsn AND resolution = %(resolution)s)"
)
