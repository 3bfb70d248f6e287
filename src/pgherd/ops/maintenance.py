"""Maintenance mode: ``pgherd cluster pause [--for D]`` and ``cluster resume``.

While the cluster is paused the agents keep running PostgreSQL, renewing the leader's
lease and checking in, but take no automatic action: no failover, no restart in place, no
rejoin or re-pointing (``model/ha.py``, ``_paused``). An operator patches a host, restarts
a server by hand, moves the primary with ``standby switchover`` (operations run under the
pause and leave it in place), then resumes. A pause given a duration ends by itself: the
agents read its end from the store every cycle, so nobody has to remember to resume.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pgherd.config import ClusterConfig
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.open import open_store
from pgherd.dcs.state import ClusterState, Pause
from pgherd.errors import Refused
from pgherd.model.events import Event, EventLog, Outcome


@dataclass(frozen=True)
class PauseResult:
    pause: Pause | None  # in force after the command (None: resumed)
    before: Pause | None  # the maintenance pause it replaced or lifted, if any

    def as_json(self) -> dict[str, object]:
        return {
            "paused": self.pause is not None,
            "reason": self.pause.reason if self.pause else None,
            "until": self.pause.until if self.pause else None,
            "since": self.pause.since if self.pause else None,
            "was_paused": self.before is not None,
        }


def require_automatic(config: ClusterConfig) -> None:
    if not config.automatic:
        raise Refused(
            "failover is manual in this cluster: the agents take no automatic action anyway",
            "maintenance mode is for clusters with failover: automatic",
        )


def pause(
    config: ClusterConfig, seconds: float | None, requested_by: str, events: EventLog
) -> PauseResult:
    """Put the cluster in maintenance (again: a new end replaces the old one)."""
    with _store(config) as store:
        return pause_in(store, seconds, requested_by, events)


def resume(config: ClusterConfig, requested_by: str, events: EventLog) -> PauseResult:
    """Leave maintenance mode; nothing to do when the cluster is not in it."""
    with _store(config) as store:
        return resume_in(store, requested_by, events)


def pause_in(
    store: Store, seconds: float | None, requested_by: str, events: EventLog
) -> PauseResult:
    now = time.time()
    until = None if seconds is None else now + seconds
    mine = Pause(reason=f"maintenance by {requested_by}", until=until, maintenance=True, since=now)
    found: list[Pause | None] = []

    def take(state: ClusterState) -> ClusterState:
        current = state.pause if state.pause is not None and state.pause.active(now) else None
        if current is not None and not current.maintenance:
            raise Refused(
                f"an operation runs and holds automatic failover ({current.reason})",
                "wait for it to finish, then pause",
            )
        found.append(current)
        return state.model_copy(update={"pause": mine})

    dcs_state.update(store, take)
    _record(events, "pause", requested_by, _describe(mine))
    return PauseResult(mine, found[-1] if found else None)


def resume_in(store: Store, requested_by: str, events: EventLog) -> PauseResult:
    found: list[Pause | None] = []

    def lift(state: ClusterState) -> ClusterState:
        current = state.maintenance()
        found.append(current)
        return state if current is None else state.model_copy(update={"pause": None})

    dcs_state.update(store, lift)
    before = found[-1] if found else None
    if before is not None:
        _record(events, "resume", requested_by, "automatic failover is back on")
    return PauseResult(None, before)


@contextlib.contextmanager
def _store(config: ClusterConfig) -> Iterator[Store]:
    require_automatic(config)
    store = open_store(config, timeout=5.0)
    try:
        yield store
    except StoreUnavailable as exc:
        raise Refused(
            f"the coordination store did not answer: {exc.message}",
            "maintenance mode lives in the store; check it (pgherd cluster show), then retry",
        ) from None
    finally:
        store.close()


def _describe(pause: Pause) -> str:
    if pause.until is None:
        return "no automatic action until pgherd cluster resume"
    end = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(pause.until))
    return f"no automatic action until {end} (or pgherd cluster resume)"


def _record(events: EventLog, operation: str, requested_by: str, reason: str) -> None:
    event = Event(operation=operation, node="cluster", requested_by=requested_by)
    events.save(event.finish(Outcome.SUCCEEDED, reason))
