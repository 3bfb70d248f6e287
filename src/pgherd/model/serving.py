"""What each load-balancer check answers, decided from what the agent knows now. Pure.

The checks are Patroni's (``/primary``, ``/read-write``, ``/replica``, ``/read-only``,
``/liveness``, ``/readiness``, ``/failsafe``, ``/quorum``): 200 when the node should get
that kind of traffic, 503 when not, with the sentence that says why. They run many times
a second (HAProxy checks every node every few hundred ms), so they read the HA loop's last
cycle and the supervisor, never PostgreSQL or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pgherd.model.status import PgState, Role

# A standby whose stream stopped (its upstream went away in a switchover or a failover and
# it is being re-pointed) keeps serving reads this long: emptying the read pool for the
# seconds a failover takes hurts clients more than reads a second or two stale.
STREAM_GRACE = 10.0


@dataclass(frozen=True)
class Serving:
    """What the checks need to know about the node right now."""

    pg: PgState
    role: Role
    may_write: bool  # holds the lease now, or failsafe allows it (manual: runs as primary)
    streaming: bool
    not_streaming_for: float | None = None  # seconds since a standby last streamed
    lag_bytes: int | None = None  # behind the leader's last published position
    demoting: bool = False  # the agent is stopping it as a primary (fencing, switchover)
    failsafe: bool = False  # writable only because failsafe holds (the store is down)
    noloadbalance: bool = False  # tagged: never in the read pool
    alive: bool = True  # the agent's loop cycled recently (liveness)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    ok: bool
    reason: str


def primary(s: Serving) -> Answer:
    """Writes go here: the primary that may take writes, and not on its way down."""
    if s.demoting:
        return Answer(False, "it is being demoted: it stops taking writes now")
    if s.pg is not PgState.RUNNING:
        return Answer(False, f"PostgreSQL is {s.pg}")
    if s.role is not Role.PRIMARY:
        return Answer(False, f"it runs as a {s.role}")
    if not s.may_write:
        return Answer(False, "it runs as a primary without the leader lease")
    if s.failsafe:
        return Answer(
            True, "the primary, kept by failsafe: the store is down and every member answers it"
        )
    return Answer(True, "the primary, holding the leader lease")


def replica(s: Serving, max_lag: int | None = None) -> Answer:
    """Reads go here: a running standby, not tagged noloadbalance, streaming (or briefly
    re-pointed), and within ``max_lag`` bytes of the leader when asked."""
    if s.pg is not PgState.RUNNING:
        return Answer(False, f"PostgreSQL is {s.pg}")
    if s.role is not Role.STANDBY:
        return Answer(False, f"it runs as a {s.role}")
    if s.noloadbalance:
        return Answer(False, "tagged noloadbalance: it takes no read traffic")
    lagging = _lag_problem(s, max_lag)
    if lagging is not None:
        return Answer(False, lagging)
    if s.streaming:
        return Answer(True, "a streaming standby")
    if s.not_streaming_for is not None and s.not_streaming_for < STREAM_GRACE:
        return Answer(
            True, f"a standby being re-pointed (not streaming for {s.not_streaming_for:.1f} s)"
        )
    return Answer(False, "a standby that does not stream from its upstream")


def read_only(s: Serving, max_lag: int | None = None) -> Answer:
    """Either: the node answers reads (a standby that does not stream: maybe stale)."""
    found = primary(s)
    if found.ok:
        return found
    if s.pg is PgState.RUNNING and s.role is Role.STANDBY:
        lagging = _lag_problem(s, max_lag)
        if lagging is not None:
            return Answer(False, lagging)
        if s.streaming:
            return Answer(True, "a streaming standby")
        return Answer(True, "a standby (not streaming: reads may be stale)")
    return found


def liveness(s: Serving) -> Answer:
    """The agent itself works (its loop cycles): restart it when not."""
    if not s.alive:
        return Answer(False, "the agent's HA loop has not cycled for longer than the lease")
    return Answer(True, "the agent's loop runs")


def readiness(s: Serving, max_lag: int | None = None) -> Answer:
    """The node serves what its role promises: the writable primary, or a standby that
    streams (within ``max_lag``)."""
    if s.role is Role.PRIMARY:
        return primary(s)
    return replica(replace(s, noloadbalance=False), max_lag)


def _lag_problem(s: Serving, max_lag: int | None) -> str | None:
    if max_lag is None:
        return None
    if s.lag_bytes is None:
        return "its lag behind the leader is unknown (no leader position in the store)"
    if s.lag_bytes > max_lag:
        return f"{s.lag_bytes} bytes behind the leader, more than lag={max_lag}"
    return None
