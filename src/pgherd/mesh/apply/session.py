"""The apply session's connection to the target: the one owner of its state (a local
transaction, a COPY run streaming in it, a batch statement in flight).

Every statement goes through :meth:`TargetSession.execute`, which first ends a COPY run and
waits for the batch in flight: statements run in the stream's order whatever was pending.
What is open on the connection (the COPY, or pipeline mode for a batch) is held by one
:class:`~contextlib.ExitStack` and left with ``with`` at the point where it ends, so that
an error met there reaches the context it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors
from psycopg.copy import Copy

from pgherd.mesh.apply import encode
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.batch import Batch, Values
from pgherd.mesh.apply.splice import Splicer
from pgherd.mesh.apply.state import Target
from pgherd.mesh.apply.target import TargetTable
from pgherd.model.lsn import Lsn

COPY_CHUNK = 256 * 1024  # bytes of COPY rows gathered before they are written


class Replay(Exception):
    """The local transaction failed on a conflict the fast path cannot see coming (a key
    that exists, met by COPY): roll back and replay carefully from the origin."""


@dataclass
class CopyRun:
    """A run of inserts into one table, streaming through one COPY. The applier's hot path
    appends spliced rows to ``parts`` and calls :meth:`TargetSession.send_chunk` past
    ``COPY_CHUNK`` bytes."""

    table: TargetTable
    relid: bytes  # the relation, as the 4 bytes pgoutput sends
    splice: Splicer
    copy: Copy
    parts: list[bytes] = field(default_factory=lambda: [encode.COPY_HEADER])
    size: int = 0


class TargetSession:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        on_batch_done: Callable[[Batch, list[int]], None],
        record: Callable[[int, int | None], str] | None = None,
    ) -> None:
        """``on_batch_done(batch, pending)`` is called once a batch statement's result is
        read, with the rows it did not change (each a possible conflict); ``record(lsn,
        applied_time)``, the statement that records a commit's position in a table
        (mesh/apply/progress.py), sent with each COMMIT."""
        self.conn = conn
        self._on_batch_done = on_batch_done
        self._record = record
        self._state = Target.IDLE
        self._open = ExitStack()  # the COPY or the pipeline open on the connection
        self.run: CopyRun | None = None  # in state COPY
        self._inflight: tuple[psycopg.Cursor[Any], Batch] | None = None  # in state BATCH
        self._xid: str | None = None  # the local transaction's id, once asked for

    @property
    def state(self) -> Target:
        return self._state

    @property
    def in_transaction(self) -> bool:
        """A local transaction (a group) is open."""
        return self._state is not Target.IDLE

    # ---- the local transaction ----------------------------------------------------------

    def begin(self) -> None:
        if self._state is not Target.IDLE:
            raise AssertionError(f"BEGIN with the target {self._state}")
        self.conn.execute("BEGIN")
        self._opened()

    def _opened(self) -> None:
        self._state = Target.OPEN
        self._xid = None

    def commit(
        self,
        end_lsn: int,
        commit_time: int,
        then_begin: bool = False,
        applied_time: int | None = None,
    ) -> None:
        """COMMIT under the origin at the remote position and time, so that the origin moves
        in the same commit as the rows (and the position's row, with ``applied_time``, the
        commit time of the last transaction applied, if any); ``then_begin``: open the next
        local transaction in the same round trip. (The statement is formatted from integers
        and the progress statement, which quotes its names: it carries no input.)"""
        self.free()
        if self._state is not Target.OPEN:
            raise AssertionError(f"COMMIT with the target {self._state}")
        lsn = str(Lsn(end_lsn))
        when = po.timestamp(commit_time).isoformat()
        record = f"{self._record(end_lsn, applied_time)}; " if self._record else ""
        begin = "; BEGIN" if then_begin else ""
        self.conn.execute(
            f"{record}SELECT pg_replication_origin_xact_setup('{lsn}', '{when}'); COMMIT{begin}"
        )
        if then_begin:
            self._opened()
        else:
            self._state = Target.IDLE

    def rollback(self) -> None:
        """Roll the local transaction back (the connection must be usable: nothing was
        streaming when the error came)."""
        self.free()
        self.conn.execute("ROLLBACK")
        self._state = Target.IDLE

    def abandon(self) -> None:
        """Forget everything open after an error that leaves the connection unusable (a
        failed COPY); the caller closes it, which rolls the local transaction back."""
        self._open.pop_all()
        self.run = None
        self._inflight = None
        self._state = Target.IDLE

    def xid(self) -> str:
        """The local transaction's id as ``xmin`` shows it (32 bits)."""
        if self._xid is None:
            row = self.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert row is not None
            self._xid = str(int(row[0]) & 0xFFFFFFFF)
        return self._xid

    # ---- statements ---------------------------------------------------------------------

    def execute(self, query: str | bytes, params: Any = None) -> psycopg.Cursor[Any]:
        """Run a statement once everything sent before it is done."""
        self.free()
        return self.conn.execute(query, params)

    def free(self) -> None:
        """End the COPY run, or wait for the batch in flight: the connection can then take a
        statement."""
        if self._state is Target.COPY:
            self.end_copy()
        elif self._state is Target.BATCH:
            self.settle()

    # ---- a run of inserts through COPY --------------------------------------------------

    def start_copy(self, table: TargetTable, relid: bytes, splice: Splicer) -> CopyRun:
        self.free()
        if self._state is not Target.OPEN:
            raise AssertionError(f"COPY with the target {self._state}")
        copy = self._open.enter_context(self.conn.cursor().copy(table.copy_sql(self.conn)))
        self.run = CopyRun(table, relid, splice, copy)
        self._state = Target.COPY
        return self.run

    def send_chunk(self) -> None:
        """Write the rows gathered in the run."""
        run = self.run
        assert run is not None
        try:
            run.copy.write(b"".join(run.parts))
        except psycopg.errors.UniqueViolation as exc:
            raise Replay(str(exc).splitlines()[0]) from None
        run.parts, run.size = [], 0

    def end_copy(self) -> None:
        """Write the rest of the run and end its COPY (where the server reports an existing
        key, if it had not yet)."""
        run = self.run
        if run is None:
            return
        run.parts.append(encode.COPY_TRAILER)
        try:
            with self._open:  # leaves the COPY, with the error if writing failed
                self.send_chunk()
        except psycopg.errors.UniqueViolation as exc:
            raise Replay(str(exc).splitlines()[0]) from None
        finally:
            self.run = None
        self._state = Target.OPEN

    def copy_rows(self, table: TargetTable, rows: list[Values]) -> None:
        """Insert ``rows`` (all columns, binary) with one COPY."""
        data = [encode.COPY_HEADER, *(encode.copy_row(r) for r in rows), encode.COPY_TRAILER]
        self.free()
        with self.conn.cursor().copy(table.copy_sql(self.conn)) as copy:
            copy.write(b"".join(data))

    # ---- a batch statement in flight ------------------------------------------------------

    def send_batch(self, query: str, params: list[Any], batch: Batch) -> None:
        """Send a batch statement in pipeline mode and return at once: the server works on
        it while the stream is decoded. Its result is read by :meth:`settle`."""
        self.free()
        if self._state is not Target.OPEN:
            raise AssertionError(f"a batch with the target {self._state}")
        with self._open.pop_all() as stack:  # left at once if the statement fails to go
            stack.enter_context(self.conn.pipeline())
            cursor = self.conn.execute(query, params)
            self._open = stack.pop_all()
        self._inflight = (cursor, batch)
        self._state = Target.BATCH

    def settle(self) -> None:
        """Wait for the batch statement in flight, leave pipeline mode, and hand the rows it
        did not change to ``on_batch_done``."""
        if self._state is not Target.BATCH:
            return
        assert self._inflight is not None
        cursor, batch = self._inflight
        self._inflight = None
        with self._open:  # leaves pipeline mode, with the error if the batch failed
            row = cursor.fetchone()
        self._state = Target.OPEN
        self._on_batch_done(batch, sorted(int(i) for i in row[0]) if row is not None else [])
