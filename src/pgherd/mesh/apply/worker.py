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
  commits with ``synchronous_commit = off`` as native apply does.

The worker writes a small status file (JSON) every second for its agent: position, lag,
counters, the last conflict and its state.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg2

from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.applier import Applier, ApplyContext, ConflictStop, Replay
from pgherd.mesh.apply.stream import Stream
from pgherd.mesh.apply.target import register_wire
from pgherd.model import mesh as mesh_model
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshSpec
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

_TAG_INSERT, _TAG_UPDATE, _TAG_DELETE = ord("I"), ord("U"), ord("D")
_TAG_BEGIN, _TAG_COMMIT, _TAG_ORIGIN = ord("B"), ord("C"), ord("O")
_TAG_RELATION, _TAG_TRUNCATE, _TAG_TYPE, _TAG_MESSAGE = ord("R"), ord("T"), ord("Y"), ord("M")


@dataclass
class Position:
    received: int = 0  # the last message's LSN
    server: int = 0  # the source's WAL end, as it last said
    committed: int = 0  # the origin's position after the last local commit
    durable: int = 0  # what the target has flushed (and the source was told)
    skipped_end: int = 0  # the end of the last transaction skipped outside a group
    skipped_time: int = 0  # and its commit time
    pending_since: int | None = None  # commit time of the oldest change not yet committed


