"""cluster show's view of automatic failover, read without pydantic from documents the
agents' own models (CheckIn, ClusterState) wrote to a real sqlite store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pgherd import config
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Member, Versioned
from pgherd.dcs.checkin import CheckIn
from pgherd.dcs.sqlite import SqliteStore
from pgherd.lab import layout
from pgherd.model.status import PgState, Role
from pgherd.ops import ha_view


@pytest.fixture
def lab(tmp_path: Path) -> config.ClusterConfig:
    made = layout.lab_config(
        tmp_path,
        layout.LabShape(3, 5440, "postgres", None, failover="automatic", sync=True, witness=True),
    )
    assert made.ha is not None
    return made


def checkin(name: str, role: Role, at: float, kind: str = "data") -> str:
    return CheckIn(
        name=name,
        kind="witness" if kind == "witness" else "data",
        api_url="http://127.0.0.1:1",
        state=PgState.RUNNING,
        role=role,
        leader=role is Role.PRIMARY,
        decision=f"{name}: all is well",
        at=at,
    ).model_dump_json()


def test_leader_checkins_pause_and_synchronous_set(lab: config.ClusterConfig) -> None:
    assert lab.ha is not None
    store = SqliteStore(lab.ha.dcs.sqlite, cluster=lab.cluster)  # type: ignore[union-attr]
    now = time.time()
    assert store.acquire_leader("node1", 3.0)
    store.touch_member("node1", checkin("node1", Role.PRIMARY, now - 0.5), 30)
    store.touch_member("node2", checkin("node2", Role.STANDBY, now - 1.5), 30)
    store.touch_member("node3", "{not json", 30)
    store.touch_member("witness", checkin("witness", Role.UNKNOWN, now - 2, "witness"), 30)
    state = dcs_state.ClusterState(
        pause=dcs_state.Pause(reason="switchover to node2 by root@host", until=now + 60),
        sync=dcs_state.SyncState(leader="node1", members=("node2", "node3"), quorum=1),
    )
    assert store.set_config(state.model_dump_json(), 0)
    store.close()

    seen = ha_view.read(lab)
    assert seen is not None and seen.store_ok
    assert seen.leader == "node1"
    assert seen.paused == "switchover to node2 by root@host"
    assert seen.synchronous == ("node2", "node3")
    members = {m.name: m for m in seen.members}
    assert (members["node1"].role, members["node1"].leader) == ("primary", True)
    assert (members["node2"].role, members["node2"].leader) == ("standby", False)
    assert members["node2"].decision == "node2: all is well"
    assert members["node2"].checked_in_ago == pytest.approx(1.5, abs=0.5)
    assert members["node3"].checked_in_ago is None  # unreadable: as if absent
    assert (members["witness"].kind, members["witness"].role) == ("witness", "witness")
    assert seen.problems() == ["automatic failover is paused: switchover to node2 by root@host"]
    from_lite = ha_view.read(lab.lite())  # the quick commands' form of the config
    assert from_lite is not None
    assert (from_lite.leader, from_lite.paused) == (seen.leader, seen.paused)


def test_state_documents_as_the_store_module_reads_them() -> None:
    now = 1000.0
    for state in (
        dcs_state.ClusterState(),
        dcs_state.ClusterState(pause=dcs_state.Pause(reason="r", until=now - 1)),
        dcs_state.ClusterState(pause=dcs_state.Pause(reason="r", until=now + 1)),
        dcs_state.ClusterState(sync=dcs_state.SyncState(leader="a", members=("b",), quorum=1)),
        dcs_state.ClusterState(sync=dcs_state.SyncState(leader="a")),
    ):
        document = Versioned(state.model_dump_json(), 1)
        parsed = dcs_state.parse(document)
        seen = ha_view.seen_state(document, now)
        assert seen.paused == parsed.paused(now)
        assert seen.synchronous == (parsed.sync.members if parsed.sync else None)
    for unreadable in (None, Versioned("", 0), Versioned("[1]", 3), Versioned("{bad", 3)):
        assert ha_view.seen_state(unreadable, now) == ha_view.SeenState()


def test_checkins_as_the_store_module_reads_them() -> None:
    written = checkin("node2", Role.STANDBY, 1234.5)
    seen = ha_view.seen_checkins((Member("node2", written), Member("x", '{"at": "soon"}')))
    assert set(seen) == {"node2"}
    parsed = CheckIn.model_validate_json(written)
    assert seen["node2"] == ha_view.SeenCheckIn(str(parsed.role), parsed.decision, parsed.at)
