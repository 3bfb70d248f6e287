"""A failover's event explains itself: the lost leader, its last renewal, every candidate
with its position and why it was or was not chosen (model/failover_report.py)."""

from __future__ import annotations

from pgherd.dcs.checkin import CHECKIN_KEEP, CheckIn, checkins, keep_for
from pgherd.dcs.memory import MemoryStore
from pgherd.model.failover_report import LostLeader, candidates, details, sentence
from pgherd.model.ha import Local, Peer, World, decide
from pgherd.model.ha_settings import Settings
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState, Role

S = Settings()
ME = Local("node2", PgState.RUNNING, Role.STANDBY, 1, Lsn(0x5000060), upstream="node1")


def world() -> World:
    return World(
        True,
        None,
        (
            Peer("node1", False),  # the lost leader
            Peer("node3", True, PgState.RUNNING, Role.STANDBY, 1, Lsn(0x5000000)),
            Peer("node4", True, PgState.RUNNING, Role.STANDBY, 1, Lsn(0x5000060), nofailover=True),
            Peer("node5", False),
        ),
        last_primary_position=Lsn(0x5000060),
        last_leader="node1",
    )


def test_the_report_agrees_with_the_decision_and_says_why_for_each() -> None:
    w = world()
    assert [a.do.value for a in decide(S, ME, w)] == ["acquire_lease", "promote"]
    found = {c.name: c for c in candidates(S, ME, w)}
    assert "node1" not in found  # the lost leader is not a candidate
    assert found["node2"].chosen and found["node2"].position == "0/5000060"
    assert not found["node3"].chosen
    assert "node2 is at 0/5000060, at least as far as my 0/5000000" in found["node3"].why
    assert found["node4"].why == "I am tagged nofailover"
    assert found["node5"].why == "its agent did not answer"
    text = sentence(LostLeader("node1", 1_000_000.0), list(found.values()), 1_000_003.4)
    assert text.startswith(
        "node1 was lost (its lease last renewed at 13:46:40.000 UTC, 3.4 s before)"
    )
    assert "node2 at 0/5000060 chosen: the most advanced healthy candidate" in text
    assert "node3 at 0/5000000 not chosen (node2 is at 0/5000060" in text
    facts = details(LostLeader("node1", 1_000_000.0), list(found.values()))
    assert facts["lost_leader"] == "node1"
    assert facts["lease_last_renewed"].startswith("1970-01-12T13:46:40")
    assert "node2@0/5000060 (chosen)" in facts["candidates"]


def test_a_lost_leader_with_no_check_in_says_so() -> None:
    text = sentence(LostLeader("node1", None), [], 0.0)
    assert text == "node1 was lost (no check-in of it as leader in the store)"


def test_an_unreachable_members_last_check_in_stays_in_the_store_for_a_day() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    checkin = CheckIn(name="node3", api_url="http://x", at=1000.0)
    store.touch_member("node3", checkin.model_dump_json(), keep_for(3.0))
    now[0] += 600  # long past 10 leases: it was "never" before
    found = checkins(store.snapshot().members)
    assert found["node3"].at == 1000.0
    now[0] += CHECKIN_KEEP
    assert "node3" not in checkins(store.snapshot().members)