class Worker:
    def __init__(
        self,
        spec: MeshSpec,
        config: ClusterConfig,
        source: str,
        target: str,
        status_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.source = config.node(source)
        self.local = LocalNode.open(config, target)
        self.target = target
        self.status_path = status_path
        self.stopping = False
        self.careful_until = 0
        self.position = Position()
        self.skipped_loops = 0
        self.replays = 0
        self.state = "starting"
        self.error: str | None = None
        self._applier: Applier | None = None
        self._last_tick = 0.0
        self._in_remote = False
        self._backlog = False  # the transactions being read arrived long after their commit

    # ---- the whole run ------------------------------------------------------------------

    def run(self) -> int:
        """Apply until asked to stop; the exit code tells the agent what happened."""
        while not self.stopping:
            try:
                self._session()
            except Replay as exc:
                self.replays += 1
                self.careful_until = self.position.received
                log.warning(
                    "an insert met an existing key (%s); replaying from the origin with "
                    "conflict checks up to %s",
                    exc,
                    Lsn(self.careful_until),
                )
                continue
            except ConflictStop as exc:
                self.state, self.error = "conflict", f"stopped on a conflict: {exc}"
                self._write_status()
                log.error("%s (policy error); fix the row or change the policy", self.error)  # noqa: TRY400
                return EXIT_CONFLICT
            except (psycopg.Error, psycopg2.Error, PgherdError, OSError, po.ProtocolError) as exc:
                message = exc.message if isinstance(exc, PgherdError) else str(exc)
                self.state, self.error = "error", " ".join(message.split())
                self._write_status()
                log.error("apply from %s stopped: %s", self.source.name, self.error)  # noqa: TRY400
                return EXIT_ERROR
        self.state = "stopped"
        self._write_status()
        return EXIT_OK

    def _session(self) -> None:
        """One pair of connections: target (psycopg 3) and source stream (psycopg2)."""
        with self._connect_target() as conn:
            ctx = self._context(conn)
            applier = self._applier = Applier(conn, ctx)
            self._setup_origin(conn, ctx.origin)
            applier.load_seen()
            start = _lsn(conn.execute("SELECT pg_replication_origin_session_progress(false)"))
            self.position.committed = applier.committed_lsn = start
            dsn = conninfo.keyword(
                self.source.host,
                self.source.port,
                self.config.replication_user,
                self.config.passfile,
                dbname=self.spec.dbname,
                application_name=mesh_model.slot_name(self.spec.name, self.target),
            )
            slot = mesh_model.slot_name(self.spec.name, self.target)
            publication = mesh_model.publication_name(self.spec.name)
            with Stream(dsn, slot, publication, start) as stream:
                self.state, self.error = "running", None
                log.info("applying %s → %s from %s", self.source.name, self.target, Lsn(start))
                try:
                    self._loop(stream, applier, conn)
                except ConflictStop as exc:
                    conn.execute("ROLLBACK")
                    applier.forget()
                    applier.write_conflict(exc.record, once=True)
                    raise
                except Replay:
                    applier.forget()
                    raise

    def _connect_target(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.local.instance.conninfo(self.spec.dbname),
            autocommit=True,
            application_name=f"pgherd apply {self.spec.name} from {self.source.name}",
        )
        register_wire(conn)
        # As native apply does: no user triggers or FK checks for replicated rows, and no
        # wait for each commit's flush (what is durable is read from the origin instead).
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
        return conn

    def _context(self, conn: psycopg.Connection[Any]) -> ApplyContext:
        names = {mesh_model.origin_name(self.spec.name, n): n for n in self.spec.nodes}
        rows = conn.execute(
            "SELECT roident, roname FROM pg_replication_origin WHERE roname = ANY(%s)",
            (list(names),),
        ).fetchall()
        return ApplyContext(
            mesh=self.spec.name,
            source=self.source.name,
            target=self.target,
            policy=self.spec.policy,
            priority=self.spec.nodes,
            origin=mesh_model.origin_name(self.spec.name, self.source.name),
            origin_nodes={int(rid): names[str(name)] for rid, name in rows},
            resolution_us=self.spec.time_resolution_us,
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

    def _loop(self, stream: Stream, applier: Applier, conn: psycopg.Connection[Any]) -> None:
        pos = self.position
        skip = False
        count = 0
        dry_since: float | None = None  # since when the stream has had nothing to read
        commit_time = 0
        origins = {mesh_model.origin_name(self.spec.name, n): n for n in self.spec.nodes}
        while not self.stopping:
            message = stream.read()
            if message is None:
                now = time.monotonic()
                if dry_since is None:
                    dry_since = now
                if not self._in_remote and applier.group_open:
                    # Between transactions with a group open: the source may only be
                    # decoding the next one. Commit once it stays quiet for a moment, not at
                    # once: a group cut at every pause makes for many small commits.
                    backlog = _behind(applier.group_time) or applier.group_rows >= BACKLOG_ROWS
                    quiet = GROUP_QUIET_BACKLOG if backlog else GROUP_QUIET
                    if now - dry_since < quiet:
                        self._wait(stream, quiet / 4, now - dry_since)
                        continue
                    self._end_group(applier)
                self._tick(stream, applier, conn)
                self._wait(stream, IDLE_WAIT, time.monotonic() - dry_since)
                continue
            dry_since = None
            payload: bytes = message.payload
            tag = payload[0]
            if tag == _TAG_INSERT:
                if not skip:
                    applier.insert(payload)
            elif tag == _TAG_UPDATE:
                if not skip:
                    applier.update(payload)
            elif tag == _TAG_DELETE:
                if not skip:
                    applier.delete(payload)
            elif tag == _TAG_BEGIN:
                begin = po.decode(payload)
                assert isinstance(begin, po.Begin)
                self._in_remote = True
                commit_time = begin.commit_time
                self._backlog = _behind(commit_time)
                skip = begin.final_lsn < pos.committed  # applied before a restart
                if not skip:
                    applier.careful = begin.final_lsn <= self.careful_until
                    applier.begin(begin)
                    if pos.pending_since is None:
                        pos.pending_since = begin.commit_time
            elif tag == _TAG_COMMIT:
                commit = po.decode(payload)
                assert isinstance(commit, po.Commit)
                self._in_remote = False
                if skip:
                    applier.skipped(commit.end_lsn)
                    applied = False
                else:
                    applied = applier.commit(commit)
                if not applied and not applier.group_open and commit.end_lsn > pos.skipped_end:
                    pos.skipped_end, pos.skipped_time = commit.end_lsn, commit_time
                skip = False
                if applier.group_due():
                    self._end_group(applier)
            elif tag == _TAG_ORIGIN:
                skip = True  # replicated into the source: not ours to forward
                self.skipped_loops += 1
                origin = po.decode(payload)
                assert isinstance(origin, po.Origin)
                node = origins.get(origin.name)
                if node is not None:
                    applier.source_applied(node, commit_time)
            elif tag == _TAG_RELATION:
                relation = po.decode(payload)
                assert isinstance(relation, po.Relation)
                applier.relation(relation)  # even when skipping: it is sent only once
            elif tag == _TAG_TRUNCATE:
                if not skip:
                    truncate = po.decode(payload)
                    assert isinstance(truncate, po.Truncate)
                    applier.truncate(truncate)
            elif tag not in (_TAG_TYPE, _TAG_MESSAGE):
                raise po.ProtocolError(f"unexpected message {payload[:1]!r} with protocol 1")
            if message.data_start > pos.received:
                pos.received = message.data_start
            count += 1
            if count & 1023 == 0:
                self._tick(stream, applier, conn)
        if not self._in_remote and applier.group_open:
            self._end_group(applier)
        if not applier.group_open:
            # Stopping: confirm what is durable now, or the next start re-reads it all.
            self._tick(stream, applier, conn, force=True)

    def _wait(self, stream: Stream, timeout: float, dry_for: float) -> None:
        """Wait for more of the stream: a nap when it ran dry only just now in the middle
        of a backlog, else on the socket (see BACKLOG_NAP)."""
        if self._backlog and dry_for < BACKLOG_DRY:
            time.sleep(min(timeout, BACKLOG_NAP))
        else:
            stream.wait(timeout)

    def _end_group(self, applier: Applier) -> None:
        applier.end_group()
        self.position.committed = applier.committed_lsn
        self.position.pending_since = None

    def _tick(
        self,
        stream: Stream,
        applier: Applier,
        conn: psycopg.Connection[Any],
        force: bool = False,
    ) -> None:
        """Once a second: tell the source what is durable, move the origin past skipped
        transactions when idle, and write the status file."""
        now = time.monotonic()
        if now - self._last_tick < TICK_SECONDS and not force:
            return
        self._last_tick = now
        pos = self.position
        pos.server = max(pos.server, stream.server_lsn)
        if applier.copy_open:
            self._write_status()
            return
        idle = not self._in_remote and not applier.group_open
        if idle and pos.skipped_end > pos.committed:
            # Only skipped transactions since the last commit: move the origin past them
            # so that the source can release their WAL.
            applier.advance_past_skipped(pos.skipped_end, pos.skipped_time)
            pos.committed = pos.skipped_end
        durable = applier.durable_lsn()
        if durable > 0:
            pos.durable = durable
            stream.confirm(durable)
        self._write_status()

    # ---- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        pos = self.position
        applier = self._applier
        idle = not self._in_remote and (applier is None or not applier.group_open)
        lag_bytes = 0 if idle else max(0, pos.server - pos.committed)
        lag_seconds = 0.0
        if not idle and pos.pending_since is not None:
            now = po.now_micros()
            lag_seconds = max(0.0, (now - pos.pending_since) / 1e6)
        counters = applier.counters if applier is not None else None
        last = counters.last_conflict if counters is not None else None
        return {
            "mesh": self.spec.name,
            "source": self.source.name,
            "target": self.target,
            "pid": os.getpid(),
            "state": self.state,
            "error": self.error,
            "committed_lsn": str(Lsn(pos.committed)),
            "durable_lsn": str(Lsn(pos.durable)),
            "received_lsn": str(Lsn(pos.received)),
            "source_lsn": str(Lsn(pos.server)),
            "lag_bytes": lag_bytes,
            "lag_seconds": round(lag_seconds, 3),
            "transactions": counters.transactions if counters else 0,
            "rows": counters.rows if counters else 0,
            "conflicts": counters.conflicts if counters else 0,
            "groups": counters.groups if counters else 0,
            "skipped_loops": self.skipped_loops,
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


def _lsn(cursor: psycopg.Cursor[Any]) -> int:
    row = cursor.fetchone()
    return Lsn.parse(str(row[0])).value if row and row[0] is not None else 0
