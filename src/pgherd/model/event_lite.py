"""Cluster events as ``pgherd cluster events`` reads them: dataclasses, no pydantic.

:class:`pgherd.model.events.Event` (pydantic) is what operations write; the quick command
reads the same documents into :class:`LiteEvent` (same fields, names and types;
tests/unit/test_event_lite.py reads what Event wrote and compares). What both readers of
an event log decide alike is here too: which entry of an event counts (the latest), and
which nodes to ask for the events table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pgherd.model.cluster import StatusReading, running_primaries
from pgherd.model.json_values import array, mapping, optional, text
from pgherd.model.status_lite import PgState


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    REFUSED = "refused"  # a check failed; nothing changed
    ABORTED = "aborted"  # started, then undone; nothing changed
    FAILED = "failed"  # a step failed; the reason says what state it left


@dataclass(frozen=True)
class LiteEvent:
    """:class:`pgherd.model.events.Event`."""

    id: str
    operation: str
    node: str
    requested_by: str
    started_at: datetime
    finished_at: datetime | None
    outcome: Outcome
    reason: str
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """As ``Event.model_dump(mode="json")`` writes it."""
        return {
            "id": self.id,
            "operation": self.operation,
            "node": self.node,
            "requested_by": self.requested_by,
            "started_at": _iso(self.started_at),
            "finished_at": None if self.finished_at is None else _iso(self.finished_at),
            "outcome": str(self.outcome),
            "reason": self.reason,
            "details": dict(self.details),
        }


def read_event(doc: object) -> LiteEvent:
    """An event's decoded JSON; ValueError when it is not an event."""
    try:
        data = mapping(doc)
        details = mapping(data.get("details", {}))
        return LiteEvent(
            id=text(data["id"]),
            operation=text(data["operation"]),
            node=text(data["node"]),
            requested_by=text(data.get("requested_by", "")),
            started_at=_time(data["started_at"]),
            finished_at=optional(data, "finished_at", _time),
            outcome=Outcome(data.get("outcome", Outcome.RUNNING)),
            reason=text(data.get("reason", "")),
            details={text(k): text(v) for k, v in details.items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"not an event: {what}") from None


def read_events(doc: object) -> list[LiteEvent]:
    """``GET /events``'s decoded JSON (a list of events); ValueError when it is not."""
    try:
        rows = array(doc)
    except TypeError as exc:
        raise ValueError(f"not a list of events: {exc}") from None
    return [read_event(row) for row in rows]


# The audit trail (every acting API call, console logins: api/audit.py, ha/audit.py)
# shares the event log with the operations; these prefixes tell its records apart.
AUDIT_PREFIXES = ("api ", "console ")


class _Operation(Protocol):
    @property
    def operation(self) -> str: ...


def is_audit(event: _Operation) -> bool:
    """A record of the audit trail (an API call, a console login), not an operation."""
    return event.operation.startswith(AUDIT_PREFIXES)


class _Entry(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...


EntryT = TypeVar("EntryT", bound=_Entry)


def latest_entries(entries: Iterable[EntryT], limit: int) -> list[EntryT]:
    """An append-only log's events: the last entry of each id (an event is written when its
    operation starts and again when it ends), oldest first, the latest ``limit``."""
    latest: dict[str, EntryT] = {}
    for entry in entries:
        latest.pop(entry.id, None)
        latest[entry.id] = entry
    return sorted(latest.values(), key=lambda e: e.started_at)[-limit:]


def nodes_to_ask(statuses: Sequence[StatusReading]) -> list[str]:
    """Where to read the events table: the primary first, then any running node (a standby
    has the table by replication, maybe a moment behind)."""
    primaries = running_primaries(statuses)
    return [p.name for p in primaries] + [
        s.name for s in statuses if s.state is PgState.RUNNING and s not in primaries
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _time(value: object) -> datetime:
    return datetime.fromisoformat(text(value))
