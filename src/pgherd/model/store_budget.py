"""How one call to the coordination store spends ``retry_timeout`` across etcd's endpoints.

The timing rule (``ttl >= loop_wait + 2 × retry_timeout``, model/ha_settings.py) holds only
if every store call gives up within ``retry_timeout``, however many endpoints it tries.
So a call has one deadline, ``retry_timeout`` after it starts, and each attempt on an
endpoint may wait only a part of what is left of it:

- **the preferred endpoint** (the one that answered last) gets **half** of the budget when
  others remain to be tried. It is the one most likely to answer, and on a lossy link
  the wait that saves the call is one TCP retransmission: Linux resends after the round
  trip plus at least 200 ms, so a lost packet costs ~0.25 s on a short link and ~0.6 s
  behind 200 ms of delay. An equal third of the default 1 s (0.33 s) barely covered the
  first; half of it does, and half of the 2 s docs/failover.md recommends for delayed
  links covers the second;
- **the others** split what is left equally, each getting ``left / untried``; the last
  one tried gets all that is left;
- an attempt that fails at once (a refused connection) spends nothing, so the ones after
  it get more: each share is computed from the clock, not fixed in advance.

Each limit is at most what is left, so the attempts of one call never add up to more than
the budget, whatever each of them actually takes (tests/unit/test_store_budget.py proves
it over tables and random cases). One pass over the endpoints, no second round: a call
that found every endpoint failing is reported at once, and the HA loop's next cycle tries
again.

Patroni's etcd client divides its ``retry_timeout`` (10 s by default) equally between
the members, drops members from a pass rather than give one less than 1 s, and retries
within the deadline. Its budgets are ten times pgherd's, which is why an equal split
works for it; at pgherd's 1 s an equal split leaves each member too little to survive
one lost packet, and the preferred member, which answers almost every call, is the one
whose share matters. pgherd also keeps a connection open to every endpoint
(dcs/etcd_transport.py), so an attempt on another endpoint pays no TCP and TLS handshake
inside its share (Patroni drops its pool when a request fails and reconnects).
"""

from __future__ import annotations

PREFERRED_SHARE = 0.5  # of what is left, for the endpoint that answered last


def attempt_limit(remaining: float, untried: int, preferred: bool) -> float:
    """How long the next attempt may wait: ``remaining`` seconds of the call's budget are
    left and ``untried`` endpoints, this one included, have not been tried yet;
    ``preferred``: this is the endpoint that answered last (the call's first attempt).
    0 when nothing is left: the attempt is not made."""
    if remaining <= 0 or untried <= 0:
        return 0.0
    if untried == 1:
        return remaining
    if preferred:
        return remaining * PREFERRED_SHARE
    return remaining / untried


def worst_case(budget: float, endpoints: int) -> tuple[float, ...]:
    """The limit of each attempt of a call whose every attempt waits its whole limit and
    fails: the shares of the budget, in the order the endpoints are tried."""
    limits: list[float] = []
    left = budget
    for tried in range(endpoints):
        limit = attempt_limit(left, endpoints - tried, preferred=tried == 0)
        limits.append(limit)
        left -= limit
    return tuple(limits)
