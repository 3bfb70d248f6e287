"""decide(): every branch of the failover decision, table-driven; and the rules around
it: the fence and the lease after acting, when a cycle asks its peers and its leader."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgherd.model.fencing import after_acting
from pgherd.model.ha import (
    Action,
    Do,
    Local,
    Peer,
    World,
    candidate_verdict,
    decide,
    failsafe_holds,
    sync_set_while_promoting,
    sync_standby_names,
)
from pgherd.model.ha_settings import Mode, Settings
from pgherd.model.lsn import Lsn
from pgherd.model.observing import (
    DIVERGENCE_AFTER,
    CheckinSilence,
    DivergenceCheck,
    DivergenceWatch,
    needs_fresh_peers,
    watch_divergence,
)
from pgherd.model.status import PgState, Role

S = Settings()
PRIMARY = Local("node1", PgState.RUNNING, Role.PRIMARY, 1, Lsn(5000), holds_lease=True)
STANDBY = Local(
    "node2", PgState.RUNNING, Role.STANDBY, 1, Lsn(5000), upstream="node1", streaming=True
)


def peer(name: str, position: int, **kw: object) -> Peer:
    values: dict[str, object] = {
        "reachable": True,
        "pg": PgState.RUNNING,
        "role": Role.STANDBY,
        "timeline": 1,
        "position": Lsn(position),
    }
    values.update(kw)
    return Peer(name, **values)  # type: ignore[arg-type]


def dos(actions: tuple[object, ...]) -> list[Do]:
    return [a.do for a in actions]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "me", "world", "expected", "says"),
    [
        ("leader alive: renew", PRIMARY, World(True, "node1"), [Do.RENEW_LEASE], "renewing"),
        (
            "primary, lease free: take it",
            PRIMARY,
            World(True, None),
            [Do.ACQUIRE_LEASE, Do.WAIT],
            "lease is free",
        ),
        (
            "primary, another holds the lease: demote",
            PRIMARY,
            World(True, "node2"),
            [Do.DEMOTE],
            "node2 holds the lease",
        ),
        (
            "primary, store down, lease still valid: stay",
            replace(PRIMARY, lease_valid_until=10.0, now=5.0),
            World(False, None),
            [Do.WAIT],
            "lease holds for 5.0 s",
        ),
        (
            "primary, store down, lease about to expire: demote",
            replace(PRIMARY, lease_valid_until=10.0, now=9.0),
            World(False, None),
            [Do.DEMOTE],
            "store is unreachable",
        ),
        (
            "primary, store down, no lease known: demote",
            PRIMARY,
            World(False, None),
            [Do.DEMOTE],
            "store is unreachable",
        ),
        (
            "standby follows the leader",
            replace(STANDBY, upstream="node3"),
            World(True, "node1", (peer("node3", 5000, role=Role.PRIMARY, pg=PgState.STOPPED),)),
            [Do.FOLLOW],
            "following the leader node1",
        ),
        (
            "standby already streams from the leader",
            STANDBY,
            World(True, "node1"),
            [Do.WAIT],
            "streaming from node1",
        ),
        (
            "a configured cascade stays on its upstream",
            replace(STANDBY, upstream="node3", replicate_from="node3"),
            World(True, "node1", (peer("node3", 5000),)),
            [Do.WAIT],
            "streaming from node3",
        ),
        (
            "a standby left behind a demoted primary follows the leader",
            replace(STANDBY, upstream="node3"),
            World(True, "node1", (peer("node3", 5000),)),
            [Do.FOLLOW],
            "following the leader node1",
        ),
        (
            "a configured cascade moves to its upstream",
            replace(STANDBY, replicate_from="node3"),
            World(True, "node1", (peer("node3", 5000),)),
            [Do.FOLLOW],
            "following node3 (replicate_from)",
        ),
        (
            "a cascade whose upstream is gone follows the leader",
            replace(STANDBY, upstream="node3", replicate_from="node3"),
            World(True, "node1", (peer("node3", 5000, reachable=False),)),
            [Do.FOLLOW],
            "following the leader node1",
        ),
        (
            "diverged standby rejoins",
            replace(STANDBY, diverged_from_leader=True),
            World(True, "node3"),
            [Do.REJOIN],
            "diverged",
        ),
        (
            "leader expired, I am most advanced: take over",
            STANDBY,
            World(True, None, (peer("node3", 4000),)),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest candidate",
        ),
        (
            "leader expired, another is ahead: wait",
            STANDBY,
            World(True, None, (peer("node3", 6000),)),
            [Do.WAIT],
            "node3 is at 0/1770",
        ),
        (
            "tie goes to the lower name",
            replace(STANDBY, name="node3"),
            World(True, None, (peer("node2", 5000),)),
            [Do.WAIT],
            "node2 is at",
        ),
        (
            "an unreachable peer does not block (the leader's last check-in is known)",
            STANDBY,
            World(
                True, None, (peer("node3", 9000, reachable=False),), last_primary_position=Lsn(5000)
            ),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
        (
            "a nofailover peer does not block",
            STANDBY,
            World(True, None, (peer("node3", 9000, nofailover=True),)),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
        (
            "nofailover standby never takes over",
            replace(STANDBY, nofailover=True),
            World(True, None),
            [Do.WAIT],
            "nofailover",
        ),
        (
            "too far behind the last primary position",
            STANDBY,
            World(True, None, last_primary_position=Lsn(5000 + 17 * 1024 * 1024)),
            [Do.WAIT],
            "maximum_lag",
        ),
        (
            "exactly maximum_lag behind: still a candidate",
            STANDBY,
            World(True, None, last_primary_position=Lsn(5000 + S.maximum_lag)),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest candidate",
        ),
        (
            "standby holding the lease finishes its promotion",
            STANDBY,
            World(True, "node2"),
            [Do.RENEW_LEASE, Do.PROMOTE],
            "finishing my promotion",
        ),
        (
            "standby with the store down changes nothing",
            STANDBY,
            World(False, None),
            [Do.WAIT],
            "unreachable",
        ),
        (
            "starting server: wait",
            replace(STANDBY, pg=PgState.STARTING),
            World(True, None),
            [Do.WAIT],
            "starting",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_decide(case: str, me: Local, world: World, expected: list[Do], says: str) -> None:
    actions = decide(S, me, world)
    assert dos(actions) == expected, case
    assert says in " / ".join(a.reason for a in actions), case


CRASHED_PRIMARY = replace(PRIMARY, pg=PgState.CRASHED, crashed_for=1.0)


@pytest.mark.parametrize(
    ("me", "world", "expected", "says"),
    [
        (CRASHED_PRIMARY, World(True, "node1"), [Do.RENEW_LEASE, Do.START], "in place"),
        (
            replace(CRASHED_PRIMARY, crashed_for=11.0),
            World(True, "node1"),
            [Do.RELEASE_LEASE],
            "giving up the lease",
        ),
        (CRASHED_PRIMARY, World(True, "node2"), [Do.REJOIN], "never as a second primary"),
        (CRASHED_PRIMARY, World(True, None), [Do.ACQUIRE_LEASE, Do.START], "as the primary"),
        (
            CRASHED_PRIMARY,
            World(True, None, (peer("node2", 9000, timeline=2),)),
            [Do.WAIT],
            "newer than my 1",
        ),
        (
            CRASHED_PRIMARY,
            World(True, None, (peer("node2", 9000, role=Role.PRIMARY),)),
            [Do.WAIT],
            "node2 runs as a primary",
        ),
        (
            replace(CRASHED_PRIMARY, crashed_for=11.0),
            World(True, None),
            [Do.WAIT],
            "leaving the lease to a standby",
        ),
        (CRASHED_PRIMARY, World(False, None), [Do.WAIT], "store is unreachable"),
        (
            replace(STANDBY, pg=PgState.CRASHED, crashed_for=1.0),
            World(True, "node1"),
            [Do.START],
            "as a standby",
        ),
        (
            replace(STANDBY, pg=PgState.CRASHED, crashed_for=5.0, diverged_from_leader=True),
            World(True, "node1"),
            [Do.REJOIN],
            "rewinding to follow it",
        ),
        (
            replace(STANDBY, pg=PgState.CRASHED, crashed_for=5.0, diverged_from_leader=True),
            World(True, None),
            [Do.START],
            "as a standby",
        ),
    ],
)
def test_a_crashed_postgres(me: Local, world: World, expected: list[Do], says: str) -> None:
    actions = decide(S, me, world)
    assert dos(actions) == expected
    assert says in actions[-1].reason


def test_manual_mode_only_restarts_a_crash() -> None:
    manual = replace(S, mode=Mode.MANUAL)
    assert dos(decide(manual, STANDBY, World(True, None))) == [Do.WAIT]
    assert dos(decide(manual, replace(STANDBY, crashed_for=2.0), World(True, None))) == [Do.START]


def test_failsafe_keeps_a_primary_every_member_still_follows() -> None:
    failsafe = replace(S, failsafe=True)
    world = World(False, None, (peer("node2", 5000), peer("node3", 5000)))
    assert dos(decide(failsafe, PRIMARY, world)) == [Do.WAIT]
    partial = World(False, None, (peer("node2", 5000), peer("node3", 5000, reachable=False)))
    assert dos(decide(failsafe, PRIMARY, partial)) == [Do.DEMOTE]


class TestSynchronous:
    sync = replace(S, synchronous=True, sync_quorum=1)

    def test_only_a_synchronous_standby_may_take_over(self) -> None:
        world = World(True, None, (peer("node3", 1000),), sync_set=("node3",))
        assert candidate_verdict(self.sync, STANDBY, world) == (
            "synchronous mode: only a synchronous standby may be promoted"
        )

    def test_a_candidate_must_see_enough_of_the_set(self) -> None:
        # ANY 1 of (node2, node3): an acknowledged commit may be on either, so node2 must
        # see node3 to know it has everything.
        lonely = World(
            True, None, (peer("node3", 0, reachable=False),), sync_set=("node2", "node3")
        )
        verdict = candidate_verdict(self.sync, STANDBY, lonely)
        assert verdict is not None and "2 are needed" in verdict
        seen = World(True, None, (peer("node3", 4000),), sync_set=("node2", "node3"))
        assert candidate_verdict(self.sync, STANDBY, seen) is None

    def test_a_promotion_that_failed_half_way_leaves_its_candidate_free_to_retry(self) -> None:
        """node2 took the lease and published the set while promoting; its promotion was
        cut short (fenced, crashed) before its first cycle as the primary. It may try
        again; node3 may not: node2's server may have acknowledged commits on its own."""
        members, quorum = sync_set_while_promoting("node2")
        world = World(True, None, (peer("node3", 5000),), sync_set=members, sync_quorum=quorum)
        assert dos(decide(self.sync, STANDBY, world)) == [Do.ACQUIRE_LEASE, Do.PROMOTE]
        node3 = replace(STANDBY, name="node3")
        others = World(True, None, (peer("node2", 5000),), sync_set=members, sync_quorum=quorum)
        assert candidate_verdict(self.sync, node3, others) == (
            "synchronous mode: only a synchronous standby may be promoted"
        )

    def test_the_leader_sets_the_synchronous_standbys(self) -> None:
        # The standbys that stream from it now (its pg_stat_replication), not the ones
        # whose agents answer: only a streaming standby can acknowledge a commit.
        me = replace(PRIMARY, streaming_standbys=("node2",))
        world = World(True, "node1", (peer("node2", 1), peer("node3", 1)))
        actions = decide(self.sync, me, world)
        assert dos(actions) == [Do.RENEW_LEASE, Do.SET_SYNC]
        assert actions[1].members == ("node2",)


