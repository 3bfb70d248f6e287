"""A joining node's initial copy (model/mesh_copy.py says who copies from whom): run by the
newcomer's agent in a thread, reported through a status file that ``GET /mesh/NAME/copy``
serves while the CLI shows its progress.

For each source: a replication connection creates the pair's slot on the source with an
exported snapshot (``CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT``), and an
ordinary connection (the replication role, as the workers connect) imports it (``SET
TRANSACTION SNAPSHOT``) and reads the tables with ``COPY … TO STDOUT (FORMAT binary)``, so
the rows are exactly those before the slot's first change. Here, one transaction under the
copy's own replication origin (so this node's streams do not send the rows on) empties the
tables (unless merging; tables it lacked were created from a source's definitions when the
node was prepared), writes the rows with ``COPY … FROM STDIN (FORMAT binary)``, and records
where each stream into this node starts (``pgherd.mesh_progress``: the slot's consistent
point for a source; for the other members, where the source's snapshot says it had applied
them) with what the sources had seen (``pgherd.mesh_seen``). The end of that transaction is
where the other members start this node's stream.

Like the apply worker's stream, the source connections are opened here with the replication
role's passfile (the replication command through mesh/apply/stream.py: psycopg 3 has no
replication protocol).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
from psycopg import sql

from pgherd.errors import PgherdError
from pgherd.mesh import store
from pgherd.mesh.apply import progress, stream
from pgherd.model import mesh as mesh_model
from pgherd.model.lsn import Lsn
from pgherd.model.mesh_copy import CopyRequest, CopyState, CopyStatus, TableProgress
from pgherd.pg import conninfo
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.mesh")

Conn = psycopg.Connection[Any]
STATUS_EVERY = 1.0  # seconds between progress reports
# Rows a merging node copies: those its source wrote itself (not those a copy brought).
_OWN_ROWS = "coalesce((pg_xact_commit_timestamp_origin(xmin)).roident, 0) = 0"


class CopyFailed(PgherdError):
    default_hint = "fix the cause and run the command again: it starts the copy afresh"


@dataclass
class _Source:
    """A source's side of the copy: the snapshot connection and where its slot starts."""

    node: str
    slot: str
    snapshot: Conn
    consistent_point: int


@dataclass
class _Report:
    """The status file, rewritten at most once a second while rows flow."""

    path: Path
    status: CopyStatus
    tables: list[TableProgress] = field(default_factory=list)
    last: float = 0.0

    def write(self, force: bool = False, **changes: Any) -> None:
        self.status = self.status.model_copy(update={"tables": tuple(self.tables), **changes})
        now = time.monotonic()
        if force or now - self.last >= STATUS_EVERY:
            self.last = now
            store.write_json(self.path, self.status.model_dump(mode="json"))


