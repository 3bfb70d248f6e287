"""What each agent writes to the store every HA cycle (``members/<name>``).

Peers read each other from these check-ins in steady state, so a cycle costs one store
read instead of a request to every agent; agents are asked over their API only when a
decision needs fresh figures (the lease is free, or the store is down). The leader's
check-in doubles as the last primary position standbys measure ``maximum_lag`` against.
Check-ins live a day (:func:`keep_for`), far longer than the lease: a lost leader's last
position is still readable when its lease has expired, and ``cluster show`` tells when an
unreachable member last checked in (not "never"); a check-in older than the lease counts
as unreachable. A member stopped on purpose removes its own.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import ValidationError

from pgherd.dcs.base import Member
from pgherd.model.ha import Local
from pgherd.model.lsn import Lsn
from pgherd.model.status import Frozen, LsnField, PgState, Role

CHECKIN_TTL_FACTOR = 10.0
CHECKIN_KEEP = 86400.0  # seconds: a day


def keep_for(ttl: float) -> float:
    """How long the store keeps a check-in: a day, and never less than 10 leases."""
    return max(ttl * CHECKIN_TTL_FACTOR, CHECKIN_KEEP)


class CheckIn(Frozen):
    name: str
    kind: Literal["data", "witness"] = "data"
    api_url: str
    state: PgState = PgState.STOPPED
    role: Role = Role.UNKNOWN
    timeline: int | None = None
    position: LsnField | None = None
    upstream: str | None = None
    streaming: bool = False
    nofailover: bool = False
    leader: bool = False  # it held the lease when it wrote this
    decision: str = ""  # the sentence of its last HA cycle
    at: float  # seconds since the epoch
    # The fingerprint of the pgherd.yaml its agent runs with (config.fingerprint):
    # ``cluster show`` names the members whose agents differ.
    config_fingerprint: str = ""

    @classmethod
    def of(
        cls,
        me: Local,
        api_url: str,
        leader: bool,
        decision: str,
        at: float,
        config_fingerprint: str = "",
    ) -> CheckIn:
        """What this node tells the others of itself: the node its HA cycle decided on."""
        return cls(
            name=me.name,
            api_url=api_url,
            state=me.pg,
            role=me.role,
            timeline=me.timeline,
            position=me.position,
            upstream=me.upstream,
            streaming=me.streaming,
            nofailover=me.nofailover,
            leader=leader,
            decision=decision,
            at=at,
            config_fingerprint=config_fingerprint,
        )

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.at)


def parse(member: Member) -> CheckIn | None:
    try:
        return CheckIn.model_validate_json(member.data)
    except ValidationError:
        return None


def checkins(members: tuple[Member, ...]) -> dict[str, CheckIn]:
    found = {}
    for member in members:
        checkin = parse(member)
        if checkin is not None:
            found[member.name] = checkin
    return found


def last_primary_position(found: dict[str, CheckIn]) -> Lsn | None:
    """The position in the newest check-in written by a leader running as the primary."""
    leaders = [
        c for c in found.values() if c.leader and c.role is Role.PRIMARY and c.position is not None
    ]
    if not leaders:
        return None
    newest = max(leaders, key=lambda c: c.at)
    return newest.position
