"""Cluster events kept in the coordination store, when the cluster has one.

The store's history is append-only: an event written when its operation starts and again
when it ends (same id) is two entries; reading keeps the latest entry of each id, so
``cluster events`` shows the same rows as with the events table of issue 3
(:class:`pgherd.ops.events.AgentEventLog`), which clusters without a store keep using.
"""

from __future__ import annotations

from pydantic import ValidationError

from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.model.event_lite import latest_entries
from pgherd.model.events import Event


class StoreEventLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.unsaved: dict[str, Event] = {}

    def save(self, event: Event, primary: str | None = None) -> bool:
        try:
            for waiting in list(self.unsaved.values()):
                self.store.append_event(waiting.model_dump_json())
                self.unsaved.pop(waiting.id, None)
            self.store.append_event(event.model_dump_json())
        except StoreUnavailable:
            self.unsaved[event.id] = event
            return False
        self.unsaved.pop(event.id, None)
        return True

    def recent(self, limit: int = 50) -> list[Event]:
        # Each event has one or two entries: read enough to fill ``limit`` rows.
        entries = []
        for body in self.store.events(limit * 2):
            try:
                entries.append(Event.model_validate_json(body))
            except ValidationError:
                continue  # written by a newer pgherd: skip rather than fail the listing
        return latest_entries(entries, limit)
