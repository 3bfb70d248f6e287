"""The counting store: every call through it counted by kind, behaviour unchanged; the
agent's store handle counts what the loop, the lease and the fence ask."""

from __future__ import annotations

from pathlib import Path

from pgherd.dcs.base import Store
from pgherd.dcs.counting import CountingStore
from pgherd.dcs.memory import MemoryStore
from pgherd.ha.loop import StoreHandle
from pgherd.lab import layout


def test_calls_are_counted_by_kind_and_answered_by_the_store() -> None:
    counted: Store = CountingStore(MemoryStore())
    assert counted.acquire_leader("node1", 3.0)
    assert not counted.acquire_leader("node2", 3.0)
    assert counted.renew_leader("node1", 3.0)
    counted.touch_member("node1", "{}", 30)
    snap = counted.snapshot()
    assert snap.leader is not None and snap.leader.name == "node1"
    assert [m.name for m in counted.members()] == ["node1"]
    assert counted.set_config("{}", 0)
    counted.append_event("e")
    assert counted.events() == ("e",)
    assert isinstance(counted, CountingStore)
    assert counted.counts() == {
        "acquire_leader": 2,
        "renew_leader": 1,
        "touch_member": 1,
        "snapshot": 1,
        "members": 1,
        "set_config": 1,
        "append_event": 1,
        "events": 1,
    }


def test_the_agents_store_handle_counts_once_opened(tmp_path: Path) -> None:
    config = layout.lab_config(
        tmp_path, layout.LabShape(3, 5440, "postgres", None, failover="automatic")
    )
    handle = StoreHandle(config)
    assert handle.calls() == {}
    handle().snapshot()
    handle().touch_member("node1", "{}", 30)
    handle().snapshot()
    assert handle.calls() == {"snapshot": 2, "touch_member": 1}
    handle().close()