@pytest.mark.parametrize(
    ("members", "quorum", "expected"),
    [
        ((), 1, ""),
        (("node3", "node2"), 1, 'ANY 1 ("node2", "node3")'),
        (("node2",), 2, 'ANY 1 ("node2")'),
    ],
)
def test_sync_standby_names(members: tuple[str, ...], quorum: int, expected: str) -> None:
    assert sync_standby_names(members, quorum) == expected


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry", "ok"),
    [(3, 0.5, 1, True), (2, 0.5, 1, False), (30, 10, 10, True), (20, 10, 10, False)],
)
def test_timing_rule(ttl: float, loop_wait: float, retry: float, ok: bool) -> None:
    problem = Settings(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry).timing_problem()
    assert (problem is None) is ok
    if problem:
        assert "loop_wait + 2 × retry_timeout" in problem


def test_an_unreachable_peer_on_a_newer_timeline_does_not_hold_a_cold_start() -> None:
    world = World(True, None, (peer("node2", 9000, timeline=2, reachable=False),))
    assert dos(decide(S, CRASHED_PRIMARY, world)) == [Do.ACQUIRE_LEASE, Do.START]


@pytest.mark.parametrize(
    ("me", "world", "expected", "says"),
    [
        (PRIMARY, World(True, "node1", paused="switchover"), [Do.RENEW_LEASE], "keeping my"),
        (
            replace(PRIMARY, pg=PgState.STOPPED),
            World(True, "node1", paused="switchover"),
            [Do.RENEW_LEASE],
            "paused (switchover)",
        ),
        (
            CRASHED_PRIMARY,
            World(True, "node1", paused="switchover"),
            [Do.RENEW_LEASE, Do.START],
            "in place",
        ),
        (
            PRIMARY,
            World(True, None, paused="switchover"),
            [Do.ACQUIRE_LEASE, Do.WAIT],
            "lease is free",
        ),
        (PRIMARY, World(True, "node2", paused="switchover"), [Do.WAIT], "no automatic action"),
        (STANDBY, World(True, None, paused="switchover"), [Do.WAIT], "no automatic action"),
        (
            replace(STANDBY, pg=PgState.CRASHED, crashed_for=1.0),
            World(True, "node1", paused="switchover"),
            [Do.START],
            "as a standby",
        ),
    ],
)
def test_while_an_operation_pauses_failover_nobody_moves(
    me: Local, world: World, expected: list[Do], says: str
) -> None:
    actions = decide(S, me, world)
    assert dos(actions) == expected
    assert says in " / ".join(a.reason for a in actions)


