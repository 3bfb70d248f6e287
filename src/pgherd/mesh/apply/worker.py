"""The apply worker for one ordered pair of a mesh: source → target.

It runs on the target's machine, as a child process of the target's agent (which restarts
it with a backoff), connects to its PostgreSQL over the Unix socket as the superuser and
to the source as the replication role, and applies the source's changes:

- from the position its replication origin records on the target, so a restart (after a
  crash of the worker, the target or the source) resumes where the last commit left off;
- skipping transactions that carry an origin: those were replicated into the source, and
  forwarding them would send them in a loop (a change travels one hop; in a full mesh every
  node hears from every other directly). PostgreSQL 15's pgoutput does not filter by
  origin itself (``origin = none`` is 16+), so the worker sees the Origin message after
  Begin and drops the transaction;
- confirming to the source only what is durable on the target: the origin's progress read
  with ``flush`` (which flushes the target's WAL that far), since the apply session
  commits with ``synchronous_commit = off`` as native apply does — ``on`` while the target
  has synchronous standbys, so that what the source is told survives a failover of the
  target (model/mesh_members.py).

A member may be an HA cluster: the worker reads it through every node of it (libpq keeps
the writable one), and runs on whichever node is its target member's primary.

The worker writes a small status file (JSON) every second for its agent: position, lag,
counters, the last conflict and its state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg2

from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.mesh import members
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.applier import Applier
from pgherd.mesh.apply.conflicts import ApplyContext, ConflictStop, Counters
from pgherd.mesh.apply.session import Replay
from pgherd.mesh.apply.state import Remote
from pgherd.mesh.apply.stream import Stream
from pgherd.mesh.apply.target import register_wire
from pgherd.mesh.apply.waits import Wait
from pgherd.model import mesh as mesh_model
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshSpec, WorkerState
from pgherd.model.mesh_members import apply_commit_mode
from pgherd.pg import conninfo
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.apply")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFLICT = 3  # stopped by the error policy: restart only after a while
TICK_SECONDS = 1.0
IDLE_WAIT = 0.5
# Seconds without data before an open group commits: short for a trickle (low latency),
# longer in a backlog (a large group, or transactions committed a while ago), where the
# source is only slow to decode and a commit per pause would make many small commits.
GROUP_QUIET = 0.02
GROUP_QUIET_BACKLOG = 0.1
BACKLOG_ROWS = 1000
BACKLOG_AGE_US = 500_000  # applying transactions committed this long ago: a backlog
# In a backlog (the last transaction arrived more than BACKLOG_AGE_US after its commit),
# a stream that runs dry is waited for with a nap, not on the socket. A worker that waits on
# the socket is woken by each message the walsender sends, and reads each one at once, so
# the receive window never closes and every message travels as a TCP segment of its own:
# on loopback the walsender pays for both ends, up to twice what decoding costs it
# (docs/benchmarks.md, "Apply"). During a nap the window fills, the walsender's sends queue
# cheaply, and the worker reads them in one go. Nothing is made later than it already is.
# The stream dry for BACKLOG_DRY means the backlog is over: then the socket again.
BACKLOG_NAP = 0.01
BACKLOG_DRY = 0.2
ORIGIN_BUSY_WAIT = 15.0
WAIT_POLL = 0.05  # seconds between looks for what the stream waits for (waits.py)

_TAG_INSERT, _TAG_UPDATE, _TAG_DELETE = ord("I"), ord("U"), ord("D")
_TAG_BEGIN, _TAG_COMMIT, _TAG_ORIGIN = ord("B"), ord("C"), ord("O")
_TAG_RELATION, _TAG_TRUNCATE, _TAG_TYPE, _TAG_MESSAGE = ord("R"), ord("T"), ord("Y"), ord("M")


@dataclass
class Position:
    """Where the stream stands (what the target committed is the applier's)."""

    received: int = 0  # the last message's LSN
    server: int = 0  # the source's WAL end, as it last said
    durable: int = 0  # what the target has flushed (and the source was told)


class Worker:
    def __init__(
        self,
        spec: MeshSpec,
        config: ClusterConfig,
        source: str,
        target: str,
        status_path: Path | None = None,
        member: str | None = None,
    ) -> None:
        """``source``: the member applied from (a node, or a cluster read through its
        primary); ``target``: this node; ``member``: the member it serves (itself, or its
        cluster: mesh/members.py)."""
        self.spec = spec
        self.config = config
        self.source = members.resolve(config, source)
        self.local = LocalNode.open(config, target)
        self.target = member or target
        self.status_path = status_path
        self.stopping = False
        self.careful_until = 0  # replays apply transactions up to here carefully
        self.position = Position()
        self.replays = 0
        self.counters = Counters()
        self.state = WorkerState.STARTING
        self.error: str | None = None
        self._applier: Applier | None = None
        self._last_tick = 0.0
        self._backlog = False  # the transactions being read arrived long after their commit
        self._commit_mode = ""  # the target session's synchronous_commit

    # ---- the whole run ------------------------------------------------------------------

    def run(self) -> int:
        """Apply until asked to stop; the exit code tells the agent what happened."""
        while not self.stopping:
            try:
                self._session()
            except Replay as exc:
                self.replays += 1
                log.warning(
                    "an insert met an existing key (%s); replaying from the origin with "
                    "conflict checks up to %s",
                    exc,
                    Lsn(self.careful_until),
                )
                continue
            except Wait as exc:
                self._wait_for(exc)
                continue
            except ConflictStop as exc:
                self.state, self.error = WorkerState.CONFLICT, f"stopped on a conflict: {exc}"
                self._write_status()
                log.error("%s (policy error); fix the row or change the policy", self.error)  # noqa: TRY400
                return EXIT_CONFLICT
            except (psycopg.Error, psycopg2.Error, PgherdError, OSError, po.ProtocolError) as exc:
                message = exc.message if isinstance(exc, PgherdError) else str(exc)
                self.state, self.error = WorkerState.ERROR, " ".join(message.split())
                self._write_status()
                log.error("apply from %s stopped: %s", self.source.name, self.error)  # noqa: TRY400
                return EXIT_ERROR
        self.state = WorkerState.STOPPED
        self._write_status()
        return EXIT_OK

    def _session(self) -> None:
        """One pair of connections: target (psycopg 3) and source stream (psycopg2).

        However the session ends (the source gone, as in its failover; a stop; an error),
        the open group is not committed: the target connection is closed, which rolls it
        back, and the next session applies it again from the origin. A commit there would
        keep rows without moving the origin past them (they would be applied twice), and
        would wait forever for the connection's lock, which psycopg holds for as long as
        a COPY run is open: the applier lets go of the run first."""
        with contextlib.closing(self._connect_target()) as conn:
            try:
                self._session_on(conn)
            finally:
                if self._applier is not None and self._applier.session.conn is conn:
                    self._applier.abandon()

    def _session_on(self, conn: psycopg.Connection[Any]) -> None:
        """The session's work on an open target connection: the origin, then the stream."""
        ctx = self._context(conn)
        self._setup_origin(conn, ctx.origin)
        applier = self._applier = Applier(conn, ctx, self.counters, self.careful_until)
        start = applier.start()
        # Every node of the source member, the writable one chosen by libpq: after a
        # failover of the source, the worker's next session reads the new primary's
        # copy of the slot (model/failover_slots.py), from this target's origin.
        source = self.source.config
        dsn = conninfo.read_write(
            members.source_hosts(self.source),
            source.replication_user,
            source.passfile,
            dbname=self.spec.dbname,
            application_name=mesh_model.slot_name(self.spec.name, self.target),
            sslrootcert=source.ca_file,
        )
        slot = mesh_model.slot_name(self.spec.name, self.target)
        publication = mesh_model.publication_name(self.spec.name)
        with Stream(dsn, slot, publication, start) as stream:
            self.state, self.error = WorkerState.RUNNING, None
            log.info("applying %s → %s from %s", self.source.name, self.target, Lsn(start))
            try:
                self._loop(stream, applier)
            except ConflictStop as exc:
                applier.stop_on_conflict(exc.record)
                raise
            except Replay:
                # Every transaction of the failed group, up to the one being read,
                # is replayed carefully.
                self.careful_until = max(self.position.received, applier.replay_until)
                applier.abandon()
                raise
            except Wait:
                applier.abandon()  # the session closes: the group is rolled back
                raise

    def _wait_for(self, wait: Wait) -> None:
        """The stream needs something that comes in another member's stream (a column a
        schema change adds, an earlier schema change): wait until it is here, then go on
        from the origin. What the source sent since stays in its slot."""
        self.error = f"waiting for {wait}, which comes from another member's stream"
        log.info("%s", self.error)
        self._write_status()
        with self._connect_target() as conn:
            while not self.stopping and not wait.ready(conn, self.spec.name):
                time.sleep(WAIT_POLL)
                self._write_status()
        self.error = None
        log.info("%s: here now; going on", wait)

    def _connect_target(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.local.instance.conninfo(self.spec.dbname),
            autocommit=True,
            application_name=f"pgherd apply {self.spec.name} from {self.source.name}",
        )
        register_wire(conn)
        # As native apply does: no user triggers or FK checks for replicated rows, and no
        # wait for each commit's flush (what is durable is read from the origin instead),
        # unless the target has synchronous standbys to wait for (model/mesh_members.py).
        conn.execute("SET session_replication_role = replica")
        self._commit_mode = ""
        self._follow_commit_mode(conn.execute)
        return conn

    def _follow_commit_mode(self, execute: Callable[[str], psycopg.Cursor[Any]]) -> None:
        """``synchronous_commit`` as the target's synchronous standbys require, read again
        once a second (pgherd's synchronous mode changes them as standbys come and go)."""
        row = execute("SHOW synchronous_standby_names").fetchone()
        mode = apply_commit_mode(str(row[0]) if row else "")
        if mode != self._commit_mode:
            execute(f"SET synchronous_commit = {mode}")
            self._commit_mode = mode

    def _context(self, conn: psycopg.Connection[Any]) -> ApplyContext:
        names = {mesh_model.origin_name(self.spec.name, n): n for n in self.spec.nodes}
        rows = conn.execute(
            "SELECT roident, roname FROM pg_replication_origin WHERE roname = ANY(%s)",
            (list(names),),
        ).fetchall()
        baseline = conn.execute(
            "SELECT roident FROM pg_replication_origin WHERE roname = %s",
            (mesh_model.copy_origin_name(self.spec.name),),
        ).fetchone()
        return ApplyContext(
            mesh=self.spec.name,
            source=self.source.name,
            target=self.target,
            policy=self.spec.policy,
            priority=self.spec.nodes,
            origin=mesh_model.origin_name(self.spec.name, self.source.name),
            origin_nodes={int(rid): names[str(name)] for rid, name in rows},
            resolution_us=self.spec.time_resolution_us,
            origin_names=names,
            baseline_roident=int(baseline[0]) if baseline is not None else 0,
            forwarded=self.spec.forwarded(self.source.name, self.target),
        )

    def _setup_origin(self, conn: psycopg.Connection[Any], origin: str) -> None:
        """Take the origin for this session; a previous worker's backend may still hold it
        for a moment after that worker died."""
        conn.execute(
            "SELECT pg_replication_origin_create(%s) WHERE pg_replication_origin_oid(%s) IS NULL",
            (origin, origin),
        )
        deadline = time.monotonic() + ORIGIN_BUSY_WAIT
        while True:
            try:
                conn.execute("SELECT pg_replication_origin_session_setup(%s)", (origin,))
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline or self.stopping:
                    raise
                time.sleep(0.2)
            else:
                return

    # ---- the loop -----------------------------------------------------------------------

    def _loop(self, stream: Stream, applier: Applier) -> None:
        """Read the stream and hand each message to the applier; between messages, decide
        when an open group commits (the stream quiet for a moment) and do the ticks."""
        pos = self.position
        count = 0
        dry_since: float | None = None  # since when the stream has had nothing to read
        while not self.stopping:
            message = stream.read()
            if message is None:
                now = time.monotonic()
                if dry_since is None:
                    dry_since = now
                if applier.remote is Remote.BETWEEN and applier.group_open:
                    # Between transactions with a group open: the source may only be
                    # decoding the next one. Commit once it stays quiet for a moment, not at
                    # once: a group cut at every pause makes for many small commits.
                    backlog = _behind(applier.group_time) or applier.group_rows >= BACKLOG_ROWS
                    quiet = GROUP_QUIET_BACKLOG if backlog else GROUP_QUIET
                    if now - dry_since < quiet:
                        self._wait(stream, quiet / 4, now - dry_since)
                        continue
                    applier.end_group()
                self._tick(stream, applier)
                self._wait(stream, IDLE_WAIT, time.monotonic() - dry_since)
                continue
            dry_since = None
            payload: bytes = message.payload
            tag = payload[0]
            if tag == _TAG_INSERT:
                applier.insert(payload)
            elif tag == _TAG_UPDATE:
                applier.update(payload)
            elif tag == _TAG_DELETE:
                applier.delete(payload)
            elif tag == _TAG_BEGIN:
                applier.begin(payload)
                self._backlog = _behind(applier.remote_time)
            elif tag == _TAG_COMMIT:
                applier.commit(payload)
            elif tag == _TAG_ORIGIN:
                applier.origin(payload)
            elif tag == _TAG_RELATION:
                applier.relation(payload)
            elif tag == _TAG_TRUNCATE:
                applier.truncate(payload)
            elif tag not in (_TAG_TYPE, _TAG_MESSAGE):
                raise po.ProtocolError(f"unexpected message {payload[:1]!r} with protocol 1")
            if message.data_start > pos.received:
                pos.received = message.data_start
            count += 1
            if count & 1023 == 0:
                self._tick(stream, applier)
        if applier.remote is Remote.BETWEEN:
            applier.end_group()
        if not applier.group_open:
            # Stopping: confirm what is durable now, or the next start re-reads it all.
            self._tick(stream, applier, force=True)

    def _wait(self, stream: Stream, timeout: float, dry_for: float) -> None:
        """Wait for more of the stream: a nap when it ran dry only just now in the middle
        of a backlog, else on the socket (see BACKLOG_NAP)."""
        if self._backlog and dry_for < BACKLOG_DRY:
            time.sleep(min(timeout, BACKLOG_NAP))
        else:
            stream.wait(timeout)

    def _tick(self, stream: Stream, applier: Applier, force: bool = False) -> None:
        """Once a second: tell the source what is durable, move the origin past skipped
        transactions when idle, and write the status file."""
        now = time.monotonic()
        if now - self._last_tick < TICK_SECONDS and not force:
            return
        self._last_tick = now
        pos = self.position
        pos.server = max(pos.server, stream.server_lsn)
        if applier.copy_streaming:
            self._write_status()
            return
        applier.advance_past_skipped()
        self._follow_commit_mode(applier.session.execute)
        durable = applier.durable_lsn()
        if durable > 0:
            pos.durable = durable
            stream.confirm(durable)
        self._write_status()

    # ---- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        pos = self.position
        applier = self._applier
        idle = applier is None or applier.idle
        committed = applier.committed_lsn if applier is not None else 0
        lag_bytes = 0 if idle else max(0, pos.server - committed)
        lag_seconds = 0.0
        pending_since = applier.pending_since if applier is not None else None
        if not idle and pending_since is not None:
            now = po.now_micros()
            lag_seconds = max(0.0, (now - pending_since) / 1e6)
        counters = self.counters
        last = counters.last_conflict
        return {
            "mesh": self.spec.name,
            "source": self.source.name,
            "target": self.target,
            "pid": os.getpid(),
            "state": str(self.state),
            "error": self.error,
            "committed_lsn": str(Lsn(committed)),
            "durable_lsn": str(Lsn(pos.durable)),
            "received_lsn": str(Lsn(pos.received)),
            "source_lsn": str(Lsn(pos.server)),
            "lag_bytes": lag_bytes,
            "lag_seconds": round(lag_seconds, 3),
            "transactions": counters.transactions,
            "rows": counters.rows,
            "conflicts": counters.conflicts,
            "conflict_counts": counters.conflict_counts(),
            "groups": counters.groups,
            "skipped_loops": counters.skipped_loops,
            "forwarded": counters.forwarded,
            "schema_changes": counters.schema_changes,
            "replays": self.replays,
            "last_conflict": None
            if last is None
            else {
                "table": last.table,
                "kind": str(last.kind),
                "key": last.key,
                "resolution": str(last.resolution),
            },
            "updated_at": time.time(),
        }

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        tmp = self.status_path.with_name(f".{self.status_path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.status(), handle)
        os.replace(tmp, self.status_path)


def _behind(commit_time: int) -> bool:
    """Applying a transaction committed more than BACKLOG_AGE_US ago: a backlog."""
    return po.now_micros() - commit_time > BACKLOG_AGE_US
