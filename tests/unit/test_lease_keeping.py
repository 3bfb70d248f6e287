"""When the lease is renewed on the HA loop's behalf (model/lease_keeping.py), and the
keeper that does it (ha/lease_keeper.py) with a real executor, fence and store on a fake
clock; then a whole HA loop whose server stops answering mid-cycle, in real time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pgherd.dcs.base import StoreUnavailable
from pgherd.dcs.memory import MemoryStore
from pgherd.ha import observe
from pgherd.ha.execute import Executor
from pgherd.ha.fence import Fence
from pgherd.ha.lease_keeper import LeaseKeeper
from pgherd.ha.loop import HaLoop
from pgherd.ha.supervisor import Supervisor
from pgherd.lab import layout
from pgherd.model.ha import Action, Do, Peer
from pgherd.model.ha_settings import Settings
from pgherd.model.lease_keeping import Mandate, after_deciding, overdue_after, renewal_due
from pgherd.model.status import PgState, Role
from pgherd.pg.local_node import LocalNode
from tests.unit.fake_ha import FakeClock, executor_on

LAB = Path("/var/tmp/pgherd-lab")
S = Settings()  # ttl 3, loop_wait 0.5, retry_timeout 1, primary_start_timeout 10
RENEW = (Action(Do.RENEW_LEASE, "keep it"),)
ACQUIRE = (Action(Do.ACQUIRE_LEASE, "take it"), Action(Do.PROMOTE, "promote"))
DEMOTE = (Action(Do.DEMOTE, "another holds it", target="node2"),)
WAIT = (Action(Do.WAIT, "nothing"),)
OLD = Mandate(until=105.0, arm=True)


@pytest.mark.parametrize(
    ("current", "actions", "answered", "expected"),
    [
        (None, RENEW, True, Mandate(until=110.0, arm=True)),  # a healthy primary's cycle
        (OLD, RENEW, True, Mandate(until=110.0, arm=True)),  # lengthened by each such cycle
        (None, ACQUIRE, True, Mandate(until=110.0, arm=True)),  # a promotion's, too
        (OLD, RENEW, False, OLD),  # its server did not answer: kept, not lengthened
        (None, RENEW, False, None),  # nor begun
        (OLD, DEMOTE, True, None),  # any other decision ends it before it is carried out
        (OLD, WAIT, False, None),
    ],
)
def test_a_mandate_comes_from_a_cycle_that_kept_the_lease_with_its_server_answering(
    current: Mandate | None,
    actions: tuple[Action, ...],
    answered: bool,
    expected: Mandate | None,
) -> None:
    assert after_deciding(S, current, actions, answered, arm=True, now=100.0) == expected


def test_the_loop_counts_as_overdue_only_past_a_healthy_cycle_and_with_room_to_renew() -> None:
    """Later than a healthy loop renews (every loop_wait), and early enough that a renewal
    taking the store's whole retry_timeout still lands inside the ttl."""
    for s in (S, Settings(ttl=30, loop_wait=10, retry_timeout=10)):
        assert s.loop_wait < overdue_after(s)
        assert overdue_after(s) + s.retry_timeout < s.ttl


@pytest.mark.parametrize(
    ("mandate", "renewed_at", "lease_until", "now", "due"),
    [
        (OLD, 100.0, 103.0, 100.9, False),  # the loop may still come to it
        (OLD, 100.0, 103.0, 101.0, True),  # overdue: renew for it
        (OLD, 100.0, 103.0, 102.9, True),
        (None, 100.0, 103.0, 101.5, False),  # no mandate
        (OLD, 100.0, 103.0, 103.0, False),  # its own reckoning ran out: the fence's turn
        (OLD, 100.0, None, 101.5, False),  # a lease it no longer holds
        (Mandate(until=101.2, arm=True), 100.0, 103.0, 101.5, False),  # the mandate ended
    ],
)
def test_a_renewal_is_due_only_within_the_mandate_and_the_lease_believed_held(
    mandate: Mandate | None, renewed_at: float, lease_until: float | None, now: float, due: bool
) -> None:
    assert renewal_due(S, mandate, renewed_at, lease_until, now) is due