def test_a_primary_stopped_on_purpose_gives_up_its_lease() -> None:
    stopped = replace(PRIMARY, pg=PgState.STOPPED)
    actions = decide(S, stopped, World(True, "node1"))
    assert dos(actions) == [Do.RELEASE_LEASE]
    assert "stopped on purpose" in actions[0].reason
    assert dos(decide(S, stopped, World(True, "node2"))) == [Do.WAIT]


@pytest.mark.parametrize(
    ("me", "world", "expected"),
    [
        (replace(PRIMARY, pg=PgState.STARTING), World(True, "node1"), [Do.RENEW_LEASE]),
        (replace(PRIMARY, pg=PgState.STARTING), World(True, None), [Do.ACQUIRE_LEASE]),
        (replace(PRIMARY, pg=PgState.STARTING), World(True, "node2"), [Do.DEMOTE]),
        (
            replace(PRIMARY, pg=PgState.STARTING, lease_valid_until=10.0, now=5.0),
            World(False, None),
            [Do.WAIT],
        ),
        (
            replace(PRIMARY, pg=PgState.STARTING, lease_valid_until=10.0, now=9.0),
            World(False, None),
            [Do.DEMOTE],
        ),
        (replace(STANDBY, pg=PgState.STARTING), World(True, None), [Do.WAIT]),
    ],
)
def test_a_primary_on_its_way_up_keeps_its_lease_or_is_fenced(
    me: Local, world: World, expected: list[Do]
) -> None:
    assert dos(decide(S, me, world)) == expected


