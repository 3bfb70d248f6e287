"""The store's record of the permanent slots pgherd made, per node (dcs/state.py)."""

from __future__ import annotations

from pgherd.dcs import state as dcs_state
from pgherd.dcs.memory import MemoryStore
from pgherd.dcs.state import ClusterState, OwnedSlot


def test_ownership_is_recorded_per_node_and_forgotten() -> None:
    state = ClusterState().with_slot("cdc", "node2", True).with_slot("cdc", "node1", True)
    state = state.with_slot("arch", "node1", True).with_slot("arch", "node1", True)
    assert state.owned_slots == (
        OwnedSlot(name="arch", node="node1"),
        OwnedSlot(name="cdc", node="node1"),
        OwnedSlot(name="cdc", node="node2"),
    )
    assert state.slots_owned_by("node1") == {"arch", "cdc"}
    state = state.with_slot("cdc", "node1", False)
    assert state.slots_owned_by("node1") == {"arch"}
    assert state.slots_owned_by("node2") == {"cdc"}


def test_the_record_survives_in_the_store_beside_the_rest_of_the_state() -> None:
    store = MemoryStore()
    dcs_state.update(store, lambda s: s.model_copy(update={"last_leader": "node1"}))
    dcs_state.update(store, lambda s: s.with_slot("cdc", "node1", True))
    found = dcs_state.parse(store.config())
    assert found.last_leader == "node1"
    assert found.slots_owned_by("node1") == {"cdc"}


def test_a_state_without_owned_slots_does_not_name_them() -> None:
    """An older agent (a rolling upgrade) refuses a state with a field it does not know."""
    store = MemoryStore()
    dcs_state.update(store, lambda s: s.model_copy(update={"last_leader": "node1"}))
    found = store.config()
    assert found is not None
    assert "owned_slots" not in found.value
