"""Where the agent's audit records go: the cluster's event log, off the request path.

Records wait in a bounded queue for one thread that writes them: to the coordination
store's event log when the cluster has one, else through the running primary's agent
(``POST /events``, with this node's own credential). When the log cannot be reached the
records are kept a while and written later; when too many wait, the oldest are dropped,
and the agent's log says how many: an attacker's flood of refused calls must not grow
the agent's memory without end.
"""

from __future__ import annotations

import logging
import queue
import threading

from pgherd.clients.agent import statuses
from pgherd.clients.credential import Credential
from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig
from pgherd.dcs.open import open_store
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import PgherdError
from pgherd.model.events import Event
from pgherd.model.status import PgState, Role

log = logging.getLogger("pgherd.audit")

MAX_WAITING = 1000


class AuditTrail:
    def __init__(self, config: ClusterConfig, node: str, token: Credential) -> None:
        self.config = config
        self.node = node
        self.token = token
        self._queue: queue.Queue[Event] = queue.Queue(MAX_WAITING)
        self.dropped = 0
        self._store_log = StoreEventLog(open_store(config)) if config.ha is not None else None

    def __call__(self, event: Event) -> None:
        """The API's sink: never blocks a request."""
        log.info("audit: %s by %s: %s", event.operation, event.requested_by, event.reason)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while not self._queue.empty() and len(batch) < 100:
                batch.append(self._queue.get_nowait())
            if self.dropped:
                log.warning(
                    "audit: %d records dropped (the event log did not keep up)", self.dropped
                )
                self.dropped = 0
            try:
                self._write(batch)
            except PgherdError as exc:
                log.warning("audit: %d records not written yet: %s", len(batch), exc.one_line())
                for event in batch:
                    try:
                        self._queue.put_nowait(event)
                    except queue.Full:
                        self.dropped += 1
                stop.wait(2)

    def _write(self, batch: list[Event]) -> None:
        if self._store_log is not None:
            for event in batch:
                self._store_log.save(event)
            return
        primary = next(
            (
                s.name
                for s in statuses(self.config.nodes)
                if s.role is Role.PRIMARY and s.state is PgState.RUNNING
            ),
            None,
        )
        if primary is None:
            raise PgherdError("no running primary to keep the event log")
        client = OpsClient(self.config.node(primary), self.token, timeout=5)
        for event in batch:
            client.save_event(event)
