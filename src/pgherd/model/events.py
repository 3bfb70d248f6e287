"""Cluster events: what pgherd did, to which node, who asked, when, and how it ended.

An event is written when an operation starts (outcome ``running``) and rewritten when it
ends, under the same id, so an operation that was interrupted still shows up.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

from pydantic import Field

# pydantic-free, for `cluster events` (model/event_lite.py); found here as always.
from pgherd.model.event_lite import AUDIT_PREFIXES as AUDIT_PREFIXES
from pgherd.model.event_lite import Outcome as Outcome
from pgherd.model.event_lite import is_audit as is_audit
from pgherd.model.status import Frozen

# Every kind of event pgherd records: operators' operations, the HA loop's decisions
# (requested by pgherd-agent@NODE) and maintenance mode. The console's filter lists them.
OPERATIONS = (
    "switchover",
    "promote",
    "follow",
    "rejoin",
    "failover",
    "demote",
    "restart",
    "release-lease",
    "pause",
    "resume",
)


class Event(Frozen):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    operation: str  # switchover, promote, follow, rejoin
    node: str  # the node the operation is about (the target)
    requested_by: str = ""
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.RUNNING
    reason: str = ""
    details: dict[str, str] = Field(default_factory=dict)

    def finish(self, outcome: Outcome, reason: str, **details: object) -> Event:
        more = {k: str(v) for k, v in details.items() if v is not None}
        return self.model_copy(
            update={
                "finished_at": datetime.now(UTC),
                "outcome": outcome,
                "reason": reason,
                "details": self.details | more,
            }
        )

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class EventLog(Protocol):
    """Where operations record their events: the primary's ``pgherd`` database through
    its agent (``ops.events.AgentEventLog``) or the coordination store
    (``dcs.store_events.StoreEventLog``)."""

    def save(self, event: Event, primary: str | None = None) -> bool:
        """Write (or rewrite, same id) ``event``; ``primary`` names the node to write it on
        when the caller knows it. False when no node could take it (nothing raised: an
        operation never fails because its history could not be written)."""
        ...

    def recent(self, limit: int = 50) -> list[Event]:
        """The latest ``limit`` events, oldest first."""
        ...
