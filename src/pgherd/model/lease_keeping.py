"""When the lease is renewed on the HA loop's behalf, while a cycle is held up in
PostgreSQL work (ha/lease_keeper.py carries it out).

The loop renews its lease once a cycle, and the timing rule
(``ttl >= loop_wait + 2 × retry_timeout``) bounds every store call a cycle makes. It
cannot bound PostgreSQL's: a server that is alive but slow can hold a cycle up for
longer than the lease. Ten minutes of the heaviest load found it (docs/reliability.md,
finding 11): on a disk allowed 20 writes a second, opening a connection to set the
synchronous standbys took 8 s, the 3 s lease lapsed, and a standby took over from a
primary that was still serving.

So a cycle that read its server answering and decided to keep the lease gives a
*mandate*: for ``primary_start_timeout`` from then — the time a primary's server may
fail to serve before a standby takes over, as after a crash — the lease is renewed
whenever the loop has not renewed it for ``loop_wait + retry_timeout / 2``. That is
later than a healthy loop ever leaves it, and early enough that a renewal bounded by
``retry_timeout`` still lands inside the lease (the timing rule leaves that room).

A cycle that decides anything else ends the mandate before it acts (a demotion never
races a renewal). A cycle whose server did not answer keeps the mandate as it was but
does not lengthen it: a server that stays hung loses the lease ``primary_start_timeout``
plus a ``ttl`` after it last answered, and the fence stops it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pgherd.model.ha import Action, Do
from pgherd.model.ha_settings import Settings

KEEPS_LEASE = frozenset({Do.RENEW_LEASE, Do.ACQUIRE_LEASE})


@dataclass(frozen=True)
class Mandate:
    """Renew on the loop's behalf until ``until`` (monotonic seconds)."""

    until: float
    arm: bool  # this node runs, or is about to run, as the primary: a renewal arms the fence


def after_deciding(
    settings: Settings,
    current: Mandate | None,
    actions: Iterable[Action],
    answered: bool,
    arm: bool,
    now: float,
) -> Mandate | None:
    """The mandate once a cycle decided ``actions``; ``answered``: its server answered
    this cycle's read."""
    if not any(a.do in KEEPS_LEASE for a in actions):
        return None
    if not answered:
        return current
    return Mandate(until=now + settings.primary_start_timeout, arm=arm)


def overdue_after(settings: Settings) -> float:
    """How long after the last renewal the loop counts as held up."""
    return settings.loop_wait + settings.retry_timeout / 2


def renewal_due(
    settings: Settings,
    mandate: Mandate | None,
    renewed_at: float | None,
    lease_until: float | None,
    now: float,
) -> bool:
    """Whether to renew on the loop's behalf now. Never a lease this node no longer
    believes it holds (its own reckoning runs out first): that one the fence ends."""
    if mandate is None or now >= mandate.until:
        return False
    if renewed_at is None or lease_until is None or now >= lease_until:
        return False
    return now - renewed_at >= overdue_after(settings)


def tick_every(settings: Settings) -> float:
    """How often the keeper looks: a small part of the room a renewal has."""
    return max(0.02, min(settings.loop_wait, settings.retry_timeout) / 4)
