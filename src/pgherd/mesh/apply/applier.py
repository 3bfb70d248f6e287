"""Applying remote transactions to the target: groups, batches and conflicts.

Each remote transaction is applied inside a local transaction that commits with
``pg_replication_origin_xact_setup(end LSN, commit time)``: the origin's position moves
with the data, in the same commit, so a crash can neither lose nor repeat a transaction.

Throughput comes from doing few round trips per row:

- *groups*: consecutive small remote transactions share one local transaction (the
  origin advances to the last one's end). A group closes at ``GROUP_ROWS`` rows, after
  ``GROUP_SECONDS``, when the stream goes idle, and never spans two commit-time slots
  (see model/conflict.py: that keeps last-update-wins exact);
- *runs of inserts* stream into one ``COPY … FROM STDIN (FORMAT binary)``, each row
  spliced from the pgoutput bytes; the COPY stays open across transactions of a group,
  so memory stays bounded however large a transaction is;
- *updates and deletes* go in batches, one ``UPDATE … FROM unnest(arrays)`` or
  ``DELETE … USING unnest(arrays)`` per ``BATCH_ROWS`` rows, which applies only rows
  last written by the same source (or by this transaction) and returns them; every other
  row is a possible conflict and is looked at alone (:meth:`Applier._apply_one`).

An insert whose key exists makes COPY fail, and with it the local transaction. The
worker then rolls back and replays from the origin's position with ``careful`` set:
inserts are checked for existing keys first, batch by batch, and the ones that exist are
resolved one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg.copy import Copy

from pgherd.mesh.apply import encode
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.splice import Splicer, row_splicer
from pgherd.mesh.apply.target import BinaryWire, TargetTable, TextWire, describe, wire
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

GROUP_ROWS = 50_000
GROUP_SECONDS = 2.0
BATCH_ROWS = 10_000
COPY_CHUNK = 256 * 1024
CAREFUL_INSERT_ROWS = 5_000


class Replay(Exception):
    """The local transaction failed on a conflict the fast path cannot see coming (a key
    that exists, met by COPY): roll back and replay carefully from the origin."""


class ConflictStop(Exception):
    """The ``error`` policy met a conflict: the worker stops and shows it."""

    def __init__(self, record: ConflictRecord) -> None:
        super().__init__(f"{record.kind} on {record.table} key {record.key}")
        self.record = record


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
class Remote:
    """The remote transaction being applied."""

    final_lsn: int
    commit_time: int


@dataclass
class Counters:
    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    groups: int = 0
    last_conflict: ConflictRecord | None = None


@dataclass
class _Batch:
    table: TargetTable
    change: Change
    rows: list[tuple[bytes | None, ...]] = field(default_factory=list)
    keys: list[tuple[bytes | None, ...]] = field(default_factory=list)
    key_set: set[tuple[bytes | None, ...]] = field(default_factory=set)
    remote: list[Remote] = field(default_factory=list)


class Applier:
    def __init__(self, conn: psycopg.Connection[Any], ctx: ApplyContext) -> None:
        self.conn = conn
        self.ctx = ctx
        self.careful = False
        self.counters = Counters()
        self._tables: dict[int, TargetTable] = {}
        self._splicers: dict[int, Splicer] = {}  # relid -> Insert to COPY row
        self._remote: Remote | None = None
        self._started_remote = False
        self._in_txn = False
        self._own_xid: str | None = None
        self._group_rows = 0
        self._group_started = 0.0
        self._group_slot: int | None = None
        self._group_end_lsn = 0
        self._group_time = 0
        self._rows_counted = 0
        self.committed_lsn = 0  # the origin's position after the last local commit
        self._copy_cm: Any = None
        self._copy: Copy | None = None
        self._copy_table: TargetTable | None = None
        self._run_relid = b""  # the open COPY run's relation, as the 4 bytes pgoutput sends
        self._run_splice: Splicer = po.copy_row
        self._copy_parts: list[bytes] = []
        self._copy_size = 0
        self._batch: _Batch | None = None
        self._inflight: tuple[Any, Any, _Batch] | None = None  # a batch sent, not yet read
        # Per node, the commit time up to which the source had applied its transactions, at
        # the point of the stream being applied (see model/conflict.py), and what of it is
        # stored in pgherd.mesh_seen (with the origin, in the same commits).
        self.seen: dict[str, int] = {}
        self._seen_stored: dict[str, int] = {}
        self._source_roident = next(
            (rid for rid, node in ctx.origin_nodes.items() if node == ctx.source), 0
        )

    # ---- remote transactions ----------------------------------------------------------

    @property
    def group_open(self) -> bool:
        return self._in_txn

    @property
    def copy_open(self) -> bool:
        """A COPY is streaming: no other statement can run on the connection now."""
        return self._copy_cm is not None

    @property
    def group_rows(self) -> int:
        return self._group_rows

    @property
    def group_time(self) -> int:
        return self._group_time

    def begin(self, begin: po.Begin) -> None:
        self._remote = Remote(begin.final_lsn, begin.commit_time)
        self._started_remote = False

    def relation(self, relation: po.Relation) -> None:
        self._drain()
        self._tables[relation.relid] = describe(self.conn, relation)
        self._splicers[relation.relid] = row_splicer([c.type_oid for c in relation.columns])

    def _start_remote(self) -> Remote:
        """At a remote transaction's first change: close the group if the new transaction
        falls in another commit-time slot, then make sure a local transaction is open."""
        remote = self._remote
        if remote is None:
            raise po.ProtocolError("a change outside a transaction")
        if not self._started_remote:
            self._started_remote = True
            slot = remote.commit_time // self.ctx.resolution_us
            began = False
            if self._in_txn and slot != self._group_slot:
                self.end_group(then_begin=True)  # one round trip: commit and begin
                began = True
            if not self._in_txn:
                if not began:
                    self.conn.execute("BEGIN")
                self._in_txn = True
                self._own_xid = None
                self._group_rows = self._rows_counted = 0
                self._group_started = time.monotonic()
                self._group_slot = slot
        return remote

    def commit(self, commit: po.Commit) -> bool:
        """A remote transaction ended; its changes are in the open group. False when it
        changed nothing here (the caller then counts it as skipped)."""
        if not self._started_remote:
            self.skipped(commit.end_lsn)
            return False
        self._group_end_lsn = commit.end_lsn
        self._group_time = commit.commit_time
        self.counters.transactions += 1
        self.counters.rows += self._group_rows - self._rows_counted
        self._rows_counted = self._group_rows
        self._remote = None
        self._started_remote = False
        return True

    def skipped(self, end_lsn: int) -> None:
        """A remote transaction that was not applied (it came from elsewhere): the group, if
        open, records its end too, so that the origin moves past it."""
        if self._in_txn:
            self._group_end_lsn = max(self._group_end_lsn, end_lsn)
        self._remote = None
        self._started_remote = False

    def source_applied(self, node: str, commit_time: int) -> None:
        """The source applied a transaction of ``node`` committed at ``commit_time``."""
        if commit_time > self.seen.get(node, -1):
            self.seen[node] = commit_time

    def load_seen(self) -> None:
        rows = self.conn.execute(
            "SELECT node, seen_time FROM pgherd.mesh_seen WHERE mesh = %s AND source_node = %s",
            (self.ctx.mesh, self.ctx.source),
        ).fetchall()
        self.seen = {str(node): int(when) for node, when in rows}
        self._seen_stored = dict(self.seen)

    def _store_seen(self) -> None:
        changed = [(n, t) for n, t in self.seen.items() if self._seen_stored.get(n) != t]
        for node, when in changed:
            self.conn.execute(
                "INSERT INTO pgherd.mesh_seen VALUES (%s, %s, %s, %s) ON CONFLICT "
                "(mesh, source_node, node) DO UPDATE SET seen_time = excluded.seen_time",
                (self.ctx.mesh, self.ctx.source, node, when),
            )
            self._seen_stored[node] = when

    def advance_past_skipped(self, end_lsn: int, commit_time: int) -> None:
        """No group is open and only skipped transactions came since the last commit: a
        commit of its own moves the origin past them (so that the source can release
        their WAL), with what the source had seen."""
        assert not self._in_txn
        self.settle()
        self.conn.execute("BEGIN")
        self._store_seen()
        self._commit_origin(end_lsn, commit_time)
        self.committed_lsn = end_lsn

    def _commit_origin(self, end_lsn: int, commit_time: int, then_begin: bool = False) -> None:
        """COMMIT under the origin at the remote position and time (values are formatted
        from integers: the statement carries no input)."""
        lsn = str(Lsn(end_lsn))
        when = po.timestamp(commit_time).isoformat()
        begin = "; BEGIN" if then_begin else ""
        self.conn.execute(
            f"SELECT pg_replication_origin_xact_setup('{lsn}', '{when}'); COMMIT{begin}"
        )

    def durable_lsn(self) -> int:
        """What the target has durably applied: the origin's progress, with its WAL flushed
        that far (``flush``), as the source may be told."""
        self.settle()
        row = self.conn.execute("SELECT pg_replication_origin_session_progress(true)").fetchone()
        return Lsn.parse(str(row[0])).value if row and row[0] is not None else 0

    def group_due(self) -> bool:
        return self._in_txn and (
            self.careful
            or self._group_rows >= GROUP_ROWS
            or time.monotonic() - self._group_started >= GROUP_SECONDS
        )

    def end_group(self, then_begin: bool = False) -> None:
        """Flush what is pending and commit, moving the origin to the group's end;
        ``then_begin``: open the next local transaction in the same round trip."""
        if not self._in_txn:
            return
        self._drain()
        self._store_seen()
        self._commit_origin(self._group_end_lsn, self._group_time, then_begin)
        self._in_txn = False
        self.committed_lsn = self._group_end_lsn
        self.counters.groups += 1

    def forget(self) -> None:
        """Drop the open group's state; the caller closes the connection (a failed COPY
        leaves it unusable), which rolls the local transaction back."""
        self._copy_cm = self._copy = self._copy_table = None
        self._run_relid = b""
        self._copy_parts, self._copy_size = [], 0
        self._batch = None
        self._inflight = None
        self._remote = None
        self._started_remote = False
        self._in_txn = False

    # ---- inserts ------------------------------------------------------------------------

    def insert(self, payload: bytes) -> None:
        """An Insert message: the hot path, kept short (a slice compare finds the table of
        the open COPY run, and the row is spliced into it)."""
        remote = self._remote if self._started_remote else self._start_remote()
        assert remote is not None
        self._group_rows += 1
        if payload[1:5] == self._run_relid and not self.careful:
            row = self._run_splice(payload)
            if row is not None:
                self._copy_parts.append(row)
                self._copy_size += len(row)
                if self._copy_size >= COPY_CHUNK:
                    self._send_chunk()
                return
        relid = po.insert_relid(payload)
        table = self._table(relid)
        splice = self._splicers[relid]
        row = splice(payload)
        if row is None:  # a value in text form: not for COPY BINARY
            message = po.decode(payload)
            assert isinstance(message, po.Insert)
            self._end_run()
            self._flush_batch()
            self._apply_one(table, Change.INSERT, message.new, message.new, remote)
            return
        if self.careful:
            self._add_to_batch(table, Change.INSERT, row, None, remote)
            return
        if self._copy_table is not table:
            self._end_run()
            self._flush_batch()
            self._start_run(table)
            self._run_relid = payload[1:5]
            self._run_splice = splice
        self._copy_parts.append(row)
        self._copy_size += len(row)
        if self._copy_size >= COPY_CHUNK:
            self._send_chunk()

    def _start_run(self, table: TargetTable) -> None:
        self.settle()
        cursor = self.conn.cursor()
        self._copy_cm = cursor.copy(table.copy_sql(self.conn))
        self._copy = self._copy_cm.__enter__()
        self._copy_table = table
        self._copy_parts = [encode.COPY_HEADER]
        self._copy_size = 0

    def _send_chunk(self) -> None:
        assert self._copy is not None
        try:
            self._copy.write(b"".join(self._copy_parts))
        except psycopg.errors.UniqueViolation as exc:
            raise Replay(str(exc).splitlines()[0]) from None
        self._copy_parts, self._copy_size = [], 0

    def _end_run(self) -> None:
        self.settle()
        if self._copy_cm is None:
            return
        self._copy_parts.append(encode.COPY_TRAILER)
        cm = self._copy_cm
        try:
            self._send_chunk()
            cm.__exit__(None, None, None)
        except psycopg.errors.UniqueViolation as exc:
            raise Replay(str(exc).splitlines()[0]) from None
        finally:
            self._copy_cm = self._copy = self._copy_table = None
            self._run_relid = b""

    # ---- updates and deletes ------------------------------------------------------------

    def _row_change(self, payload: bytes) -> tuple[TargetTable, Remote]:
        """What every Update and Delete starts with: its remote transaction begun here, its
        table, the row counted, and a COPY run of inserts ended (order is kept)."""
        remote = self._remote if self._started_remote else self._start_remote()
        assert remote is not None
        table = self._table(po.insert_relid(payload))
        self._group_rows += 1
        if self._copy_cm is not None:
            self._end_run()
        return table, remote

    def update(self, payload: bytes) -> None:
        """An Update message: batched when it carries no old key and only binary values."""
        table, remote = self._row_change(payload)
        values = po.binary_values(payload, 6) if payload[5] == 78 else None  # "N": no old key
        if values is not None:
            self._add_to_batch(table, Change.UPDATE, None, values, remote)
            return
        message = po.decode(payload)
        assert isinstance(message, po.Update)
        self._flush_batch()
        self._apply_one(table, Change.UPDATE, message.old or message.new, message.new, remote)

    def delete(self, payload: bytes) -> None:
        table, remote = self._row_change(payload)
        values = po.binary_values(payload, 6)
        if values is not None:
            self._add_to_batch(table, Change.DELETE, None, values, remote)
            return
        message = po.decode(payload)
        assert isinstance(message, po.Delete)
        self._flush_batch()
        self._apply_one(table, Change.DELETE, message.old, None, remote)

    def truncate(self, message: po.Truncate) -> None:
        self._start_remote()
        self._drain()
        for relid in message.relids:
            table = self._tables.get(relid)
            if table is not None:
                self.conn.execute(table.truncate_sql(self.conn))

    def _add_to_batch(
        self,
        table: TargetTable,
        change: Change,
        copy_row: bytes | None,
        values: tuple[bytes | None, ...] | None,
        remote: Remote,
    ) -> None:
        if values is None:
            assert copy_row is not None
            values = tuple(encode.parse_copy_row(copy_row))
        key = table.key_of(values)
        batch = self._batch
        if batch is not None and (
            batch.table is not table or batch.change is not change or key in batch.key_set
        ):
            self._flush_batch()
            batch = None
        if batch is None:
            batch = self._batch = _Batch(table, change)
        batch.rows.append(values)
        batch.keys.append(key)
        batch.key_set.add(key)
        batch.remote.append(remote)
        limit = CAREFUL_INSERT_ROWS if change is Change.INSERT else BATCH_ROWS
        if len(batch.rows) >= limit:
            self._flush_batch()

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        self.settle()
        if batch is None or not batch.rows:
            return
        table = batch.table
        seqs = BinaryWire(encode.int4_array(range(len(batch.rows))))
        if batch.change is Change.INSERT:
            key_arrays = self._arrays(table, table.key, batch.keys, key_only=True)
            found = self.conn.execute(table.existing_sql(self.conn), [seqs, *key_arrays])
            existing = {int(r[0]) for r in found}
            fresh = [i for i in range(len(batch.rows)) if i not in existing]
            if fresh:
                self._copy_rows(table, [batch.rows[i] for i in fresh])
            pending = sorted(existing)
        else:
            if batch.change is Change.UPDATE:
                sql_text = table.update_batch_sql(self.conn)
                arrays = self._arrays(table, table.update_positions, batch.rows)
            else:
                sql_text = table.delete_batch_sql(self.conn)
                arrays = self._arrays(table, table.key, batch.keys, key_only=True)
            params = [seqs, *arrays, TextWire(self._xid().encode()), self._source_roident, seqs]
            # Sent in pipeline mode and left running while the next rows are read: the
            # server works on this batch while the stream is decoded (see settle()).
            pipeline = self.conn.pipeline()
            pipeline.__enter__()
            try:
                cursor = self.conn.execute(sql_text, params)
            except BaseException as exc:
                pipeline.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._inflight = (pipeline, cursor, batch)
            return
        self._resolve(batch, pending)

    def _drain(self) -> None:
        """Finish everything pending: the COPY run, the batch being built, the batch in
        flight (before a statement that must see all of them, such as COMMIT)."""
        self._end_run()
        self._flush_batch()
        self.settle()

    def settle(self) -> None:
        """Wait for the batch statement in flight, if any, and resolve the rows it did not
        change. Everything else that talks to the target calls this first, so statements
        still run in the stream's order."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        pipeline, cursor, batch = inflight
        try:
            row = cursor.fetchone()
        except BaseException as exc:
            pipeline.__exit__(type(exc), exc, exc.__traceback__)
            raise
        pipeline.__exit__(None, None, None)
        self._resolve(batch, sorted(int(i) for i in row[0]) if row is not None else [])

    def _resolve(self, batch: _Batch, pending: list[int]) -> None:
        table = batch.table
        for i in pending:
            values = batch.rows[i]
            data = po.TupleData(po.BINARY * len(values), values)
            new = data if batch.change is not Change.DELETE else None
            self._apply_one(table, batch.change, data, new, batch.remote[i])

    @staticmethod
    def _arrays(
        table: TargetTable,
        positions: Sequence[int],
        rows: Sequence[tuple[bytes | None, ...]],
        key_only: bool = False,
    ) -> list[BinaryWire]:
        """One binary array per column position; ``rows`` hold all columns, or only the
        key columns (in key order) when ``key_only``."""
        out = []
        for n, i in enumerate(positions):
            column = n if key_only else i
            out.append(
                BinaryWire(encode.binary_array(table.type_oids[i], [r[column] for r in rows]))
            )
        return out

    def _copy_rows(self, table: TargetTable, rows: Sequence[tuple[bytes | None, ...]]) -> None:
        data = [encode.COPY_HEADER, *(encode.copy_row(r) for r in rows), encode.COPY_TRAILER]
        with self.conn.cursor().copy(table.copy_sql(self.conn)) as copy:
            copy.write(b"".join(data))

    # ---- one row at a time, with conflict handling -----------------------------------------

    def _apply_one(
        self,
        table: TargetTable,
        change: Change,
        key_source: po.TupleData,
        new: po.TupleData | None,
        remote: Remote,
    ) -> None:
        self.settle()
        key = [wire(key_source.kinds[i], key_source.values[i]) for i in table.key]
        found = self.conn.execute(table.local_row_sql(self.conn), key).fetchone()
        local = self._version(found)
        remote_version = Version(self.ctx.source, remote.commit_time)
        decision = decide(
            self.ctx.policy,
            change,
            local,
            remote_version,
            self.ctx.priority,
            self.ctx.resolution_us,
            source_saw_local=saw(self.seen, local),
        )
        record = None
        if decision.conflict is not None:
            record = self._record(table, decision, key_source, new, found, local, remote)
        if decision.resolution is Resolution.ERROR:
            assert record is not None
            raise ConflictStop(record)
        if decision.resolution in (Resolution.APPLY, Resolution.APPLY_REMOTE):
            self._write_one(table, change, key, new, exists=found is not None)
        if record is not None:
            self.write_conflict(record)

    def _write_one(
        self,
        table: TargetTable,
        change: Change,
        key: list[Any],
        new: po.TupleData | None,
        exists: bool,
    ) -> None:
        if change is Change.DELETE:
            self.conn.execute(table.delete_sql(self.conn), key)
            return
        assert new is not None
        present = tuple(i for i, kind in enumerate(new.kinds) if kind != po.UNCHANGED)
        values = [wire(new.kinds[i], new.values[i]) for i in present]
        if change is Change.INSERT and not exists:
            self.conn.execute(table.insert_sql(self.conn), values)
        else:
            self.conn.execute(table.update_sql(self.conn, present), [*values, *key])

    def _version(self, found: Sequence[Any] | None) -> Version | None:
        if found is None:
            return None
        _row, commit_time, roident, xmin = found
        if commit_time is None:
            if str(xmin) == self._xid():
                return Version(self.ctx.source, None)  # written by this very transaction
            return Version(None, None)
        when = po.to_micros(commit_time)
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
        remote: Remote,
    ) -> ConflictRecord:
        assert decision.conflict is not None
        key_json = self._json(table, table.key, key_source)
        remote_json = None
        if new is not None:
            present = tuple(i for i, kind in enumerate(new.kinds) if kind != po.UNCHANGED)
            remote_json = self._json(table, present, new)
        self.counters.conflicts += 1
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
        self.counters.last_conflict = record
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
        row = self.conn.execute(table.json_sql(self.conn, positions), values).fetchone()
        return str(row[0]) if row else "{}"

    def write_conflict(self, record: ConflictRecord, once: bool = False) -> None:
        """Insert ``record`` into pgherd.conflicts (in the current transaction). ``once``:
        not if the same conflict is already recorded (a stopped worker that retries)."""
        ctx = self.ctx
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
        self.conn.execute(INSERT_CONFLICT if not once else INSERT_CONFLICT_ONCE, params)

    # ---- helpers ------------------------------------------------------------------------

    def _table(self, relid: int) -> TargetTable:
        """The table of a change (its Relation message came first)."""
        table = self._tables.get(relid)
        if table is None:
            raise po.ProtocolError(f"a change for relation {relid} before its Relation message")
        return table

    def _xid(self) -> str:
        if self._own_xid is None:
            self.settle()
            row = self.conn.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert row is not None
            self._own_xid = str(int(row[0]) & 0xFFFFFFFF)
        return self._own_xid


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
