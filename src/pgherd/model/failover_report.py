"""Why a failover went the way it did, in words, for its cluster event. Pure.

An automatic failover's event names the lost leader, when it was last seen renewing its
lease (its last check-in as leader), and every candidate with its position and why it
was or was not chosen. Each candidate is judged by the same rule the HA loop applies to
itself (:func:`pgherd.model.ha.candidate_verdict`), from that candidate's point of view
with the others as its peers, so the report cannot disagree with the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pgherd.model.ha import Local, Peer, World, candidate_verdict
from pgherd.model.ha_settings import Settings
from pgherd.model.status import PgState, Role


@dataclass(frozen=True)
class LostLeader:
    name: str | None  # who held the lease last (None: nobody known)
    last_seen: float | None  # seconds since the epoch of its last check-in as leader


@dataclass(frozen=True)
class Candidate:
    name: str
    position: str | None
    chosen: bool
    why: str


def candidates(settings: Settings, me: Local, world: World) -> list[Candidate]:
    """Every data member but the lost leader, judged as it would judge itself."""
    members = [_as_peer(me), *world.peers]
    found = []
    for member in members:
        if member.name == world.last_leader and member.name != me.name:
            continue
        if member.name == me.name:
            verdict = candidate_verdict(settings, me, world)
        elif not member.reachable:
            verdict = "its agent did not answer"
        elif member.pg is not PgState.RUNNING:
            verdict = f"PostgreSQL is {member.pg}"
        elif member.role is not Role.STANDBY:
            verdict = f"it runs as a {member.role}"
        else:
            others = tuple(p for p in members if p.name != member.name)
            verdict = candidate_verdict(
                settings, _as_local(member, me), replace(world, peers=others)
            )
        position = str(member.position) if member.position is not None else None
        why = "chosen: the most advanced healthy candidate" if verdict is None else verdict
        found.append(Candidate(member.name, position, verdict is None, why))
    return found


def sentence(lost: LostLeader, found: list[Candidate], now: float) -> str:
    """``node1 was lost (its lease last renewed 12:00:01 UTC, 3.4 s before); node2 at
    0/5000060 chosen: ...; node3 at 0/5000000 not: ...``"""
    if lost.name is None:
        head = "no leader held the lease"
    elif lost.last_seen is None:
        head = f"{lost.name} was lost (no check-in of it as leader in the store)"
    else:
        at = datetime.fromtimestamp(lost.last_seen, UTC).strftime("%H:%M:%S.%f")[:-3]
        head = (
            f"{lost.name} was lost (its lease last renewed at {at} UTC, "
            f"{max(0.0, now - lost.last_seen):.1f} s before)"
        )
    parts = []
    for c in found:
        where = f" at {c.position}" if c.position else ""
        verdict = c.why if c.chosen else f"not chosen ({c.why})"
        parts.append(f"{c.name}{where} {verdict}")
    return f"{head}; candidates: " + "; ".join(parts) if parts else head


def details(lost: LostLeader, found: list[Candidate]) -> dict[str, str]:
    """The same facts as event details (string values, as events keep them)."""
    out = {
        "lost_leader": lost.name or "",
        "candidates": ", ".join(
            f"{c.name}@{c.position or '?'}{' (chosen)' if c.chosen else ''}" for c in found
        ),
    }
    if lost.last_seen is not None:
        out["lease_last_renewed"] = datetime.fromtimestamp(lost.last_seen, UTC).isoformat()
    return out


def _as_peer(me: Local) -> Peer:
    return Peer(
        me.name,
        reachable=True,
        pg=me.pg,
        role=me.role,
        timeline=me.timeline,
        position=me.position,
        nofailover=me.nofailover,
    )


def _as_local(peer: Peer, me: Local) -> Local:
    return Local(
        name=peer.name,
        pg=peer.pg,
        role=peer.role,
        timeline=peer.timeline,
        position=peer.position,
        nofailover=peer.nofailover,
        now=me.now,
    )