# ---- the keeper, on a fake clock ----------------------------------------------------


def _keeping(clock: FakeClock, store: MemoryStore) -> tuple[Executor, Fence, LeaseKeeper]:
    """node1 took the lease at the clock's time and its cycle decided to keep it."""
    fence = Fence(lambda: None, clock=clock.monotonic)
    executor = executor_on(clock, store, fence)
    keeper = LeaseKeeper(executor)
    assert executor.perform(Action(Do.ACQUIRE_LEASE, "take it"), primary_ahead=True)
    keeper.decided(RENEW, answered=True, arm=True)
    return executor, fence, keeper


class _StoreGoneAway(MemoryStore):
    down = False

    def renew_leader(self, name: str, ttl: float) -> bool:
        if self.down:
            raise StoreUnavailable("no etcd endpoint answered: 127.0.0.1: ReadTimeout")
        return super().renew_leader(name, ttl)


def test_the_keeper_renews_for_a_held_up_cycle_until_its_mandate_ends() -> None:
    clock = FakeClock(100.0)
    store = _StoreGoneAway(clock=clock.monotonic)
    executor, fence, keeper = _keeping(clock, store)  # a mandate until 110
    clock.at = 100.9
    assert not keeper.tick()  # the loop is not late yet
    clock.at = 101.0
    assert keeper.tick()
    assert executor.lease.valid_until == 104.0 and fence.until == 104.0
    assert executor.least_left == pytest.approx(2.0)
    # Held up for good: renewed every 1 s of the mandate, and not after it.
    renewed = 1
    while clock.at < 112.0:
        clock.at = round(clock.at + 0.125, 3)
        renewed += keeper.tick()
    assert renewed == 9  # at 101, 102, … 109: every second of the mandate (until 110)
    assert executor.lease.valid_until == pytest.approx(112.0)  # the last one, at 109
    assert fence.until == pytest.approx(112.0)  # fenced a ttl after the mandate, at most
    assert keeper.renewals == 9


def mandate_of(keeper: LeaseKeeper) -> Mandate | None:
    """Read afresh (a tick changes it; mypy would keep an earlier narrowing)."""
    return keeper.mandate


def test_the_keeper_tries_a_silent_store_again_and_gives_up_a_lost_lease() -> None:
    clock = FakeClock(100.0)
    store = _StoreGoneAway(clock=clock.monotonic)
    executor, _fence, keeper = _keeping(clock, store)
    store.down = True
    clock.at = 101.0
    assert not keeper.tick()  # logged; tried again at the next tick
    assert mandate_of(keeper) == Mandate(until=110.0, arm=True)
    store.down = False
    clock.at = 101.125
    assert keeper.tick()
    store.release_leader("node1")
    assert store.acquire_leader("node2", 3.0)
    clock.at = 102.5
    assert not keeper.tick()  # another member holds it now
    assert mandate_of(keeper) is None
    assert not executor.lease.held()


def test_a_decision_to_demote_ends_the_mandate_before_it_is_carried_out() -> None:
    clock = FakeClock(100.0)
    store = MemoryStore(clock=clock.monotonic)
    executor, _fence, keeper = _keeping(clock, store)
    keeper.decided(DEMOTE, answered=True, arm=True)
    clock.at = 102.0
    assert not keeper.tick()
    assert executor.lease.valid_until == 103.0


# ---- a whole loop, in real time -----------------------------------------------------