RESTARTING = replace(PRIMARY, pg=PgState.STARTING, restarting_for=11.0)  # past the 10 s
ABLE = peer("node2", 5000)


@pytest.mark.parametrize(
    ("case", "settings", "me", "world", "expected"),
    [
        (
            "coming back past primary_start_timeout, a standby able: stop, hand over",
            S,
            RESTARTING,
            World(True, "node1", (ABLE,), last_primary_position=Lsn(5000)),
            [Do.DEMOTE, Do.RELEASE_LEASE],
        ),
        (
            "within primary_start_timeout: keep waiting for it",
            S,
            replace(RESTARTING, restarting_for=9.0),
            World(True, "node1", (ABLE,)),
            [Do.RENEW_LEASE],
        ),
        (
            "starting at boot (not after a crash): never bounded",
            S,
            replace(RESTARTING, restarting_for=None),
            World(True, "node1", (ABLE,)),
            [Do.RENEW_LEASE],
        ),
        (
            "no standby could take over: waiting is the only way back",
            S,
            RESTARTING,
            World(True, "node1", (peer("node2", 5000, reachable=False),)),
            [Do.RENEW_LEASE],
        ),
        (
            "the only standby is too far behind (maximum_lag)",
            S,
            RESTARTING,
            World(True, "node1", (ABLE,), last_primary_position=Lsn(5000 + S.maximum_lag + 1)),
            [Do.RENEW_LEASE],
        ),
        (
            "the only standby is exactly maximum_lag behind: it can take over",
            S,
            RESTARTING,
            World(True, "node1", (ABLE,), last_primary_position=Lsn(5000 + S.maximum_lag)),
            [Do.DEMOTE, Do.RELEASE_LEASE],
        ),
        (
            "the only standby is tagged nofailover",
            S,
            RESTARTING,
            World(True, "node1", (peer("node2", 5000, nofailover=True),)),
            [Do.RENEW_LEASE],
        ),
        (
            "synchronous mode: a standby outside the synchronous set cannot take over",
            replace(S, synchronous=True),
            RESTARTING,
            World(True, "node1", (ABLE,), sync_set=("node3",)),
            [Do.RENEW_LEASE],
        ),
        (
            "synchronous mode: a synchronous standby can",
            replace(S, synchronous=True),
            RESTARTING,
            World(True, "node1", (ABLE,), sync_set=("node2",)),
            [Do.DEMOTE, Do.RELEASE_LEASE],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_primary_start_timeout_bounds_a_restart_in_place_when_a_standby_can_take_over(
    case: str, settings: Settings, me: Local, world: World, expected: list[Do]
) -> None:
    actions = decide(settings, me, world)
    assert dos(actions) == expected, case
    if expected[0] is Do.DEMOTE:
        assert actions[0].target is None, case  # a standby of nobody until one leads
        assert "primary_start_timeout" in actions[0].reason and "node2" in actions[0].reason


def test_no_standby_takes_over_while_a_member_still_runs_as_the_primary() -> None:
    world = World(True, None, (peer("node1", 4000, role=Role.PRIMARY),))
    actions = decide(S, STANDBY, world)
    assert dos(actions) == [Do.WAIT]
    assert "node1 still runs as the primary" in actions[0].reason
    gone = World(
        True,
        None,
        (peer("node1", 4000, role=Role.PRIMARY, reachable=False),),
        last_primary_position=Lsn(5000),
    )
    assert dos(decide(S, STANDBY, gone)) == [Do.ACQUIRE_LEASE, Do.PROMOTE]


# ---- a cold start: every agent and server stopped, started again in any order ------------

DOWN_PRIMARY = Local("node1", PgState.STOPPED, Role.PRIMARY, 1, crashed_for=0.2, never_ran=True)


def returning_primary(**kw: object) -> Peer:
    values: dict[str, object] = {"pg": PgState.STOPPED, "role": Role.PRIMARY, "returning": True}
    values.update(kw)
    return peer("node1", 5000, **values)


@pytest.mark.parametrize(
    ("case", "settings", "me", "world", "expected", "says"),
    [
        (
            "a primary at boot leads even with primary_start_timeout 0",
            replace(S, primary_start_timeout=0.0),
            DOWN_PRIMARY,
            World(True, None, (peer("node2", 5000),)),
            [Do.ACQUIRE_LEASE, Do.START],
            "taking the lease",
        ),
        (
            "a primary at boot whose lease the store still holds starts in place (timeout 0)",
            replace(S, primary_start_timeout=0.0),
            replace(DOWN_PRIMARY, holds_lease=True),
            World(True, "node1", (peer("node2", 5000),)),
            [Do.RENEW_LEASE, Do.START],
            "restarting it in place",
        ),
        (
            "a primary that crashed past primary_start_timeout leaves the lease",
            replace(S, primary_start_timeout=0.0),
            replace(DOWN_PRIMARY, pg=PgState.CRASHED, never_ran=False),
            World(True, None, (peer("node2", 5000),)),
            [Do.WAIT],
            "within primary_start_timeout",
        ),
        (
            "a primary at boot waits for the last leader, another node it cannot see",
            S,
            DOWN_PRIMARY,
            World(True, None, (peer("node2", 5000, reachable=False),), last_leader="node2"),
            [Do.WAIT],
            "node2 led last and does not answer",
        ),
        (
            "a primary at boot leads when the last leader answers and is not ahead",
            S,
            DOWN_PRIMARY,
            World(True, None, (peer("node2", 4000),), last_leader="node2"),
            [Do.ACQUIRE_LEASE, Do.START],
            "taking the lease",
        ),
        (
            "a standby waits for the former primary that starts again",
            S,
            STANDBY,
            World(True, None, (returning_primary(), peer("node3", 5000))),
            [Do.WAIT],
            "node1, a primary by its files on timeline 1, starts again: it leads",
        ),
        (
            "a former primary on an older timeline does not hold it back",
            S,
            replace(STANDBY, timeline=2),
            World(True, None, (returning_primary(timeline=1), peer("node3", 5000, timeline=2))),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
        (
            "a former primary that crashes at its start may still be ahead: wait for it",
            S,
            STANDBY,
            World(
                True,
                None,
                (returning_primary(pg=PgState.CRASHED, returning=False), peer("node3", 4000)),
            ),
            [Do.WAIT],
            "waiting for node1 to run",
        ),
        (
            "no leader checked in and a member is silent: wait for it",
            S,
            STANDBY,
            World(True, None, (peer("node1", 0, reachable=False), peer("node3", 4000))),
            [Do.WAIT],
            "waiting for node1 to run, to compare positions",
        ),
        (
            "no leader checked in and a member's server is not up yet: wait for it",
            S,
            STANDBY,
            World(True, None, (peer("node3", 4000, pg=PgState.STOPPED),)),
            [Do.WAIT],
            "waiting for node3 to run",
        ),
        (
            "every member answers and runs: the most advanced leads",
            S,
            STANDBY,
            World(True, None, (peer("node3", 4000),)),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
        (
            "a standby just started waits for the last leader that does not answer yet",
            S,
            replace(STANDBY, booting_for=5.0),
            World(
                True,
                None,
                (peer("node1", 0, reachable=False), peer("node3", 4000)),
                last_primary_position=Lsn(5000),
                last_leader="node1",
            ),
            [Do.WAIT],
            "node1, which led last, does not answer yet: this agent started less than 30 s ago",
        ),
        (
            "past the boot grace, a host loss fails over as always",
            S,
            replace(STANDBY, booting_for=31.0),
            World(
                True,
                None,
                (peer("node1", 0, reachable=False), peer("node3", 4000)),
                last_primary_position=Lsn(5000),
                last_leader="node1",
            ),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
        (
            "synchronous mode: the synchronous set's rule suffices",
            replace(S, synchronous=True),
            STANDBY,
            World(
                True,
                None,
                (peer("node1", 0, reachable=False), peer("node3", 4000)),
                sync_set=("node2", "node3"),
                sync_quorum=1,
            ),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            "healthiest",
        ),
    ],
)
def test_cold_start(
    case: str, settings: Settings, me: Local, world: World, expected: list[Do], says: str
) -> None:
    actions = decide(settings, me, world)
    assert dos(actions) == expected, f"{case}: {actions}"
    assert says in " / ".join(a.reason for a in actions), case


@pytest.mark.parametrize(
    ("me", "last_leader", "takes_over"),
    [
        ("node2", None, True),  # lowest name
        ("node3", None, False),
        ("node3", "node3", True),  # the last leader wins a tie
        ("node2", "node3", False),
        ("node2", "node1", True),  # a last leader out of the race changes nothing
    ],
)
def test_ties_go_to_the_last_leader_then_the_lowest_name(
    me: str, last_leader: str | None, takes_over: bool
) -> None:
    other = "node3" if me == "node2" else "node2"
    world = World(True, None, (peer(other, 5000),), last_leader=last_leader)
    verdict = candidate_verdict(S, replace(STANDBY, name=me), world)
    assert (verdict is None) is takes_over


def test_a_peer_that_cannot_reach_the_store_is_no_rival() -> None:
    """bench/faults.py, asynchronous mode: the primary, cut from the store, demoted itself
    and runs on as a standby as far as every other one, and the last leader (it wins every
    tie). Deferring to it, nobody took over for as long as the cut lasted."""
    cut_off = peer("node3", 5000, in_store=False)
    world = World(True, None, (cut_off, peer("node2", 5000)), last_leader="node3")
    node1 = replace(STANDBY, name="node1", position=Lsn(5000))
    assert candidate_verdict(S, node1, world) is None
    assert dos(decide(S, node1, world)) == [Do.ACQUIRE_LEASE, Do.PROMOTE]
    # node2 defers to node1 (equal, the lower name), not to node3: one takes over.
    node2 = replace(STANDBY, name="node2", position=Lsn(5000))
    world2 = replace(world, peers=(cut_off, peer("node1", 5000)))
    assert "node1 is at" in (candidate_verdict(S, node2, world2) or "")
    # Once it checks in again, it is a rival like any other.
    back = replace(world, peers=(replace(cut_off, in_store=True), peer("node2", 5000)))
    assert "node3 is at" in (candidate_verdict(S, node1, back) or "")


def test_check_in_silence_is_measured_by_changes_on_the_readers_clock() -> None:
    silence = CheckinSilence(started=100.0)
    assert silence.silent_for("node2", 101.0) == 1.0  # never seen: since the watch began
    silence = silence.note({"node2": 5e9, "node3": 7e9}, now=102.0)
    silence = silence.note({"node2": 5e9 + 0.5, "node3": 7e9}, now=102.5)
    # node3's check-in stood still: silent since the reader first saw it (its wall time,
    # 7e9, skewed far from the reader's, plays no part).
    assert silence.silent_for("node2", 104.0) == 1.5
    assert silence.silent_for("node3", 104.0) == 2.0
    silence = silence.note({"node2": 5e9 + 0.5}, now=105.0)  # node3's key is gone
    assert silence.silent_for("node3", 105.0) == 5.0


def test_failsafe_needs_every_member_and_none_of_them_a_primary() -> None:
    failsafe = replace(S, failsafe=True)
    all_there = World(False, None, (peer("node2", 1), peer("node3", 1)))
    assert failsafe_holds(failsafe, PRIMARY, all_there)
    assert not failsafe_holds(S, PRIMARY, all_there)  # failsafe off
    assert not failsafe_holds(failsafe, STANDBY, all_there)
    assert not failsafe_holds(failsafe, PRIMARY, World(True, "node1", all_there.peers))
    other_primary = World(False, None, (peer("node2", 1, role=Role.PRIMARY), peer("node3", 1)))
    assert not failsafe_holds(failsafe, PRIMARY, other_primary)
    assert not failsafe_holds(failsafe, PRIMARY, World(False, None))  # nobody to ask


class TestSynchronousSets:
    sync = replace(S, synchronous=True, sync_quorum=1)

    def test_the_leader_names_the_standbys_that_stream_from_it(self) -> None:
        me = replace(PRIMARY, streaming_standbys=("node3", "node2", "node4", "pgherd_clone_x"))
        peers = (peer("node2", 1), peer("node3", 1), peer("node4", 1, nofailover=True))
        world = World(True, "node1", peers)
        actions = decide(self.sync, me, world)
        assert actions[1].do is Do.SET_SYNC
        assert actions[1].members == ("node2", "node3")  # node4 may never be promoted

    def test_no_streaming_standby_means_an_empty_set(self) -> None:
        actions = decide(self.sync, PRIMARY, World(True, "node1"))
        assert actions[1].members == ()
        assert "none streaming" in actions[1].reason

    def test_the_quorum_comes_from_the_store(self) -> None:
        # ANY 2 of (node2, node3, node4): any 2 of the 3 hold every commit.
        peers = (peer("node3", 4000), peer("node4", 0, reachable=False))
        world = World(True, None, peers, sync_set=("node2", "node3", "node4"), sync_quorum=2)
        assert candidate_verdict(self.sync, STANDBY, world) is None
        world_q1 = replace(world, sync_quorum=1)
        verdict = candidate_verdict(self.sync, STANDBY, world_q1)
        assert verdict is not None and "3 are needed" in verdict

    def test_a_set_being_rebuilt_lets_nobody_be_promoted(self) -> None:
        world = World(True, None, (peer("node3", 1),), sync_set=("node2",), sync_quorum=0)
        verdict = candidate_verdict(self.sync, STANDBY, world)
        assert verdict is not None and "2 are needed" in verdict


# ---- the fence and the lease after acting (model/fencing.py) ----------------------------

FAILSAFE = replace(S, failsafe=True)
STANDBYS_ANSWER = (peer("node2", 1), peer("node3", 1))
STOPPED = Local("node1", PgState.STOPPED, Role.PRIMARY, 1)
CRASHED = Local("node1", PgState.CRASHED, Role.STANDBY, 1, crashed_for=1.0)


@pytest.mark.parametrize(
    ("case", "settings", "me", "world", "decided", "expected"),
    [
        (
            "leader renews: nothing to change",
            S,
            PRIMARY,
            World(True, "node1"),
            [Do.RENEW_LEASE],
            [],
        ),
        (
            "store down, failsafe, every member answers: one more ttl",
            FAILSAFE,
            PRIMARY,
            World(False, None, STANDBYS_ANSWER, observed_at=100.0),
            [Do.WAIT],
            [Do.EXTEND_FENCE],
        ),
        (
            "store down, failsafe, a member silent: no extension",
            FAILSAFE,
            PRIMARY,
            World(False, None, (peer("node2", 1), peer("node3", 1, reachable=False))),
            [Do.DEMOTE],
            [],
        ),
        (
            "store down, no failsafe: no extension",
            S,
            PRIMARY,
            World(False, None, STANDBYS_ANSWER),
            [Do.DEMOTE],
            [],
        ),
        (
            "store up, failsafe: the lease is what counts",
            FAILSAFE,
            PRIMARY,
            World(True, "node1", STANDBYS_ANSWER),
            [Do.RENEW_LEASE],
            [],
        ),
        (
            "store gives the lease to another: forget ours",
            S,
            PRIMARY,
            World(True, "node2"),
            [Do.DEMOTE],
            [Do.FORGET_LEASE],
        ),
        (
            "store says nobody holds it: forget ours",
            S,
            PRIMARY,
            World(True, None),
            [Do.WAIT],
            [Do.FORGET_LEASE],
        ),
        (
            "lease just taken this cycle: keep it",
            S,
            PRIMARY,
            World(True, None),
            [Do.ACQUIRE_LEASE, Do.WAIT],
            [],
        ),
        (
            "store down: a lease is not forgotten on no news",
            S,
            PRIMARY,
            World(False, None),
            [Do.WAIT],
            [],
        ),
        (
            "streaming standby: forget, disarm",
            S,
            STANDBY,
            World(True, "node1"),
            [Do.WAIT],
            [Do.FORGET_LEASE, Do.DISARM_FENCE],
        ),
        (
            "standby about to be promoted: the fence stays",
            S,
            STANDBY,
            World(True, None),
            [Do.ACQUIRE_LEASE, Do.PROMOTE],
            [],
        ),
        (
            "standby holding the lease, promoting: the fence stays",
            S,
            replace(STANDBY, name="node1"),
            World(True, "node1"),
            [Do.RENEW_LEASE, Do.PROMOTE],
            [],
        ),
        (
            "stopped primary releasing its lease: disarm",
            S,
            STOPPED,
            World(True, "node1"),
            [Do.RELEASE_LEASE],
            [Do.DISARM_FENCE],
        ),
        (
            "crashed primary restarting in place: the fence stays",
            S,
            replace(STOPPED, pg=PgState.CRASHED, crashed_for=1.0),
            World(True, "node1"),
            [Do.RENEW_LEASE, Do.START],
            [],
        ),
        (
            "crashed standby restarting: the fence stays until it runs",
            S,
            CRASHED,
            World(True, "node2"),
            [Do.START],
            [Do.FORGET_LEASE],
        ),
        (
            "a primary on its way up: may take writes soon, the fence stays",
            S,
            replace(PRIMARY, pg=PgState.STARTING),
            World(True, "node1"),
            [Do.RENEW_LEASE],
            [],
        ),
        (
            "store down, running standby: disarm only",
            S,
            STANDBY,
            World(False, None),
            [Do.WAIT],
            [Do.DISARM_FENCE],
        ),
    ],
)
def test_after_acting(
    case: str,
    settings: Settings,
    me: Local,
    world: World,
    decided: list[Do],
    expected: list[Do],
) -> None:
    actions = tuple(Action(do, "decided") for do in decided)
    orders = after_acting(settings, me, world, actions)
    assert dos(orders) == expected, case
    assert all(o.reason for o in orders)


def test_failsafe_extends_the_fence_a_ttl_past_the_peers_answers() -> None:
    world = World(False, None, STANDBYS_ANSWER, observed_at=100.0)
    (order,) = after_acting(FAILSAFE, PRIMARY, world, (Action(Do.WAIT, "x"),))
    assert order.until == 100.0 + FAILSAFE.ttl
    assert "failsafe" in order.reason


# ---- what a cycle looks at (model/observing.py) -----------------------------------------


def test_the_peers_are_asked_only_when_the_primary_role_may_move() -> None:
    assert not needs_fresh_peers(True, "node1", PgState.RUNNING)  # steady: check-ins
    assert needs_fresh_peers(True, None, PgState.RUNNING)  # the lease is free
    assert needs_fresh_peers(False, None, PgState.RUNNING)  # the store is down
    assert needs_fresh_peers(True, "node1", PgState.CRASHED)  # this server is down


def _watch(
    watch: DivergenceWatch, now: float, streaming: bool = False, upstream: str = "node1"
) -> DivergenceCheck:
    return watch_divergence(
        watch, "node2", PgState.RUNNING, Role.STANDBY, streaming, upstream, "node1", now
    )


def test_a_standby_that_stopped_streaming_compares_after_a_while_then_not_too_often() -> None:
    first = _watch(DivergenceWatch(), 10.0)
    assert not first.compare_now and first.watch.not_streaming_since == 10.0
    early = _watch(first.watch, 10.0 + DIVERGENCE_AFTER - 0.1)
    assert not early.compare_now
    due = _watch(early.watch, 10.0 + DIVERGENCE_AFTER)
    assert due.compare_now and due.watch.last_compared == 10.0 + DIVERGENCE_AFTER
    again = _watch(due.watch, 10.0 + DIVERGENCE_AFTER + 1.0)
    assert not again.compare_now  # compared a second ago
    later = _watch(again.watch, 10.0 + 2 * DIVERGENCE_AFTER)
    assert later.compare_now


@pytest.mark.parametrize(
    ("case", "pg", "role", "streaming", "upstream", "leader"),
    [
        ("streaming", PgState.RUNNING, Role.STANDBY, True, "node1", "node1"),
        ("stopped (not crashed)", PgState.STOPPED, Role.STANDBY, False, "node1", "node1"),
        ("starting", PgState.STARTING, Role.STANDBY, False, None, "node1"),
        ("a crashed primary", PgState.CRASHED, Role.PRIMARY, False, None, "node1"),
        ("crashed, no leader", PgState.CRASHED, Role.STANDBY, False, None, None),
        ("a primary", PgState.RUNNING, Role.PRIMARY, False, None, "node1"),
        ("no leader", PgState.RUNNING, Role.STANDBY, False, "node1", None),
        ("I lead", PgState.RUNNING, Role.STANDBY, False, "node1", "node2"),
        ("cascading from another", PgState.RUNNING, Role.STANDBY, False, "node3", "node1"),
    ],
)
def test_only_a_silent_standby_of_the_leader_is_watched(
    case: str, pg: PgState, role: Role, streaming: bool, upstream: str | None, leader: str | None
) -> None:
    watch = DivergenceWatch(not_streaming_since=0.0, last_compared=0.0)
    check = watch_divergence(watch, "node2", pg, role, streaming, upstream, leader, 100.0)
    assert not check.compare_now, case
    assert check.watch.not_streaming_since is None  # the clock starts again next time


def test_a_standby_that_keeps_crashing_under_a_leader_compares_from_its_files() -> None:
    """PostgreSQL refuses to start on WAL of a timeline that forked elsewhere; restarting
    it forever never ends, so its WAL is compared with the leader's like a silent one's
    (the agent reads it from the files: no upstream is known while it is down)."""

    def crashed(watch: DivergenceWatch, now: float) -> DivergenceCheck:
        return watch_divergence(
            watch, "node2", PgState.CRASHED, Role.STANDBY, False, None, "node1", now
        )

    first = crashed(DivergenceWatch(), 10.0)
    assert not first.compare_now
    due = crashed(first.watch, 10.0 + DIVERGENCE_AFTER)
    assert due.compare_now
    assert not crashed(due.watch, 10.0 + DIVERGENCE_AFTER + 1.0).compare_now
