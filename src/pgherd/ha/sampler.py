"""The agent's history sampler: every ``history.interval`` seconds, one connection and
two queries (see pg/history_sql.py) into the node's history store.

Nothing is sampled while PostgreSQL is not running: the gap in the history is the outage.
Samples older than ``history.keep_days`` are trimmed at start and then hourly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from pgherd.config import HistoryConfig
from pgherd.errors import PgherdError
from pgherd.ha.history_store import HistoryStore
from pgherd.model import history
from pgherd.model.status import PgState
from pgherd.pg import history_sql
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.agent")
TRIM_EVERY = 3600.0


class Sampler:
    def __init__(
        self,
        local: LocalNode,
        store: HistoryStore,
        settings: HistoryConfig,
        pg_state: Callable[[], PgState],
    ) -> None:
        self.local = local
        self.store = store
        self.settings = settings
        self.pg_state = pg_state
        self.last_seconds: float | None = None  # how long the last round took
        self._trimmed_at = 0.0

    def sample_once(self) -> int:
        """One round; how many samples were stored (0 while PostgreSQL is down)."""
        if self.pg_state() is not PgState.RUNNING:
            return 0
        began = time.monotonic()
        with self.local.instance.connect() as conn:
            state = history_sql.sender_state(conn)
        stored = self.store.add(history.samples(state, history.now()))
        self.last_seconds = time.monotonic() - began
        return stored

    def trim_if_due(self) -> None:
        if time.monotonic() - self._trimmed_at < TRIM_EVERY and self._trimmed_at:
            return
        self._trimmed_at = time.monotonic()
        removed, _ = self.store.trim(history.cutoff(history.now(), self.settings.keep_days))
        if removed:
            log.info(
                "history: trimmed %d samples older than %g days", removed, self.settings.keep_days
            )

    def run(self, stop: threading.Event) -> None:
        failing = False
        while not stop.wait(self.settings.interval):
            try:
                self.trim_if_due()
                self.sample_once()
                failing = False
            except (PgherdError, psycopg.Error, OSError, ValueError) as exc:
                if not failing:  # say it once, not every few seconds
                    log.warning("history sample failed: %s", exc)
                failing = True
            except Exception:
                log.exception("history sample failed")
