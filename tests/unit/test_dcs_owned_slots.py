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
    """Defaults are left out of what is written: smaller, and an older agent (a rolling
    upgrade) sees no field it does not know while no slot is owned."""
    store = MemoryStore()
    dcs_state.update(store, lambda s: s.model_copy(update={"last_leader": "node1"}))
    found = store.config()
    assert found is not None
    assert "owned_slots" not in found.value


def test_a_field_from_a_newer_pgherd_leaves_the_rest_of_the_state_readable() -> None:
    """A rolling upgrade: the pause and the synchronous set written beside a field this
    version does not know are still read (as empty, this agent would forget who may be
    promoted)."""
    store = MemoryStore()
    value = (
        '{"sync": {"leader": "node1", "members": ["node2"], "quorum": 1},'
        ' "last_leader": "node1", "added_later": {"x": 1}}'
    )
    assert store.set_config(value, 0)
    found = dcs_state.parse(store.config())
    assert found.sync is not None and found.sync.members == ("node2",)
    assert found.last_leader == "node1"
