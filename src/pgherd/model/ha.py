"""Automatic failover, decided: a pure function of what one HA cycle observed.

Each cycle the agent observes its own PostgreSQL (:class:`Local`) and the coordination
store plus its peers (:class:`World`), calls :func:`decide`, and executes the returned
actions in order, stopping at the first that fails (a PROMOTE after an ACQUIRE_LEASE that
lost the race is never executed). Every action carries the sentence the agent logs.

The rules that keep one writable primary:
- only the holder of the leader lease may run as primary; a primary that sees another
  holder, or no holder it could take, demotes itself;
- a primary that cannot reach the store keeps running only while its lease is certainly
  valid (``lease_valid_until``, measured from *before* its last successful renewal) with a
  margin of one more cycle; after that it demotes, before any standby can take the lease;
- a standby takes an expired lease only when it is the best candidate: running, not
  tagged ``nofailover``, not further than ``maximum_lag`` behind the last primary position
  known, the most advanced of the candidates it can see (ties go to the lowest name), no
  reachable member still running as a primary, and in synchronous mode a member of the
  synchronous set that can see enough of that set to be sure no other member is further
  ahead;
- PostgreSQL that died is started again by this function's say-so, never behind its back:
  a primary only while it holds the lease (or takes a free one when nobody is ahead of its
  timeline), a standby always;
- a cold start (every agent and server stopped, cleanly or not; nobody holds the lease and
  no leader checked in lately) is led by the most advanced former member: a primary by its
  files whose agent starts it again leads (it holds every commit of its timeline), unless
  it was not the last leader and cannot see that one; a standby takes the lease only when
  it has every member's word (in synchronous mode, the synchronous set's rule suffices);
  ``primary_start_timeout`` bounds restarts after a crash (down, then starting again,
  while a standby could take over), never a start at boot;
- while an operator's operation runs (``World.paused``: a switchover, a promotion) nobody
  promotes, demotes or re-points anything; the holder only keeps its lease; in
  maintenance (``World.maintenance``: ``cluster pause``) nothing is restarted either;
- with a watchdog configured (``ha.watchdog``), a node whose device cannot be armed
  (``Local.watchdog_problem``) never leads: a standby does not take over (or gives back a
  lease it took), a primary demotes, a down primary does not start as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.ha_settings import Mode, Settings
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState, Role

# A standby whose agent started less than this many ttls ago, and has seen no leader at
# work since, does not take a free lease from a last leader that does not answer yet: after
# a cold start every agent is new, and the former primary, which holds every commit, may be
# a few seconds slower to come back.
BOOT_GRACE_TTLS = 10


class Do(StrEnum):
    RENEW_LEASE = "renew_lease"
    ACQUIRE_LEASE = "acquire_lease"
    RELEASE_LEASE = "release_lease"
    PROMOTE = "promote"
    DEMOTE = "demote"  # stop accepting writes now: restart as a standby
    FOLLOW = "follow"  # point this standby at ``target``
    REJOIN = "rejoin"  # rewind (if needed) and follow ``target``
    START = "start"  # start PostgreSQL again (crash, or asked)
    SET_SYNC = "set_sync"  # the primary writes synchronous_standby_names for ``members``
    WAIT = "wait"  # nothing to do; the sentence says why
    # The fence and the lease as the cycle leaves them (model/fencing.py): bookkeeping of
    # this agent only, never a call to the store or a server.
    EXTEND_FENCE = "extend_fence"  # failsafe: writes allowed ``until`` (monotonic)
    FORGET_LEASE = "forget_lease"  # the store says this node does not hold the lease
    DISARM_FENCE = "disarm_fence"  # this server takes no writes: nothing to fence


# What the executor records as cluster events (the rest are routine: renewals, waits).
RECORDED = frozenset({Do.PROMOTE, Do.DEMOTE, Do.REJOIN, Do.RELEASE_LEASE, Do.FOLLOW, Do.START})


@dataclass(frozen=True)
class Action:
    do: Do
    reason: str
    target: str | None = None
    members: tuple[str, ...] = ()
    until: float | None = None  # EXTEND_FENCE: the new deadline (monotonic seconds)


@dataclass(frozen=True)
class Local:
    """This node, as its agent sees it this cycle."""

    name: str
    pg: PgState
    role: Role
    timeline: int | None = None
    position: Lsn | None = None  # written (primary) or received/replayed (standby)
    upstream: str | None = None
    streaming: bool = False
    nofailover: bool = False
    crashed_for: float | None = None  # seconds since PostgreSQL died unexpectedly
    holds_lease: bool = False  # the store said so at the last successful call
    lease_valid_until: float | None = None  # monotonic deadline of our lease, if held
    now: float = 0.0
    diverged_from_leader: bool = False  # its timeline left the leader's history
    streaming_standbys: tuple[str, ...] = ()  # a primary's pg_stat_replication, streaming
    replicate_from: str | None = None  # the standby to cascade from (config), if any
    # PostgreSQL has not run since this agent started (a boot, not a crash): the restart
    # of a crashed primary is bounded by primary_start_timeout, its start at boot is not.
    never_ran: bool = False
    # Seconds since PostgreSQL died, while it starts again after that crash (or fence);
    # None once it runs, or at a boot. primary_start_timeout bounds it for a leader.
    restarting_for: float | None = None
    # ha.watchdog is set and this node's device cannot be armed now: why (model/watchdog.py)
    watchdog_problem: str | None = None
    # Seconds since this agent's HA loop started (the store answered), as long as it has seen
    # no leader at work since (it streamed from none, led none: perhaps a cold start); None
    # once it has.
    booting_for: float | None = None


@dataclass(frozen=True)
class Peer:
    name: str
    reachable: bool  # its agent answered this cycle
    pg: PgState = PgState.UNREACHABLE
    role: Role = Role.UNKNOWN
    timeline: int | None = None
    position: Lsn | None = None
    nofailover: bool = False
    nosync: bool = False  # tagged: never chosen as a synchronous standby
    # A primary by its files, down, whose agent is about to start it (not stopped on
    # purpose, not crashed): on a cold start it leads, holding every commit of its timeline.
    returning: bool = False
    # Its agent checked in to the store within the last lease (model/observing.py,
    # CheckinSilence): it could take the lease. A standby does not defer to one that cannot.
    in_store: bool = True


@dataclass(frozen=True)
class World:
    store_ok: bool
    leader: str | None  # holder of an unexpired lease (None: absent or expired)
    peers: tuple[Peer, ...] = ()
    last_primary_position: Lsn | None = None  # last position the primary published
    sync_set: tuple[str, ...] = ()  # who may be promoted in synchronous mode (the store's)
    sync_quorum: int = 1  # how many of sync_set acknowledged each commit (the store's)
    paused: str | None = None  # an operator's operation runs: why, and who asked
    maintenance: bool = False  # the pause is maintenance (cluster pause): no action at all
    last_leader: str | None = None  # who held the lease last (its newest check-in says so)
    observed_at: float = 0.0  # monotonic time the peers' answers were in


def decide(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    if settings.mode is Mode.MANUAL:
        return _manual(me)
    down = me.pg in (PgState.STOPPED, PgState.CRASHED)
    if world.paused is not None:
        return _paused(me, world)
    if down and me.crashed_for is not None:
        return _crashed(settings, me, world)
    if down and world.store_ok and world.leader == me.name:
        return (
            Action(
                Do.RELEASE_LEASE,
                "PostgreSQL was stopped on purpose: giving up the lease so a standby can take over",
            ),
        )
    if me.pg is PgState.STARTING and me.role is Role.PRIMARY:
        return _starting_primary(settings, me, world)
    if me.pg is not PgState.RUNNING:
        return (Action(Do.WAIT, f"PostgreSQL is {me.pg}; waiting"),)
    if me.role is Role.PRIMARY:
        return _as_primary(settings, me, world)
    return _as_standby(settings, me, world)


def _paused(me: Local, world: World) -> tuple[Action, ...]:
    """An operator's operation (switchover, promotion) runs, or the cluster is in
    maintenance: hold still, keep the lease. Maintenance starts nothing either: a server
    that died stays down until the operator starts it or resumes."""
    why = f"automatic failover is paused ({world.paused})"
    if world.maintenance:
        why = f"maintenance mode ({world.paused})"
    if world.store_ok and world.leader == me.name:
        if me.crashed_for is not None and me.role is Role.PRIMARY and not world.maintenance:
            return (
                Action(Do.RENEW_LEASE, f"{why}: keeping my lease"),
                Action(Do.START, "PostgreSQL should run: starting it in place (I hold the lease)"),
            )
        return (Action(Do.RENEW_LEASE, f"{why}: keeping my lease"),)
    if (
        world.store_ok
        and world.leader is None
        and me.pg is PgState.RUNNING
        and me.role is Role.PRIMARY
    ):
        return (
            Action(Do.ACQUIRE_LEASE, f"{why}: I run as the primary and the lease is free"),
            Action(Do.WAIT, "holding the lease as primary"),
        )
    if me.crashed_for is not None and me.role is Role.STANDBY and not world.maintenance:
        return (Action(Do.START, f"{why}: PostgreSQL is down: starting it as a standby"),)
    return (Action(Do.WAIT, f"{why}: no automatic action"),)


def _unfit(me: Local) -> str:
    return f"my watchdog cannot be armed ({me.watchdog_problem}) and a leader needs one"


def _starting_primary(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    """A primary on its way up (restarted in place) keeps the lease, or is fenced."""
    if not world.store_ok:
        return _primary_without_store(settings, me, world)
    if world.leader == me.name:
        late = _restart_too_long(settings, me, world)
        if late is not None:
            return (
                Action(Do.DEMOTE, late),
                Action(Do.RELEASE_LEASE, "giving up the lease so a standby can take over"),
            )
        return (Action(Do.RENEW_LEASE, "keeping the lease while PostgreSQL starts"),)
    if world.leader is None:
        return (Action(Do.ACQUIRE_LEASE, "PostgreSQL starts as the primary: taking the lease"),)
    return (
        Action(
            Do.DEMOTE,
            f"demoting myself: {world.leader} holds the lease, so I must not start as a primary",
            target=world.leader,
        ),
    )


def _restart_too_long(settings: Settings, me: Local, world: World) -> str | None:
    """Why a leader whose server is coming back from a crash should stop waiting for it,
    or None. ``primary_start_timeout`` bounds the restart in place, as it bounds a server
    that stays down (Patroni does the same): a crash recovery that takes minutes on a
    stalled disk (the fault suite saw 3.5) is an outage a standby ends in seconds. Only
    when a standby can take over — running, streaming, within ``maximum_lag`` of the last
    primary position, and in the synchronous set in synchronous mode; otherwise waiting
    for the server is the only way back."""
    back = me.restarting_for
    if back is None or back < settings.primary_start_timeout:
        return None
    able = [
        p.name
        for p in world.peers
        if p.name != me.name
        and _eligible(p)
        and (not settings.synchronous or p.name in world.sync_set)
        and (p.position is None or _lag_verdict(settings, p.position, world) is None)
    ]
    if not able:
        return None
    return (
        f"PostgreSQL has been coming back for {back:.0f} s since it went down "
        f"(primary_start_timeout {settings.primary_start_timeout:g} s) and "
        f"{', '.join(able)} can take over: stopping it, to start again as a standby"
    )


def _manual(me: Local) -> tuple[Action, ...]:
    if me.crashed_for is not None:
        return (Action(Do.START, "PostgreSQL died; restarting it (failover is manual)"),)
    return (Action(Do.WAIT, "failover is manual; nothing to decide"),)


def _crashed(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    """PostgreSQL died under us. A leader restarts in place while that is quicker than a
    failover (and its lease keeps standbys from promoting); past primary_start_timeout it
    gives the lease up so the best standby takes over."""
    crashed_for = me.crashed_for or 0.0
    if world.leader == me.name and me.role is Role.PRIMARY:
        if me.watchdog_problem is not None:
            return (
                Action(
                    Do.RELEASE_LEASE,
                    f"PostgreSQL is down and {_unfit(me)}: giving up the lease so a standby "
                    "can take over",
                ),
            )
        # At boot the store may still hold this node's lease (etcd renews every lease when
        # it restarts): start in place; primary_start_timeout bounds restarts after crashes.
        if crashed_for >= settings.primary_start_timeout and not me.never_ran:
            return (
                Action(
                    Do.RELEASE_LEASE,
                    f"PostgreSQL has not come back for {crashed_for:.0f} s "
                    f"(primary_start_timeout {settings.primary_start_timeout:g} s): "
                    "giving up the lease so a standby can take over",
                ),
            )
        return (
            Action(Do.RENEW_LEASE, "keeping the lease while PostgreSQL restarts"),
            Action(
                Do.START,
                f"PostgreSQL is down ({crashed_for:.1f} s): restarting it in place, "
                "faster than a failover",
            ),
        )
    if me.role is Role.PRIMARY and world.leader not in (None, me.name):
        return (
            Action(
                Do.REJOIN,
                f"PostgreSQL is down and {world.leader} holds the lease now: "
                "coming back as its standby, never as a second primary",
                target=world.leader,
            ),
        )
    if me.role is Role.PRIMARY:
        return _down_primary_without_leader(settings, me, world)
    if me.diverged_from_leader and world.leader not in (None, me.name):
        return (
            Action(
                Do.REJOIN,
                f"PostgreSQL is down and my timeline has diverged from {world.leader}'s "
                "(it would never start on that WAL): rewinding to follow it",
                target=world.leader,
            ),
        )
    return (Action(Do.START, "PostgreSQL is down: starting it as a standby"),)


def _down_primary_without_leader(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    """A primary (by its files) is down and nobody holds the lease: a cold start of the
    cluster, or an agent back after a while. It may lead again only if nobody went ahead
    of it: no member runs as a primary, none is on a newer timeline (a promotion), and the
    last leader, if another node, answers and is not ahead."""
    if not world.store_ok:
        return (Action(Do.WAIT, "PostgreSQL is down and the store is unreachable: waiting"),)
    if me.watchdog_problem is not None:
        return (Action(Do.WAIT, f"not starting as the primary: {_unfit(me)}"),)
    if not me.never_ran and (me.crashed_for or 0.0) >= settings.primary_start_timeout:
        return (
            Action(
                Do.WAIT,
                "PostgreSQL did not come back within primary_start_timeout: leaving the "
                "lease to a standby",
            ),
        )
    for peer in world.peers:
        if peer.reachable and peer.pg is PgState.RUNNING and peer.role is Role.PRIMARY:
            return (Action(Do.WAIT, f"{peer.name} runs as a primary: not starting as another one"),)
        if peer.reachable and peer.timeline and me.timeline and peer.timeline > me.timeline:
            return (
                Action(
                    Do.WAIT,
                    f"{peer.name} is on timeline {peer.timeline}, newer than my {me.timeline}: "
                    "waiting for it to lead, then rejoining it",
                ),
            )
    last = world.last_leader
    if last is not None and last != me.name:
        led_last = next((p for p in world.peers if p.name == last), None)
        if led_last is not None and not led_last.reachable:
            return (
                Action(
                    Do.WAIT,
                    f"{last} led last and does not answer: waiting for it (it may be ahead "
                    "of me), or for an operator to choose (pgherd standby promote)",
                ),
            )
    return (
        Action(
            Do.ACQUIRE_LEASE,
            "no member holds the lease and none is ahead of my timeline: taking the lease",
        ),
        Action(Do.START, "starting PostgreSQL as the primary"),
    )


def _as_primary(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    if not world.store_ok:
        return _primary_without_store(settings, me, world)
    if me.watchdog_problem is not None and world.leader in (me.name, None):
        return (Action(Do.DEMOTE, f"demoting myself: {_unfit(me)}"),)
    if world.leader == me.name:
        actions = [Action(Do.RENEW_LEASE, "I am the leader: renewing the lease")]
        if settings.synchronous:
            actions.append(_sync_action(settings, me, world))
        return tuple(actions)
    if world.leader is None:
        return (
            Action(Do.ACQUIRE_LEASE, "I run as primary and the lease is free: taking it"),
            Action(Do.WAIT, "holding the lease as primary"),
        )
    return (
        Action(
            Do.DEMOTE,
            f"demoting myself: {world.leader} holds the lease, so I must not accept writes",
            target=world.leader,
        ),
    )


def _primary_without_store(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    deadline = me.lease_valid_until
    margin = settings.loop_wait + settings.retry_timeout
    if deadline is not None and me.now + margin < deadline:
        left = deadline - me.now
        return (Action(Do.WAIT, f"the store is unreachable; my lease holds for {left:.1f} s"),)
    if failsafe_holds(settings, me, world):
        return (
            Action(
                Do.WAIT,
                "the store is unreachable but every member answers me as their primary "
                "(failsafe): staying primary",
            ),
        )
    return (
        Action(
            Do.DEMOTE,
            "demoting myself: the store is unreachable and my lease may expire before the "
            "next cycle, after which a standby may be promoted",
        ),
    )


def failsafe_holds(settings: Settings, me: Local, world: World) -> bool:
    """Failsafe: with the store down, a primary that every other member answers (none of
    them a primary) may keep running: no standby promotes without the store, and the
    members it cannot reach are the only ones that could."""
    if not settings.failsafe or world.store_ok or me.role is not Role.PRIMARY:
        return False
    others = [p for p in world.peers if p.name != me.name]
    return bool(others) and all(p.reachable and p.role is not Role.PRIMARY for p in others)


def _sync_action(settings: Settings, me: Local, world: World) -> Action:
    """The standbys that stream from me now, except those that may never be promoted and
    those tagged nosync."""
    members = {p.name for p in world.peers if not p.nofailover and not p.nosync}
    # (pg_basebackup and other tools stream too, under their own application_name)
    streaming = sorted(n for n in me.streaming_standbys if n in members)
    return Action(
        Do.SET_SYNC,
        f"synchronous standbys: {', '.join(streaming) or 'none streaming'}",
        members=tuple(streaming),
    )


def _as_standby(settings: Settings, me: Local, world: World) -> tuple[Action, ...]:
    if not world.store_ok:
        return (Action(Do.WAIT, "the store is unreachable: a standby changes nothing"),)
    leader = world.leader
    if leader is not None and leader != me.name:
        if me.diverged_from_leader:
            return (
                Action(
                    Do.REJOIN,
                    f"my timeline has diverged from {leader}'s: rewinding to follow it",
                    target=leader,
                ),
            )
        wanted = _upstream_for(me, world, leader)
        if me.upstream != wanted:
            why = (
                f"following the leader {leader}"
                if wanted == leader
                else f"following {wanted} (replicate_from), {leader} leads"
            )
            return (Action(Do.FOLLOW, why, target=wanted),)
        return (Action(Do.WAIT, f"streaming from {me.upstream}; {leader} leads"),)
    if leader == me.name:
        if me.watchdog_problem is not None:
            return (
                Action(
                    Do.RELEASE_LEASE,
                    f"I hold the lease as a standby but {_unfit(me)}: giving it up",
                ),
            )
        return (
            Action(Do.RENEW_LEASE, "I hold the lease as a standby: finishing my promotion"),
            Action(Do.PROMOTE, "promoting: I hold the lease"),
        )
    for peer in world.peers:
        if peer.reachable and peer.pg is PgState.RUNNING and peer.role is Role.PRIMARY:
            return (
                Action(
                    Do.WAIT,
                    f"the lease is free but {peer.name} still runs as the primary: it takes "
                    "the lease again or demotes itself",
                ),
            )
        if (
            peer.reachable
            and peer.returning
            and (peer.timeline or 0) >= (me.timeline or 0)
            and not peer.nofailover
        ):
            return (
                Action(
                    Do.WAIT,
                    f"the lease is free and {peer.name}, a primary by its files on timeline "
                    f"{peer.timeline}, starts again: it leads (it holds every commit of its "
                    "timeline)",
                ),
            )
    waiting = _boot_grace(settings, me, world)
    if waiting is not None:
        return (Action(Do.WAIT, waiting),)
    verdict = candidate_verdict(settings, me, world)
    if verdict is not None:
        return (Action(Do.WAIT, f"not taking over: {verdict}"),)
    return (
        Action(Do.ACQUIRE_LEASE, "the lease expired and I am the healthiest candidate"),
        Action(Do.PROMOTE, "promoting: I took the lease"),
    )


def _upstream_for(me: Local, world: World, leader: str) -> str:
    """The leader, or the standby this one is configured to cascade from (``replicate_from``)
    while that one runs. Under automatic failover the agents own the topology: a standby
    left streaming from a demoted primary, or from a node an operator pointed it at, is
    brought back under the leader."""
    wanted = me.replicate_from
    if wanted is None or wanted in (leader, me.name):
        return leader
    for peer in world.peers:
        if peer.name == wanted and peer.reachable and peer.role is Role.STANDBY:
            return wanted if peer.pg is PgState.RUNNING else leader
    return leader


def candidate_verdict(settings: Settings, me: Local, world: World) -> str | None:
    """None when this standby should take the expired lease; else the reason it should not."""
    if me.nofailover:
        return "I am tagged nofailover"
    if me.watchdog_problem is not None:
        return _unfit(me)
    if me.position is None:
        return "my WAL position is unknown"
    lag = _lag_verdict(settings, me.position, world)
    if lag is not None:
        return f"I am {lag}"
    if world.last_primary_position is None and not settings.synchronous:
        problem = _cold_start_verdict(me, world)
        if problem is not None:
            return problem
    candidates = [p for p in world.peers if p.name != me.name and _eligible(p)]
    if settings.synchronous:
        problem = _sync_verdict(settings, me, world)
        if problem is not None:
            return problem
        candidates = [p for p in candidates if p.name in world.sync_set]
    for peer in candidates:
        assert peer.position is not None
        if peer.position > me.position or (
            peer.position == me.position and _wins_tie(peer.name, me.name, world.last_leader)
        ):
            return f"{peer.name} is at {peer.position}, at least as far as my {me.position}"
    return None


def _lag_verdict(settings: Settings, position: Lsn, world: World) -> str | None:
    """How far ``position`` is behind the last primary position, when that is more than
    ``maximum_lag``; None when within it, or when no primary position is known. Whoever
    takes over (by failover, or in place of a primary slow to restart) may lose at most
    that much."""
    known = world.last_primary_position
    if known is None or known - position <= settings.maximum_lag:
        return None
    return (
        f"{known - position} bytes behind the last primary position {known} "
        f"(maximum_lag {settings.maximum_lag})"
    )


def _boot_grace(settings: Settings, me: Local, world: World) -> str | None:
    """A standby just started and has seen no leader at work, the lease free, the last
    leader silent: perhaps the whole cluster was restarted and the former primary comes
    back a little later; give it BOOT_GRACE_TTLS × ttl from this agent's start before
    taking over in its place."""
    last, up = world.last_leader, me.booting_for
    grace = BOOT_GRACE_TTLS * settings.ttl
    if up is None or up >= grace or last in (None, me.name):
        return None
    if any(p.name == last and not p.reachable for p in world.peers):
        return (
            f"the lease is free and {last}, which led last, does not answer yet: this agent "
            f"started less than {grace:.0f} s ago, so {last} has until then to come back "
            "(after a cold start the former primary leads)"
        )
    return None


def _cold_start_verdict(me: Local, world: World) -> str | None:
    """No leader checked in lately (a cold start, or every agent was away): nobody can say
    how far the last primary got, so a standby leads only with every member's word — each
    running, so that its position compares (then the most advanced leads, no commit lost).
    A member on an older timeline than mine cannot be ahead: it is not waited for."""
    waiting = [
        p.name
        for p in world.peers
        if p.name != me.name
        and (
            not p.reachable
            or (p.pg is not PgState.RUNNING and (p.timeline or 0) >= (me.timeline or 0))
        )
    ]
    if waiting:
        return (
            f"no leader checked in lately (a cold start?): waiting for {', '.join(waiting)} "
            "to run, to compare positions, so that the most advanced member leads "
            "(pgherd standby promote chooses by hand)"
        )
    return None


def _wins_tie(peer: str, me: str, last_leader: str | None) -> bool:
    """Equally advanced: the last leader leads again (no needless change of primary after
    the store came back), else the lowest name."""
    if last_leader in (peer, me):
        return peer == last_leader
    return peer < me


def _eligible(peer: Peer) -> bool:
    return (
        peer.reachable
        and peer.in_store
        and peer.pg is PgState.RUNNING
        and peer.role is Role.STANDBY
        and not peer.nofailover
        and peer.position is not None
    )


def _sync_verdict(settings: Settings, me: Local, world: World) -> str | None:
    """In synchronous mode a commit was acknowledged by ``sync_quorum`` of the sync set;
    to be sure to hold every acknowledged commit, a candidate must be in the set and see
    ``len(set) - quorum + 1`` of its members (itself included)."""
    if me.name not in world.sync_set:
        return "synchronous mode: only a synchronous standby may be promoted"
    seen = 1 + sum(
        1 for p in world.peers if p.name in world.sync_set and p.name != me.name and p.reachable
    )
    needed = len(world.sync_set) - world.sync_quorum + 1
    if seen < needed:
        return (
            f"synchronous mode: I see {seen} of the synchronous set "
            f"{', '.join(world.sync_set)}, {needed} are needed to be sure I am the most advanced"
        )
    return None


def sync_set_while_promoting(me: str) -> tuple[tuple[str, ...], int]:
    """The store's synchronous set (members, quorum) while ``me`` promotes, until its first
    cycle as the primary names its standbys. Its server acknowledges commits by a stale
    setting meanwhile (maybe none), so nobody else may be promoted over it — but it may:
    a promotion that fails half-way (its fence fired, it crashed) must leave the candidate
    free to try again. An empty set would leave no member that may ever lead (found by
    the fault suite: a promotion slowed past the lease on a loaded machine, then every
    member a standby, for good)."""
    return (me,), 1


def sync_standby_names(members: Sequence[str], quorum: int) -> str:
    """synchronous_standby_names for a quorum of ``members`` ('' turns it off)."""
    if not members:
        return ""
    names = ", ".join(f'"{m}"' for m in sorted(members))
    return f"ANY {min(quorum, len(members))} ({names})"