class InitialCopy:
    """One copy into this node; :meth:`run` does it (in the agent's thread)."""

    def __init__(self, local: LocalNode, request: CopyRequest) -> None:
        self.local = local
        self.request = request
        self.spec = request.spec
        me = local.node.name
        self._report = _Report(
            store.copy_status_path(local.node, self.spec.name),
            CopyStatus(mesh=self.spec.name, node=me, state=CopyState.COPYING),
        )

    def begin(self) -> CopyStatus:
        """The status file says the copy started (before the thread runs it)."""
        self._report.write(force=True, started_at=time.time())
        return self._report.status

    def run(self) -> CopyStatus:
        report = self._report
        try:
            commit_lsn = self._copy()
        except (PgherdError, psycopg.Error, psycopg2.Error, OSError) as exc:
            message = exc.message if isinstance(exc, PgherdError) else _first_line(exc)
            hint = exc.hint if isinstance(exc, PgherdError) else None
            log.error("initial copy of mesh %s failed: %s", self.spec.name, message)  # noqa: TRY400
            report.write(
                force=True,
                state=CopyState.FAILED,
                error=message,
                hint=hint,
                finished_at=time.time(),
            )
            return report.status
        report.write(
            force=True,
            state=CopyState.DONE,
            commit_lsn=str(Lsn(commit_lsn)),
            finished_at=time.time(),
        )
        log.info("initial copy of mesh %s done: %s rows", self.spec.name, report.status.rows)
        return report.status

    # ---- the copy -------------------------------------------------------------------------

    def _copy(self) -> int:
        spec, request = self.spec, self.request
        origin = mesh_model.copy_origin_name(spec.name)
        with (
            self.local.instance.connect(spec.dbname) as conn,
            self.local.instance.connect(spec.dbname) as watch,
            contextlib.ExitStack() as stack,
        ):
            conn.execute(
                "SELECT pg_replication_origin_create(%s) "
                "WHERE pg_replication_origin_oid(%s) IS NULL",
                (origin, origin),
            )
            sources = [stack.enter_context(self._source(name)) for name in request.sources]
            conn.execute("SET session_replication_role = replica")
            conn.execute("SELECT pg_replication_origin_session_setup(%s)", (origin,))
            with conn.transaction():
                if not request.merge:
                    conn.execute(
                        sql.SQL("TRUNCATE {}").format(
                            sql.SQL(", ").join(_ident(t) for t in spec.tables)
                        )
                    )
                for source in sources:
                    for table in spec.tables:
                        self._copy_table(conn, watch, source, table)
                self._record_starts(conn, sources)
                when = time.time()
                conn.execute(
                    "SELECT pg_replication_origin_xact_setup(%s::pg_lsn, to_timestamp(%s))",
                    (str(Lsn(sources[0].consistent_point)), when),
                )
            # The copy's own commit, as its origin recorded it: the end of its commit record.
            row = conn.execute(
                "SELECT local_lsn::text FROM pg_replication_origin_status WHERE external_id = %s",
                (origin,),
            ).fetchone()
            conn.execute("SELECT pg_replication_origin_session_reset()")
        assert row is not None
        return Lsn.parse(str(row[0])).value

    @contextlib.contextmanager
    def _source(self, name: str) -> Iterator[_Source]:
        """The pair's slot on ``name``, made with an exported snapshot, and a connection
        that reads in that snapshot (the replication connection is closed once the snapshot
        is imported: it only had to stay idle until then)."""
        config = self.local.config
        node = config.node(name)
        me = self.local.node.name
        slot = mesh_model.slot_name(self.spec.name, me)
        dsn = conninfo.keyword(
            node.host,
            node.port,
            config.replication_user,
            config.passfile,
            dbname=self.spec.dbname,
            application_name=f"pgherd copy {self.spec.name} to {me}",
            sslrootcert=config.ca_file,
        )
        snapshot = psycopg.connect(dsn, autocommit=True)
        try:
            busy = snapshot.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if busy is not None and busy[0]:
                raise CopyFailed(
                    f"slot {slot} on {name} is in use: a worker already reads it",
                    f"this node already takes {name}'s changes; drop the mesh here first",
                )
            if busy is not None:  # left by a copy that failed: its snapshot is gone with it
                snapshot.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            with stream.slot_with_snapshot(dsn, slot) as made:
                snapshot.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                snapshot.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(made.snapshot))
                )
            log.info("copying from %s at %s (slot %s)", name, made.consistent_point, slot)
            yield _Source(name, slot, snapshot, Lsn.parse(made.consistent_point).value)
        finally:
            snapshot.close()

    def _copy_table(self, conn: Conn, watch: Conn, source: _Source, table: str) -> None:
        """One table from one source, streamed COPY to COPY; its progress read from this
        node's pg_stat_progress_copy (rows, as the server counts them)."""
        columns = _columns(conn, table)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        estimate = source.snapshot.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            (_ident(table).as_string(conn),),
        ).fetchone()
        entry = TableProgress(
            table=table,
            source=source.node,
            estimate=int(estimate[0]) if estimate and int(estimate[0]) > 0 else None,
        )
        report = self._report
        report.tables.append(entry)
        where = sql.SQL(f" WHERE {_OWN_ROWS}") if self.request.merge else sql.SQL("")
        read = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT binary)").format(
            names, _ident(table), where
        )
        write = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(_ident(table), names)
        pid = conn.info.backend_pid
        writer = conn.cursor()
        last = time.monotonic()
        try:
            with source.snapshot.cursor().copy(read) as out, writer.copy(write) as into:
                for data in out:
                    into.write(data)
                    now = time.monotonic()
                    if now - last >= STATUS_EVERY:
                        last = now
                        rows = watch.execute(
                            "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s",
                            (pid,),
                        ).fetchone()
                        if rows is not None:
                            report.tables[-1] = entry.model_copy(update={"rows": int(rows[0])})
                            report.write()
        except psycopg.errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or str(exc)
            raise CopyFailed(
                f"{table}: a row of {source.node} has a key this node holds too ({detail})",
                "--merge needs tables whose keys differ on every member; copy from one node "
                "instead (--initial-copy-from NODE)",
            ) from None
        report.tables[-1] = entry.model_copy(update={"rows": max(writer.rowcount, 0), "done": True})
        report.write(force=True)

    def _record_starts(self, conn: Conn, sources: list[_Source]) -> None:
        """Where each stream into this node starts, and what its source had seen."""
        spec, me = self.spec, self.local.node.name
        for source in sources:
            progress.raise_to(conn, spec.name, source.node, source.consistent_point)
        if not self.request.progress_of:
            return
        reference = sources[0]
        # What the reference had applied from each member, in the snapshot the rows are in.
        applied = reference.snapshot.execute(
            "SELECT source_node, lsn::text, commit_time FROM pgherd.mesh_progress WHERE mesh = %s",
            (spec.name,),
        ).fetchall()
        unknown = set(self.request.progress_of) - {str(r[0]) for r in applied}
        if unknown:
            raise CopyFailed(
                f"{reference.node} has not recorded how far it applied "
                f"{', '.join(sorted(unknown))} (its workers record it when they start)",
                f"check that {reference.node}'s apply workers run (pgherd mesh status), "
                "then run the command again",
            )
        for node, lsn, commit_time in applied:
            if node in self.request.progress_of:
                conn.execute(
                    "INSERT INTO pgherd.mesh_progress VALUES (%s, %s, %s::pg_lsn, %s) "
                    "ON CONFLICT (mesh, source_node) DO UPDATE SET lsn = excluded.lsn, "
                    "commit_time = excluded.commit_time",
                    (spec.name, node, lsn, commit_time),
                )
            if node != me and commit_time is not None:
                # The reference's stream here starts at its snapshot: by then it had applied
                # this member's transactions up to that commit time.
                _seen(conn, spec.name, reference.node, str(node), int(commit_time))
        seen = reference.snapshot.execute(
            "SELECT source_node, node, seen_time FROM pgherd.mesh_seen WHERE mesh = %s "
            "AND source_node = ANY(%s)",
            (spec.name, list(self.request.progress_of)),
        ).fetchall()
        for source_node, node, seen_time in seen:
            _seen(conn, spec.name, str(source_node), str(node), int(seen_time))


