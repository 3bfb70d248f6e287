"""What an HA cycle looks at, and when. Pure.

Observation does the I/O (ha/observe.py); these rules say when it is worth more than the
steady state's reads: the peers' own word when the primary role may move, and a
comparison of WAL histories with the leader when a standby of it stopped streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgherd.model.status import PgState, Role

# How long a standby of the leader may go without streaming before its agent compares its
# WAL with the leader's; and how long it waits before comparing again while that lasts.
DIVERGENCE_AFTER = 2.0


@dataclass(frozen=True)
class DivergenceWatch:
    """Since when this standby of the leader has not streamed, and when its WAL was last
    compared with the leader's (monotonic seconds)."""

    not_streaming_since: float | None = None
    last_compared: float = 0.0


@dataclass(frozen=True)
class DivergenceCheck:
    watch: DivergenceWatch  # what to remember for the next cycle
    compare_now: bool  # ask the leader for its WAL and compare


def watch_divergence(
    watch: DivergenceWatch,
    me: str,
    pg: PgState,
    role: Role,
    streaming: bool,
    upstream: str | None,
    leader: str | None,
    now: float,
) -> DivergenceCheck:
    """A running standby of the leader that has not streamed for DIVERGENCE_AFTER seconds
    may have WAL the leader never had (it was a primary, or followed one, on a timeline
    that forked): compare, at most every DIVERGENCE_AFTER seconds, so that decide() can
    send it to rejoin. So may a standby whose server keeps exiting while a leader leads
    (``crashed``): PostgreSQL refuses to start on WAL of a timeline that forked elsewhere
    ("WAL location … belongs to timeline 2, but previous recovered WAL file came from
    timeline 3", after two promotions made two different timelines 3), and restarting it
    again and again would never end; compared from its files, a diverged one is rewound
    or cloned like a running one."""
    silent_standby = (
        pg is PgState.RUNNING and role is Role.STANDBY and not streaming and upstream == leader
    )
    crash_looping = pg is PgState.CRASHED and role is Role.STANDBY
    if not (silent_standby or crash_looping) or leader is None or leader == me:
        return DivergenceCheck(DivergenceWatch(None, watch.last_compared), False)
    since = now if watch.not_streaming_since is None else watch.not_streaming_since
    if now - since < DIVERGENCE_AFTER or now - watch.last_compared < DIVERGENCE_AFTER:
        return DivergenceCheck(DivergenceWatch(since, watch.last_compared), False)
    return DivergenceCheck(DivergenceWatch(since, now), True)


def needs_fresh_peers(
    store_ok: bool, leader: str | None, pg: PgState, paused: bool = False
) -> bool:
    """Steady state reads the peers from their check-ins; a decision that may move the
    primary role asks them directly (the lease is free, the store is down, or this node's
    server does not run). While failover is paused no decision moves it: a new primary
    taking the lease an operation freed needs nobody's word, and must not wait for it."""
    if store_ok and paused:
        return False
    return not store_ok or leader is None or pg is not PgState.RUNNING


@dataclass(frozen=True)
class CheckinSilence:
    """Since when (this agent's monotonic seconds) each member's check-in in the store has
    not changed. An agent checks in every cycle it reaches the store; one whose check-in
    stood still for a lease cannot take the lease either, so a standby must not wait for
    it to lead (a primary cut from the store demotes itself and stays a reachable,
    equally advanced standby: every other standby deferring to it left the cluster with
    no primary for as long as the cut lasted). Measured on the reader's own clock, as
    changes it saw, never by comparing the writer's wall time with its own (skew)."""

    started: float  # when this agent began watching: a member never seen is silent since
    seen: tuple[tuple[str, float, float], ...] = ()  # (name, the check-in's time, changed at)

    def note(self, checked_in: dict[str, float], now: float) -> CheckinSilence:
        """This cycle's check-ins (name → the time written in each)."""
        before = {name: (at, changed) for name, at, changed in self.seen}
        rows = []
        for name, at in sorted(checked_in.items()):
            old = before.get(name)
            rows.append((name, at, old[1] if old is not None and old[0] == at else now))
        return CheckinSilence(self.started, tuple(rows))

    def silent_for(self, name: str, now: float) -> float:
        for seen_name, _at, changed in self.seen:
            if seen_name == name:
                return now - changed
        return now - self.started