class _StallingPrimary:
    """A running primary whose server, from the third read on, takes ``stall`` seconds
    to answer once (as a connection on a disk allowed 20 writes a second did)."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.reads = 0

    def read(self) -> observe.LocalState:
        self.reads += 1
        if self.reads == 3:
            time.sleep(self.stall)
        return observe.LocalState(PgState.RUNNING, Role.PRIMARY, timeline=1)


class _Standbys:
    def read(self) -> tuple[Peer, ...]:
        return tuple(
            Peer(n, reachable=True, pg=PgState.RUNNING, role=Role.STANDBY)
            for n in ("node2", "node3")
        )


class _NeverDiverged:
    def diverged(self, leader: str, running: bool = True) -> bool:
        raise AssertionError("a primary never compares its WAL with a leader's")


def test_a_primary_whose_server_stalls_for_two_leases_keeps_its_lease() -> None:
    """The loop is held 2.5 ttl in one read; the lease in the store never lapses (another
    member trying to take it all along never gets it) and the fence never fires."""
    cfg = layout.lab_config(
        LAB,
        layout.LabShape(3, 25000, "postgres", None, failover="automatic", dcs="etcd"),
    )
    local = LocalNode.open(cfg, "node1")
    settings = Settings(ttl=1.0, loop_wait=0.1, retry_timeout=0.2, primary_start_timeout=5.0)
    stopped: list[float] = []
    fence = Fence(lambda: stopped.append(time.monotonic()), margin=0.1)
    store = MemoryStore()
    supervisor = Supervisor(local.instance, auto_restart=False)
    executor = Executor(
        local, supervisor, settings, "token", fence, threading.Lock(), lambda: store
    )
    reader = _StallingPrimary(stall=2.5)
    loop = HaLoop(cfg, local, executor, reader, _Standbys(), lambda: store, _NeverDiverged())
    assert store.acquire_leader("node1", settings.ttl)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 4.0
        taken = False
        while time.monotonic() < deadline:
            taken = taken or store.acquire_leader("node2", settings.ttl)
            time.sleep(0.05)
        assert reader.reads >= 4, "the stalled read ended and the loop went on"
    finally:
        loop.stop(wait=2.0)
    assert not taken, "the lease lapsed while the loop was held up"
    assert not stopped, "the fence stopped a primary whose lease was kept"
    assert loop.keeper.renewals >= 5  # one every 0.2 s of the 2.5 s it was held


class _StoreThatHolds(MemoryStore):
    """Holds the first renewal until ``release`` is set (a store call a lossy link
    slows down); then ``during`` runs, if any, before that call returns."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.release = threading.Event()
        self.held = threading.Event()
        self.calls = 0
        self.during: Callable[[], None] | None = None

    def renew_leader(self, name: str, ttl: float) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.held.set()
            assert self.release.wait(10)
            if self.during is not None:
                self.during()
        return super().renew_leader(name, ttl)


def test_the_keeper_renews_while_a_renewal_of_the_loop_is_held_up_in_the_store() -> None:
    """The async load run found it: the loop's own renewal, slowed by a lossy link to the
    store, held the lease lock, the keeper waited behind it, and the fence fired."""
    clock = FakeClock(100.0)
    store = _StoreThatHolds(clock=clock.monotonic)
    executor, fence, keeper = _keeping(clock, store)
    clock.at = 100.5
    loop = threading.Thread(target=executor.renew, kwargs={"arm": True})
    loop.start()
    assert store.held.wait(10)
    clock.at = 101.5
    assert keeper.tick()  # not behind the loop's call
    assert executor.lease.valid_until == 104.5 and fence.until == 104.5
    store.release.set()
    loop.join(10)
    assert executor.lease.valid_until == 104.5  # the earlier-sent renewal moves nothing back


def lease_until(executor: Executor) -> float | None:
    return executor.lease.valid_until


def test_a_renewal_that_comes_back_after_the_lease_was_given_up_is_dropped() -> None:
    """A demotion gives the lease up while the keeper's renewal is in the store: its
    answer must not arm the fence again on a node that is becoming a standby."""
    clock = FakeClock(100.0)
    store = _StoreThatHolds(clock=clock.monotonic)
    executor, fence, keeper = _keeping(clock, store)
    clock.at = 101.2

    def demote() -> None:
        keeper.decided(DEMOTE, answered=True, arm=True)
        executor.forget_lease()
        fence.disarm()

    store.during = demote
    store.release.set()
    keeper.tick()
    assert lease_until(executor) is None and fence.until is None