def _seen(conn: Conn, mesh: str, source: str, node: str, when: int) -> None:
    conn.execute(
        "INSERT INTO pgherd.mesh_seen VALUES (%s, %s, %s, %s) ON CONFLICT "
        "(mesh, source_node, node) DO UPDATE SET "
        "seen_time = greatest(pgherd.mesh_seen.seen_time, excluded.seen_time)",
        (mesh, source, node, when),
    )


def _ident(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split(".", 1))


def _columns(conn: Conn, table: str) -> list[str]:
    """The table's columns that COPY writes (not generated ones), in their order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (_ident(table).as_string(conn),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CopyJobs:
    """The copies this agent runs, one thread each (one per mesh at a time)."""

    def __init__(self, local: LocalNode) -> None:
        self.local = local
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, request: CopyRequest) -> CopyStatus:
        name = request.spec.name
        with self._lock:
            running = self._threads.get(name)
            if running is not None and running.is_alive():
                raise CopyFailed(
                    f"a copy for mesh {name} is already running on {self.local.node.name}",
                    "wait for it (pgherd mesh status shows it)",
                )
            job = InitialCopy(self.local, request)
            thread = threading.Thread(target=job.run, name=f"mesh-copy-{name}", daemon=True)
            self._threads[name] = thread
            status = job.begin()
            thread.start()
            return status

    def status(self, name: str) -> CopyStatus | None:
        data = store.read_copy_status(self.local.node, name)
        if data is None:
            return None
        status = CopyStatus.model_validate(data)
        with self._lock:
            thread = self._threads.get(name)
        if status.state is CopyState.COPYING and (thread is None or not thread.is_alive()):
            # The agent restarted (or the thread died) during the copy: it did not finish.
            return status.model_copy(
                update={"state": CopyState.FAILED, "error": "the copy was interrupted"}
            )
        return status
