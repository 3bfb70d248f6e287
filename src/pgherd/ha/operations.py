"""The node-level primitives cluster operations are made of, as the agent performs them.

Each acts on this node only and refuses what is unsafe *for this node* (rewinding a
running server, re-pointing a running primary); whether the cluster as a whole allows the
step is decided by the orchestrator (``pgherd.ops``) before it asks. Acting steps hold the
agent's action lock, so they never overlap with each other or with start/stop requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pgherd.errors import Refused
from pgherd.ha.supervisor import Supervisor
from pgherd.model.events import Event
from pgherd.model.lsn import Lsn
from pgherd.model.node_ops import (
    CheckpointDone,
    CloneSummary,
    NodeWal,
    PromoteResult,
    ReplayWait,
    RewindResult,
    SlotChange,
    SlotState,
)
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg import replication
from pgherd.pg.local_node import LocalNode
from pgherd.physical import clone, events_store, promote, rewind, slots, wal_position

log = logging.getLogger("pgherd.agent")


class NodeOperations:
    def __init__(self, local: LocalNode, supervisor: Supervisor, lock: threading.Lock) -> None:
        self.local = local
        self.supervisor = supervisor
        self._lock = lock
        # Told when an operation promoted this node (the HA loop takes the lease at once).
        self.on_promoted: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.local.node.name

    def _running(self) -> bool:
        return self.supervisor.state() is PgState.RUNNING

    # ---- reading ---------------------------------------------------------------------

    def wal_position(self) -> NodeWal:
        return wal_position.read(self.local, self._running())

    def recent_events(self, limit: int) -> list[Event]:
        if not self._running():
            raise Refused(f"PostgreSQL is not running on {self.name}", "ask another node")
        return events_store.recent(self.local, limit)

    def wait_replay(self, past: Lsn, timeout: float) -> ReplayWait:
        started = time.monotonic()
        with self.local.instance.connect() as conn:
            if not replication.in_recovery(conn):
                raise Refused(f"{self.name} is not a standby", "wait on a standby")
            reached, replayed, received = replication.wait_replayed_past(conn, past, timeout)
        return ReplayWait(
            name=self.name,
            reached=reached,
            target=past,
            replay_lsn=replayed,
            receive_lsn=received,
            seconds=round(time.monotonic() - started, 4),
        )

    # ---- acting ----------------------------------------------------------------------

    def save_event(self, event: Event) -> None:
        events_store.save(self.local, event)

    def checkpoint(self) -> CheckpointDone:
        started = time.monotonic()
        with self.local.instance.connect() as conn:
            redo = replication.checkpoint(conn)
        return CheckpointDone(
            name=self.name, redo_lsn=redo, seconds=round(time.monotonic() - started, 4)
        )

    def promote(self, timeout: float) -> PromoteResult:
        with self._lock:
            if not self._running():
                raise Refused(
                    f"PostgreSQL is not running on {self.name}",
                    f"start it first: pgherd node start {self.name}",
                )
            log.info("promoting (asked through the API)")
            result = promote.promote(self.local, timeout)
            log.info("promoted: timeline %d → %d", result.timeline_before, result.timeline_after)
            slots.for_other_nodes(self.local)
        if self.on_promoted is not None:
            self.on_promoted()
        return result

    def follow(self, upstream: str, start: bool) -> None:
        """Make this node a standby of ``upstream``: rewrite its settings (primary_conninfo,
        primary_slot_name, standby.signal); reload a running standby (PostgreSQL 13+ lets
        the wal receiver reconnect without a restart), or start a stopped one if asked."""
        target = self.local.config.node(upstream)
        with self._lock:
            running = self._running()
            if running:
                with self.local.instance.connect() as conn:
                    if not replication.in_recovery(conn):
                        raise Refused(
                            f"{self.name} is running as a primary",
                            f"stop it first (pgherd node stop {self.name}), or rejoin it",
                        )
            log.info("following %s (asked through the API)", upstream)
            self.local.write_config(upstream=target)
            if running:
                with self.local.instance.connect() as conn:
                    replication.reload(conn)
            elif start:
                self.supervisor.start()

    def rewind(self, source: str, timeout: float) -> RewindResult:
        node = self.local.config.node(source)
        with self._lock:
            if self.supervisor.pid is not None:
                raise Refused(
                    f"PostgreSQL runs on {self.name}; pg_rewind needs it stopped",
                    f"stop it first: pgherd node stop {self.name}",
                )
            log.info("pg_rewind from %s (asked through the API)", source)
            result = rewind.rewind(self.local, node, timeout)
            log.info("pg_rewind: %s", result.output)
            return result

    def clone(self, upstream: NodeStatus) -> CloneSummary:
        with self._lock:
            if self.supervisor.pid is not None:
                raise Refused(
                    f"PostgreSQL runs on {self.name}; a new clone replaces its data",
                    f"stop it first: pgherd node stop {self.name}",
                )
            log.info("re-cloning from %s (asked through the API)", upstream.name)
            result = clone.clone(self.local.config, self.name, upstream, True, lambda _p: None)
            return CloneSummary(
                name=self.name,
                upstream=result.upstream,
                bytes_copied=result.bytes_copied,
                seconds=round(result.seconds, 4),
                slot_created=result.slot_created,
            )

    def create_slot(self, slot: str) -> SlotChange:
        return slots.create(self.local, slot)

    def drop_slot(self, slot: str) -> SlotChange:
        return slots.drop(self.local, slot)

    def slot_state(self, slot: str) -> SlotState:
        return slots.state(self.local, slot)
