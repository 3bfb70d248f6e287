"""Whether a node may leave the cluster and what that takes (model/remove.py)."""

from __future__ import annotations

from pgherd.model import remove
from pgherd.model.status import Desired, NodeStatus, PgState, Role, Slot, unreachable


def node(name: str, role: Role = Role.STANDBY, *slots: tuple[str, bool]) -> NodeStatus:
    return NodeStatus(
        name=name,
        state=PgState.RUNNING,
        desired=Desired.RUNNING,
        role=role,
        slots=tuple(
            Slot(
                name=s,
                slot_type="physical",
                active=active,
                restart_lsn=None,
                wal_status=None,
                retained_bytes=None,
            )
            for s, active in slots
        ),
    )


PRIMARY = node("node1", Role.PRIMARY, ("node2", True), ("node3", False))


def test_a_stopped_node_loses_its_slots_and_member_key() -> None:
    statuses = [PRIMARY, node("node2", Role.STANDBY, ("node3", False)), unreachable("node3", "x")]
    plan = remove.plan("node3", statuses, configured=True, leader="node1", member=True)
    assert plan.refused is None
    assert plan.drop_slot_on == ("node1", "node2")
    assert plan.remove_member and plan.still_configured
    assert plan.warnings == (
        "pgherd.yaml still lists node3: remove it on every host, then pgherd agent reload "
        "(a primary creates slots for the nodes it lists)",
    )


def test_a_node_already_gone_from_the_config_is_found_by_name() -> None:
    plan = remove.plan("node3", [PRIMARY, node("node2")], configured=False, member=False)
    assert plan.refused is None and plan.drop_slot_on == ("node1",)
    assert plan.warnings == ()


def test_the_leader_and_the_primary_are_refused() -> None:
    leader = remove.plan("node1", [PRIMARY], configured=True, leader="node1")
    assert leader.refused == "node1 holds the leader lease"
    assert leader.hint.startswith("switch over first")
    primary = remove.plan("node1", [PRIMARY], configured=True)
    assert primary.refused == "node1 runs as the primary"


def test_a_node_whose_agent_runs_is_refused() -> None:
    plan = remove.plan("node2", [PRIMARY, node("node2")], configured=True, leader="node1")
    assert plan.refused == "the agent of node2 still runs (PostgreSQL running)"
    assert plan.hint.startswith("stop its PostgreSQL (pgherd node stop node2), then its agent")


def test_a_node_that_still_streams_is_refused() -> None:
    plan = remove.plan("node2", [PRIMARY], configured=False)
    assert plan.refused == "node2 still streams from node1 (its slot is active)"


def test_a_name_nothing_is_left_of_is_refused() -> None:
    plan = remove.plan("node9", [PRIMARY], configured=False)
    assert plan.refused == "no node keeps a slot for node9 and the store has no member node9"


def test_an_unreachable_holder_is_a_warning() -> None:
    statuses = [PRIMARY, unreachable("node2", "x"), unreachable("node3", "x")]
    plan = remove.plan("node3", statuses, configured=False, member=True)
    assert plan.drop_slot_on == ("node1",)
    assert plan.warnings == (
        "node2 did not answer: a slot for node3 there, if any, stays (run this again later)",
    )
