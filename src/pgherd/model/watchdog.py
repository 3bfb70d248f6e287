"""The watchdog (``ha.watchdog: /dev/watchdog``), decided. Pure.

A watchdog device resets the machine when nobody writes to it for its timeout: the last
line of defence for a primary whose agent does not get to run at all (a kernel that
hangs, a host starved of CPU, a VM paused), when neither the agent's fence thread nor the
postmaster's keeper can stop PostgreSQL before its lease expires (docs/failover.md).

The agent's watchdog follows its fence (ha/fence.py), which knows until when this node may
take writes (the lease's deadline, measured from before the renewal was sent, or a
failsafe extension):

- **arm** it as soon as the node may take writes (before a promotion, before a primary
  starts, when a running primary's lease is first renewed), and ping it at once;
- **ping** it whenever the fence moves on (every renewal, every cycle of a leader) — but
  only if the device, pinged now, fires no later than the moment writes must stop: a ping
  that would let the machine run past the lease is not sent, and the device fires on the
  previous one, earlier;
- **disarm** it (the magic close, ``V``) when the node may take writes no longer: it
  demotes, its server stops or is fenced, it gives the lease up, its agent stops cleanly.

So when the agent stops pinging, the machine resets before the lease can expire and a
standby be promoted — whatever else is stuck.

The device's timeout is whole seconds: the largest that still leaves half a second of a
lease for a renewal's round trip and the ping. It must also outlast the longest gap between
two pings of a healthy leader (a cycle whose store call takes its whole retry_timeout),
or a slow store would reset a healthy primary: :func:`timing_problem` says when the
settings do not allow a watchdog.
"""

from __future__ import annotations

import math
from enum import StrEnum

ROUND_TRIP = 0.5  # seconds of a lease kept for the renewal's answer and the ping


class Dog(StrEnum):
    NOTHING = "nothing"
    ARM = "arm"  # open the device, set its timeout, ping
    PING = "ping"
    DISARM = "disarm"  # the magic close: write "V", close


def timeout_for(ttl: float) -> int:
    """The device's timeout for a lease of ``ttl`` seconds (0: a lease too short)."""
    return max(0, math.floor(ttl - ROUND_TRIP))


def timing_problem(ttl: float, loop_wait: float, retry_timeout: float) -> str | None:
    """Why these settings do not allow a watchdog, or None."""
    timeout = timeout_for(ttl)
    gap = loop_wait + retry_timeout
    if timeout < 1 or timeout <= gap:
        need = math.floor(gap) + 1 + ROUND_TRIP
        return (
            f"ha.watchdog needs a device timeout (whole seconds, at most ttl - {ROUND_TRIP:g}: "
            f"{timeout} s) longer than the longest gap between two pings of a healthy leader "
            f"(loop_wait + retry_timeout = {gap:g} s): raise ttl to at least {need:g} s"
        )
    return None


def order(armed: bool, writes_until: float | None, now: float, timeout: int) -> Dog:
    """What to do with the device now: ``armed`` whether it is; ``writes_until`` until
    when this node may take writes (monotonic seconds; None: it may not)."""
    if writes_until is None or now >= writes_until:
        return Dog.DISARM if armed else Dog.NOTHING
    if now + timeout > writes_until:
        # Pinged now, the device would let the machine run past the moment writes must
        # stop: let it fire on the last ping instead (earlier). Not armed yet: arming now
        # would be such a ping, so wait for the next renewal.
        return Dog.NOTHING
    return Dog.PING if armed else Dog.ARM
