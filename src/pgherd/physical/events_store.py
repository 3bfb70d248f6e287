"""Cluster events kept in the primary's ``pgherd`` database (see pg/events.py)."""

from __future__ import annotations

from pgherd.errors import Refused
from pgherd.model.events import Event
from pgherd.pg import events, replication
from pgherd.pg.local_node import LocalNode


def save(local: LocalNode, event: Event) -> None:
    with local.instance.connect() as conn:
        if replication.in_recovery(conn):
            raise Refused(
                f"{local.node.name} is a standby: events are written on the primary",
                "send the event to the primary's agent",
            )
        events.create_database(conn)
    with local.instance.connect(events.DATABASE) as conn:
        events.create_table(conn)
        events.save(conn, event)


def recent(local: LocalNode, limit: int) -> list[Event]:
    with local.instance.connect() as conn:
        if not events.database_exists(conn):
            return []
    with local.instance.connect(events.DATABASE) as conn:
        if not events.table_exists(conn):
            return []
        return events.recent(conn, limit)
