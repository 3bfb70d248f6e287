"""Applying the source's transactions to the target: the one owner of the apply session's
transaction state (see :mod:`~pgherd.mesh.apply.state` for the picture).

Each remote transaction is applied inside a local transaction that commits with
``pg_replication_origin_xact_setup(end LSN, commit time)``: the origin's position moves
with the data, in the same commit, so a crash can neither lose nor repeat a transaction.

Throughput comes from doing few round trips per row:

- *groups*: consecutive small remote transactions share one local transaction (the
  origin advances to the last one's end). A group closes at ``GROUP_ROWS`` rows, after
  ``GROUP_SECONDS``, when the stream goes idle (the worker says when), and never spans two
  commit-time slots (see model/conflict.py: that keeps last-update-wins exact);
- *runs of inserts* stream into one ``COPY … FROM STDIN (FORMAT binary)``, each row
  spliced from the pgoutput bytes; the COPY stays open across transactions of a group,
  so memory stays bounded however large a transaction is;
- *updates and deletes* go in batches, one ``UPDATE … FROM unnest(arrays)`` or
  ``DELETE … USING unnest(arrays)`` per ``BATCH_ROWS`` rows, which applies only rows
  last written by the same source (or by this transaction) and returns the others: each
  is a possible conflict and goes through :class:`~pgherd.mesh.apply.conflicts.RowApplier`.

An insert whose key exists makes COPY fail, and with it the local transaction
(:class:`~pgherd.mesh.apply.session.Replay`). The worker then starts a new session that
replays from the origin's position with ``careful_until`` set: inserts of transactions up
to there are checked for existing keys first, batch by batch, and the ones that exist are
resolved one by one.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from pgherd.mesh.apply import encode, progress
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.batch import Batch, RemoteTxn, Values
from pgherd.mesh.apply.conflicts import (
    ApplyContext,
    ConflictRecord,
    Counters,
    RowApplier,
    write_conflict,
)
from pgherd.mesh.apply.schema import SchemaChanges
from pgherd.mesh.apply.session import COPY_CHUNK, TargetSession
from pgherd.mesh.apply.splice import (
    KeyReader,
    Splicer,
    delete_reader,
    row_reader,
    row_splicer,
)
from pgherd.mesh.apply.state import Remote, Target
from pgherd.mesh.apply.target import TargetTable, TextWire, truncate_sql
from pgherd.model.conflict import Change, ConflictKind, Resolution
from pgherd.model.lsn import Lsn

GROUP_ROWS = 50_000
GROUP_SECONDS = 2.0
BATCH_ROWS = 10_000
CAREFUL_INSERT_ROWS = 5_000


class Applier:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        ctx: ApplyContext,
        counters: Counters,
        careful_until: int = 0,
    ) -> None:
        """``conn``: the target, with this session's origin set up; ``counters``: the
        worker's totals, which this session adds to; ``careful_until``: transactions
        committed up to this LSN are applied carefully (a replay after an insert met an
        existing key)."""
        self.ctx = ctx
        self.careful_until = careful_until
        self.counters = counters
        self.session = TargetSession(
            conn,
            self._resolve,
            lambda lsn, applied: progress.update_sql(conn, ctx.mesh, ctx.source, lsn, applied),
        )
        # Per node, the commit time up to which the source had applied its transactions, at
        # the point of the stream being applied (see model/conflict.py), and what of it is
        # stored in pgherd.mesh_seen (with the origin, in the same commits).
        self.seen: dict[str, int] = {}
        self._seen_stored: dict[str, int] = {}
        self.rows = RowApplier(self.session, ctx, self.seen, self._conflict_met)
        self._source_roident = ctx.source_roident
        # The initial copy's rows, if this node joined with one (else the source again).
        self._baseline_roident = ctx.baseline_roident or ctx.source_roident
        self._tables: dict[int, TargetTable] = {}
        self._splicers: dict[int, Splicer] = {}  # relid -> Insert to COPY row
        self._update_readers: dict[int, KeyReader] = {}  # relid -> Update's new row
        self._delete_readers: dict[int, KeyReader] = {}  # relid -> Delete's key
        self._batch: Batch | None = None  # being gathered, not sent yet
        self.schema = SchemaChanges(self.session, ctx, self.rows, counters)
        # The remote transaction being read.
        self.remote = Remote.BETWEEN
        self._txn = RemoteTxn(0, 0)
        self._careful = False
        # The open group, if any (self.session.in_transaction).
        self._group_rows = 0
        self._group_transactions = 0
        self._group_conflicts: dict[tuple[ConflictKind, Resolution], int] = {}
        self._group_started = 0.0
        self._group_slot: int | None = None
        self._group_end_lsn = 0
        self._group_time = 0
        # The origin's position after the last local commit, and the end (and commit time)
        # of the last transaction skipped outside a group since, that a commit of its own
        # may move the origin past (advance_past_skipped).
        self.committed_lsn = 0
        self._skipped_end = 0
        self._skipped_time = 0
        self.pending_since: int | None = None  # commit time of the oldest change not committed

    # ---- what the worker asks ------------------------------------------------------------

    @property
    def group_open(self) -> bool:
        return self.session.in_transaction

    @property
    def idle(self) -> bool:
        """Between remote transactions, with no group open."""
        return self.remote is Remote.BETWEEN and not self.session.in_transaction

    @property
    def copy_streaming(self) -> bool:
        """A COPY is streaming: no other statement can run on the connection now."""
        return self.session.state is Target.COPY

    @property
    def group_rows(self) -> int:
        return self._group_rows

    @property
    def group_time(self) -> int:
        """The commit time of the last transaction applied in the open group."""
        return self._group_time

    @property
    def remote_time(self) -> int:
        """The commit time of the transaction being read (or read last)."""
        return self._txn.commit_time

    @property
    def replay_until(self) -> int:
        """Where a careful replay must reach if the open group fails now: the end of the
        transaction being read (its changes are already in the group)."""
        return self._txn.final_lsn

    def start(self) -> int:
        """Read where the origin stands (or the stored position, when a node's initial copy
        set it further: mesh/apply/progress.py) and what the source had seen: the session's
        start."""
        self.load_seen()
        conn = self.session.conn
        progress.ensure(conn)
        row = self.session.execute("SELECT pg_replication_origin_session_progress(false)")
        origin = _lsn(row.fetchone())
        self.committed_lsn = max(origin, progress.stored(conn, self.ctx.mesh, self.ctx.source))
        # Recorded from the start, so that a node joining now reads where this one stands.
        progress.raise_to(conn, self.ctx.mesh, self.ctx.source, self.committed_lsn)
        return self.committed_lsn

    # ---- the stream's transaction messages ------------------------------------------------

    def begin(self, payload: bytes) -> None:
        if self.remote is not Remote.BETWEEN:
            raise po.ProtocolError(f"Begin while a transaction is {self.remote}")
        begin = po.decode(payload)
        assert isinstance(begin, po.Begin)
        self._txn = RemoteTxn(begin.final_lsn, begin.commit_time)
        if begin.final_lsn < self.committed_lsn:
            self.remote = Remote.SKIPPING  # applied before a restart
            return
        self.remote = Remote.BEGUN
        self._careful = begin.final_lsn <= self.careful_until

    def origin(self, payload: bytes) -> None:
        """The transaction was replicated into the source. It tells what the source had
        applied; it is applied here only when the source passes that member's changes on to
        this node (a star or a chain: ``ctx.forwarded``), else dropped (in a full mesh a
        change travels one hop; this node's own changes never come back)."""
        if self.remote not in (Remote.BEGUN, Remote.SKIPPING):
            raise po.ProtocolError(f"Origin while a transaction is {self.remote}")
        origin = po.decode(payload)
        assert isinstance(origin, po.Origin)
        node = self.ctx.origin_names.get(origin.name)
        if node is not None and self._txn.commit_time > self.seen.get(node, -1):
            self.seen[node] = self._txn.commit_time
        if node is not None and node in self.ctx.forwarded:
            self.counters.forwarded += 1
            if self.remote is Remote.BEGUN:
                txn = self._txn
                self._txn = RemoteTxn(txn.final_lsn, txn.commit_time, origin=node)
            return
        self.remote = Remote.SKIPPING
        self.counters.skipped_loops += 1

    def commit(self, payload: bytes) -> None:
        commit = po.decode(payload)
        assert isinstance(commit, po.Commit)
        if self.remote is Remote.APPLYING:
            self._group_end_lsn = commit.end_lsn
            self._group_time = commit.commit_time
            self._group_transactions += 1
        elif self.remote is Remote.BETWEEN:
            raise po.ProtocolError("Commit outside a transaction")
        elif self.session.in_transaction:
            # Not applied here (skipped, or it changed nothing): the group records its end
            # too, so that the origin moves past it.
            self._group_end_lsn = max(self._group_end_lsn, commit.end_lsn)
        elif commit.end_lsn > self._skipped_end:
            self._skipped_end, self._skipped_time = commit.end_lsn, commit.commit_time
        self.remote = Remote.BETWEEN
        if self.group_due() or self.schema.ran_in_group:
            # A schema change holds its table's lock until the group commits: at once.
            self.end_group()

    def _first_change(self) -> bool:
        """At every change until the transaction applies: False if it is skipped; else (its
        first change) close the group if the transaction falls in another commit-time slot,
        make sure a group is open, and apply."""
        if self.remote is Remote.SKIPPING:
            return False
        if self.remote is not Remote.BEGUN:
            raise po.ProtocolError("a change outside a transaction")
        self.remote = Remote.APPLYING
        slot = self._txn.commit_time // self.ctx.resolution_us
        session = self.session
        if session.in_transaction and slot != self._group_slot:
            self.end_group(then_begin=True)  # one round trip: commit and begin
        elif not session.in_transaction:
            session.begin()
        else:
            return True
        self._group_started = time.monotonic()
        self._group_slot = slot
        if self.pending_since is None:
            self.pending_since = self._txn.commit_time
        return True

    def relation(self, payload: bytes) -> None:
        """A table's description (sent once, before its first change, even in a skipped
        transaction)."""
        relation = po.decode(payload)
        assert isinstance(relation, po.Relation)
        self._drain()
        relid = relation.relid
        table = self._tables[relid] = self.schema.describe(relation)
        oids = [c.type_oid for c in relation.columns if c.name in table.columns]
        self._splicers[relid] = row_splicer(oids)
        self._update_readers[relid] = row_reader(oids)
        self._delete_readers[relid] = delete_reader(oids, table.key)

    # ---- groups -------------------------------------------------------------------------

    def group_due(self) -> bool:
        return self.session.in_transaction and (
            self._careful
            or self._group_rows >= GROUP_ROWS
            or time.monotonic() - self._group_started >= GROUP_SECONDS
        )

    def end_group(self, then_begin: bool = False) -> None:
        """Flush what is pending and commit, moving the origin to the group's end;
        ``then_begin``: open the next local transaction in the same round trip."""
        if not self.session.in_transaction:
            return
        self._drain()
        self._store_seen()
        applied = self._group_time if self._group_transactions else None
        self.session.commit(self._group_end_lsn, self._group_time, then_begin, applied)
        self.committed_lsn = self._group_end_lsn
        counters = self.counters
        counters.groups += 1
        counters.transactions += self._group_transactions
        counters.rows += self._group_rows
        counters.add_conflicts(self._group_conflicts)
        self.schema.ran_in_group = False
        self._group_rows = self._group_transactions = 0
        self._group_conflicts = {}
        self.pending_since = None

    def advance_past_skipped(self) -> None:
        """Idle, and only skipped transactions came since the last commit: a commit of its
        own moves the origin past them (so that the source can release their WAL), with
        what the source had seen."""
        if not self.idle or self._skipped_end <= self.committed_lsn:
            return
        self.session.begin()
        self._store_seen()
        self.session.commit(self._skipped_end, self._skipped_time)
        self.committed_lsn = self._skipped_end

    def durable_lsn(self) -> int:
        """What the target has durably applied: the origin's progress, with its WAL flushed
        that far (``flush``), as the source may be told."""
        row = self.session.execute("SELECT pg_replication_origin_session_progress(true)")
        return _lsn(row.fetchone())

    def stop_on_conflict(self, record: ConflictRecord) -> None:
        """The error policy stopped the session: roll the group back and record the
        conflict on its own (once, however often the worker retries)."""
        self.session.rollback()
        self._batch = None
        self.remote = Remote.BETWEEN
        write_conflict(self.session, self.ctx, record, once=True)
        self.counters.add_conflicts({(record.kind, record.resolution): 1})

    def abandon(self) -> None:
        """Drop the open group's state; the caller closes the connection (a failed COPY
        leaves it unusable), which rolls the local transaction back."""
        self.session.abandon()
        self._batch = None
        self.remote = Remote.BETWEEN

    def _conflict_met(self, record: ConflictRecord) -> None:
        key = (record.kind, record.resolution)
        self._group_conflicts[key] = self._group_conflicts.get(key, 0) + 1
        self.counters.last_conflict = record

    # ---- what the source had seen (model/conflict.py) -------------------------------------

    def load_seen(self) -> None:
        rows = self.session.execute(
            "SELECT node, seen_time FROM pgherd.mesh_seen WHERE mesh = %s AND source_node = %s",
            (self.ctx.mesh, self.ctx.source),
        ).fetchall()
        self.seen.clear()
        self.seen.update({str(node): int(when) for node, when in rows})
        self._seen_stored = dict(self.seen)

    def _store_seen(self) -> None:
        changed = [(n, t) for n, t in self.seen.items() if self._seen_stored.get(n) != t]
        for node, when in changed:
            self.session.execute(
                "INSERT INTO pgherd.mesh_seen VALUES (%s, %s, %s, %s) ON CONFLICT "
                "(mesh, source_node, node) DO UPDATE SET seen_time = excluded.seen_time",
                (self.ctx.mesh, self.ctx.source, node, when),
            )
            self._seen_stored[node] = when

    # ---- inserts ------------------------------------------------------------------------

    def insert(self, payload: bytes) -> None:
        """An Insert message: the hot path, kept short (a slice compare finds the table of
        the open COPY run, and the row is spliced into it)."""
        if self.remote is not Remote.APPLYING and not self._first_change():
            return
        self._group_rows += 1
        run = self.session.run
        if run is not None and payload[1:5] == run.relid:
            row = run.splice(payload)
            if row is not None:
                run.parts.append(row)
                run.size += len(row)
                if run.size >= COPY_CHUNK:
                    self.session.send_chunk()
                return
        relid = po.insert_relid(payload)
        table = self._table(relid)
        if self.schema.takes(relid):
            self._drain()
            self.schema.apply(Change.INSERT, relid, table, payload, self._txn)
            return
        splice = self._splicers[relid]
        row = splice(payload)
        if row is None:  # a value in text form: not for COPY BINARY
            message = po.decode(payload)
            assert isinstance(message, po.Insert)
            self._drain()
            self.rows.apply(table, Change.INSERT, message.new, message.new, self._txn)
            return
        if self._careful:
            self._add_to_batch(table, Change.INSERT, tuple(encode.parse_copy_row(row)))
            return
        if run is None or run.table is not table:
            self._flush_batch()
            run = self.session.start_copy(table, payload[1:5], splice)
        run.parts.append(row)
        run.size += len(row)
        if run.size >= COPY_CHUNK:
            self.session.send_chunk()

    # ---- updates and deletes ------------------------------------------------------------

    def _row_change(self, payload: bytes) -> tuple[TargetTable, int] | None:
        """What every Update and Delete starts with: its table and relid (None if the
        transaction is skipped), the row counted, and a COPY run of inserts ended (order is
        kept)."""
        if self.remote is not Remote.APPLYING and not self._first_change():
            return None
        relid = po.insert_relid(payload)
        table = self._table(relid)
        self._group_rows += 1
        if self.session.state is Target.COPY:
            self.session.end_copy()
        return table, relid

    def update(self, payload: bytes) -> None:
        """An Update message: batched when it carries no old key and only binary values."""
        change = self._row_change(payload)
        if change is None:
            return
        table, relid = change
        if self.schema.takes(relid):
            self._drain()
            self.schema.apply(Change.UPDATE, relid, table, payload, self._txn)
            return
        # "N": no old key, the new row follows (as an Insert's)
        values = self._update_readers[relid](payload) if payload[5] == 78 else None
        if values is not None:
            self._add_to_batch(table, Change.UPDATE, values)
            return
        message = po.decode(payload)
        assert isinstance(message, po.Update)
        self._flush_batch()
        self.rows.apply(table, Change.UPDATE, message.old or message.new, message.new, self._txn)

    def delete(self, payload: bytes) -> None:
        """A Delete message: batched when its key is all binary."""
        change = self._row_change(payload)
        if change is None:
            return
        table, relid = change
        if self.schema.takes(relid):
            self._drain()
            self.schema.apply(Change.DELETE, relid, table, payload, self._txn)
            return
        values = self._delete_readers[relid](payload)
        if values is not None:
            self._add_to_batch(table, Change.DELETE, values)
            return
        message = po.decode(payload)
        assert isinstance(message, po.Delete)
        self._flush_batch()
        self.rows.apply(table, Change.DELETE, message.old, None, self._txn)

    def truncate(self, payload: bytes) -> None:
        """A TRUNCATE of one or more tables, applied in one statement at its place in the
        stream (everything before it is applied first), with CASCADE and RESTART IDENTITY
        as the source gave them. Tables the mesh does not know here are left alone."""
        if self.remote is not Remote.APPLYING and not self._first_change():
            return
        message = po.decode(payload)
        assert isinstance(message, po.Truncate)
        tables = [self._tables[r] for r in message.relids if r in self._tables]
        self._drain()
        if tables:
            statement = truncate_sql(tables, message.cascade, message.restart_identity)
            self.session.execute(statement.as_string(self.session.conn))

    # ---- batches ------------------------------------------------------------------------

    def _add_to_batch(self, table: TargetTable, change: Change, values: Values) -> None:
        key = table.key_of(values)
        batch = self._batch
        if batch is not None and not batch.takes(table, change, key):
            self._flush_batch()
            batch = None
        if batch is None:
            batch = self._batch = Batch(table, change)
        size = batch.add(values, key, self._txn)
        if size >= (CAREFUL_INSERT_ROWS if change is Change.INSERT else BATCH_ROWS):
            self._flush_batch()

    def _flush_batch(self) -> None:
        """Send the batch gathered: careful inserts are checked for existing keys and the
        fresh ones copied; updates and deletes go in flight (see TargetSession.send_batch)."""
        batch, self._batch = self._batch, None
        if batch is None or not batch.rows:
            return
        table = batch.table
        conn = self.session.conn
        seqs = batch.seqs()
        if batch.change is Change.INSERT:
            found = self.session.execute(table.existing_sql(conn), [seqs, *batch.key_arrays()])
            existing = {int(r[0]) for r in found}
            fresh = [batch.rows[i] for i in range(len(batch.rows)) if i not in existing]
            if fresh:
                self.session.copy_rows(table, fresh)
            self._resolve(batch, sorted(existing))
            return
        if batch.change is Change.UPDATE:
            sql_text, arrays = table.update_batch_sql(conn), batch.update_arrays()
        else:
            sql_text, arrays = table.delete_batch_sql(conn), batch.key_arrays()
        xid = TextWire(self.session.xid().encode())
        writers = [self._source_roident, self._baseline_roident]
        self.session.send_batch(sql_text, [seqs, *arrays, xid, *writers, seqs], batch)

    def _drain(self) -> None:
        """Finish everything pending: the COPY run, the batch being gathered, the batch in
        flight (before a statement that must see all of them, such as COMMIT)."""
        self.session.free()
        self._flush_batch()
        self.session.free()

    def _resolve(self, batch: Batch, pending: list[int]) -> None:
        """The rows of a batch it did not apply as a set: one at a time, with conflicts."""
        for i in pending:
            values = batch.rows[i]
            data = po.TupleData(po.BINARY * len(values), values)
            new = data if batch.change is not Change.DELETE else None
            self.rows.apply(batch.table, batch.change, data, new, batch.remote[i])

    def _table(self, relid: int) -> TargetTable:
        """The table of a change (its Relation message came first)."""
        table = self._tables.get(relid)
        if table is None:
            raise po.ProtocolError(f"a change for relation {relid} before its Relation message")
        return table


def _lsn(row: Any) -> int:
    return Lsn.parse(str(row[0])).value if row and row[0] is not None else 0
