"""``cluster events`` reads events without pydantic as Event wrote them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pgherd.model.event_lite import (
    LiteEvent,
    latest_entries,
    nodes_to_ask,
    read_event,
    read_events,
)
from pgherd.model.events import Event, Outcome
from tests.unit import nodes

START = datetime(2026, 12, 6, 8, 0, 0, 250000, tzinfo=UTC)

EVENTS = {
    "running": Event(operation="switchover", node="node2", started_at=START),
    "finished": Event(
        operation="switchover", node="node2", requested_by="root@host", started_at=START
    ).finish(Outcome.SUCCEEDED, "node2 is the primary", took="0.3 s", old="node1"),
    "whole second, another zone": Event(
        operation="promote",
        node="node3",
        started_at=datetime(2026, 12, 6, 9, 0, tzinfo=timezone(timedelta(hours=2))),
        finished_at=datetime(2026, 12, 6, 9, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        outcome=Outcome.REFUSED,
        reason="a primary is running",
    ),
}


@pytest.mark.parametrize("name", list(EVENTS))
def test_an_event_reads_and_writes_as_event_does(name: str) -> None:
    event = EVENTS[name]
    written = event.model_dump(mode="json")
    lite = read_event(json.loads(json.dumps(written)))
    for field in dataclasses.fields(lite):
        assert getattr(lite, field.name) == getattr(event, field.name), field.name
    assert lite.seconds == event.seconds
    assert lite.as_json() == written


def test_every_field_is_read() -> None:
    assert {f.name for f in dataclasses.fields(LiteEvent)} == set(Event.model_fields)


@pytest.mark.parametrize(
    "document",
    [
        {"operation": "x", "node": "n", "started_at": "2026-12-06T08:00:00Z"},  # no id
        {"id": "1", "operation": "x", "node": "n", "started_at": "soon"},
        {"id": "1", "operation": "x", "node": "n", "started_at": "2026-12-06T08:00:00Z",
         "outcome": "exploded"},
        {"id": "1", "operation": "x", "node": "n", "started_at": "2026-12-06T08:00:00Z",
         "details": {"a": 1}},
        "not an object",
    ],
)  # fmt: skip
def test_what_is_not_an_event(document: object) -> None:
    with pytest.raises(ValueError, match=r"^not an event: "):
        read_event(document)


def test_a_list_of_events() -> None:
    rows = [e.model_dump(mode="json") for e in EVENTS.values()]
    assert [e.id for e in read_events(rows)] == [e.id for e in EVENTS.values()]
    with pytest.raises(ValueError, match=r"^not a list of events: "):
        read_events({"error": "x"})


def test_the_latest_entry_of_each_event_oldest_first() -> None:
    first = Event(operation="a", node="n", started_at=START)
    second = Event(operation="b", node="n", started_at=START + timedelta(seconds=1))
    third = Event(operation="c", node="n", started_at=START + timedelta(seconds=2))
    done = first.finish(Outcome.SUCCEEDED, "ok")
    log = [first, second, done, third]
    assert latest_entries(log, 10) == [done, second, third]
    assert latest_entries(log, 2) == [second, third]


def test_the_primary_is_asked_first_then_running_nodes() -> None:
    found = [
        nodes.standby("node2"),
        nodes.stopped(nodes.standby("node3")),
        nodes.primary("node1"),
        nodes.unreachable("node4"),
    ]
    assert nodes_to_ask(found) == ["node1", "node2"]
    assert nodes_to_ask([nodes.stopped(nodes.standby("node3"))]) == []
