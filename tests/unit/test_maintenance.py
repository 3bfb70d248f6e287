"""Maintenance mode: what the agents decide while the cluster is paused, the pause in the
store (its end, operations under it), and durations as operators type them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgherd.dcs import state as dcs_state
from pgherd.dcs.memory import MemoryStore
from pgherd.dcs.state import ClusterState, Pause
from pgherd.errors import InvalidInput, Refused
from pgherd.model.duration import human_duration, parse_duration
from pgherd.model.events import Event
from pgherd.model.ha import Do, Local, World, decide
from pgherd.model.ha_settings import Settings
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState, Role
from pgherd.ops import maintenance

S = Settings()
PRIMARY = Local("node1", PgState.RUNNING, Role.PRIMARY, 1, Lsn(5000), holds_lease=True)
STANDBY = Local(
    "node2", PgState.RUNNING, Role.STANDBY, 1, Lsn(5000), upstream="node1", streaming=True
)
WHY = "maintenance by alice@host"


def paused(leader: str | None) -> World:
    return World(True, leader, paused=WHY, maintenance=True)


@pytest.mark.parametrize(
    ("me", "world", "expected", "says"),
    [
        (PRIMARY, paused("node1"), [Do.RENEW_LEASE], "maintenance mode"),
        # a crashed leader is not restarted in place
        (
            replace(PRIMARY, pg=PgState.CRASHED, crashed_for=1.0),
            paused("node1"),
            [Do.RENEW_LEASE],
            "keeping my lease",
        ),
        # the primary's agent died: its lease expired, nobody promotes
        (STANDBY, paused(None), [Do.WAIT], "no automatic action"),
        # a crashed standby stays down
        (
            replace(STANDBY, pg=PgState.CRASHED, crashed_for=1.0),
            paused("node1"),
            [Do.WAIT],
            "no automatic action",
        ),
        # a diverged standby is not rewound, a standby elsewhere not re-pointed
        (replace(STANDBY, diverged_from_leader=True), paused("node1"), [Do.WAIT], "maintenance"),
        (replace(STANDBY, upstream="node3"), paused("node1"), [Do.WAIT], "maintenance"),
        # an old primary that comes back is not rejoined
        (
            replace(PRIMARY, pg=PgState.STOPPED, crashed_for=3.0, holds_lease=False),
            paused("node2"),
            [Do.WAIT],
            "no automatic action",
        ),
        # a switchover under maintenance hands the lease over: the new primary takes it
        (replace(PRIMARY, holds_lease=False), paused(None), [Do.ACQUIRE_LEASE, Do.WAIT], "free"),
    ],
)
def test_in_maintenance_the_agents_take_no_automatic_action(
    me: Local, world: World, expected: list[Do], says: str
) -> None:
    actions = decide(S, me, world)
    assert [a.do for a in actions] == expected
    assert says in " / ".join(a.reason for a in actions)


def test_the_same_world_without_maintenance_fails_over() -> None:
    assert Do.PROMOTE in [a.do for a in decide(S, STANDBY, World(True, None))]


class Events:
    def __init__(self) -> None:
        self.saved: list[Event] = []

    def save(self, event: Event, primary: str | None = None) -> bool:
        self.saved.append(event)
        return True

    def recent(self, limit: int = 50) -> list[Event]:
        return self.saved[-limit:]


def read(store: MemoryStore) -> ClusterState:
    return dcs_state.parse(store.config())


def test_pause_and_resume_in_the_store_with_their_events() -> None:
    store, events = MemoryStore(), Events()
    result = maintenance.pause_in(store, None, "alice@host", events)
    assert result.pause is not None and result.before is None
    state = read(store)
    assert state.maintenance() is not None
    assert state.paused() == "maintenance by alice@host"
    assert state.maintenance(now=1e12) is not None  # no end: until resumed
    again = maintenance.resume_in(store, "bob@host", events)
    assert again.before is not None
    assert read(store).paused() is None
    assert [(e.operation, e.requested_by) for e in events.saved] == [
        ("pause", "alice@host"),
        ("resume", "bob@host"),
    ]
    nothing = maintenance.resume_in(store, "bob@host", events)
    assert nothing.before is None and len(events.saved) == 2


def test_a_pause_with_a_duration_ends_by_itself() -> None:
    store = MemoryStore()
    result = maintenance.pause_in(store, 600, "alice@host", Events())
    assert result.pause is not None and result.pause.until is not None
    state = read(store)
    assert state.maintenance(now=result.pause.until - 1) is not None
    assert state.maintenance(now=result.pause.until + 1) is None
    assert state.paused(now=result.pause.until + 1) is None


def test_maintenance_waits_for_a_running_operation_and_operations_run_under_it() -> None:
    store = MemoryStore()
    operation = Pause(reason="switchover to node2 by root@h", until=4e9)
    dcs_state.update(store, lambda s: s.model_copy(update={"pause": operation}))
    with pytest.raises(Refused, match="an operation runs"):
        maintenance.pause_in(store, None, "alice@host", Events())
    dcs_state.update(store, lambda s: s.model_copy(update={"pause": None}))
    maintenance.pause_in(store, None, "alice@host", Events())
    assert read(store).maintenance() is not None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "0", "-5m", "m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInput, match="--for"):
        parse_duration(text)


def test_human_duration() -> None:
    assert human_duration(42) == "42s"
    assert human_duration(5400) == "1h30m"
    assert human_duration(90061) == "1d1h1m"
