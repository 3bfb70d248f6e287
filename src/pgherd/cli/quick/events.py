"""``pgherd cluster events [--audit]``: what pgherd did to the cluster, from the
coordination store when the cluster has one, else from the events table through the
primary's agent (the same two places ops/events.py writes them). The audit trail (every
acting API call and console login) shares that log: ``--audit`` shows its records, the
default the operations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from pgherd.cli.output import print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Column, Printer, Span, Table
from pgherd.clients.agent import AgentClient, lite_statuses
from pgherd.config_lite import LiteConfig
from pgherd.dcs.open import open_store
from pgherd.errors import AgentError, AgentUnreachable, PgherdError, Refused
from pgherd.model.event_lite import (
    LiteEvent,
    is_audit,
    latest_entries,
    nodes_to_ask,
    read_event,
    read_events,
)
from pgherd.model.readable import human_seconds

OUTCOME_STYLE = {"succeeded": "green", "running": "yellow", "aborted": "yellow"}


# The most entries read to find ``limit`` of one kind (the API's own limit on /events).
MOST_READ = 10_000


def run(limit: int, audit: bool, config_file: Path | None, as_json: bool) -> int:
    config = load_config(config_file)
    # Audit records share the log: read past them (up to the API's limit) for the rest.
    everything = recent(config, min(limit * 20, MOST_READ))
    found = [e for e in everything if is_audit(e) == audit][-limit:]
    if as_json:
        print_json([e.as_json() for e in found])
        return 0
    out = Printer()
    if not found:
        out.line("no events yet")
        return 0
    headers = ("Started", "Operation", "Node", "Outcome", "Took", "By")
    columns = [Column(h, right=h == "Took") for h in headers] + [Column("Reason", stretch=True)]
    table = Table(f"cluster {config.cluster}: events", columns)
    for event in found:
        table.add_row(
            event.started_at.astimezone().strftime("%m-%d %H:%M:%S"),
            event.operation,
            event.node,
            Span(str(event.outcome), OUTCOME_STYLE.get(str(event.outcome), "red")),
            human_seconds(event.seconds),
            event.requested_by,
            event.reason,
        )
    out.table(table)
    return 0


def recent(config: LiteConfig, limit: int) -> list[LiteEvent]:
    """The latest ``limit`` events, oldest first."""
    if config.ha is not None:
        store = open_store(config, timeout=5.0, quick=True)
        try:
            bodies = store.events(limit * 2)  # an event has one or two entries
        finally:
            store.close()
        return latest_entries(_readable(bodies), limit)
    # Reading the events is a read, like /status: open, or with the viewer's token under
    # api.auth_reads (load_config chose it).
    # Named as the config names them (an agent answering with another name serves some
    # other node: its status still counts under this name), as ops/events.py does.
    statuses = [
        s if s.name == n.name else dataclasses.replace(s, name=n.name)
        for n, s in zip(config.nodes, lite_statuses(config.nodes), strict=True)
    ]
    last: PgherdError | None = None
    for name in nodes_to_ask(statuses):
        client = AgentClient(config.node(name))
        try:
            return read_events(client.call("GET", "/events", params={"limit": str(limit)}))
        except ValueError as exc:
            last = AgentError(f"{name}: the events could not be read ({exc})")
        except (AgentUnreachable, AgentError, Refused) as exc:
            last = exc
    if last is not None:
        raise last
    raise Refused(
        "no node of the cluster runs, so no event can be read",
        "start one: pgherd node start NODE",
    )


def _readable(bodies: Sequence[str]) -> list[LiteEvent]:
    found = []
    for body in bodies:
        try:
            found.append(read_event(json.loads(body)))
        except ValueError:
            continue  # written by a newer pgherd: skip rather than fail the listing
    return found
