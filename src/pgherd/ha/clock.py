"""The agent's clock: every time the HA loop, its executor, its fence and the supervisor
read comes from one :class:`Clock`, so that a test can give an agent a clock of its own
(tests/faults: the primary's agent sees its clock jump, while every test host shares the
machine's).

Two readings, for two purposes:

- ``monotonic()`` (CLOCK_MONOTONIC): every duration and deadline the agent decides on —
  the lease's deadline, the fence's moment, how long PostgreSQL has been down, when a
  check-in counts as fresh for liveness. It never steps, so an NTP correction or an
  operator's ``date -s`` cannot make a primary believe its lease lasts longer than it does;
- ``time()`` (the wall clock): what other hosts read — the time stamp of a check-in in
  the store, of a cluster event, of a pause's end — and what operators read in logs.

The postmaster's keeper (pg/keeper.py) reads CLOCK_MONOTONIC itself: a fence moment the
agent hands it goes through :func:`system_monotonic`, which translates a moment on the
agent's clock into the system's.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never steps (durations, deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (time stamps other hosts read)."""
        ...


class SystemClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


SYSTEM = SystemClock()


def system_monotonic(clock: Clock, at: float) -> float:
    """The moment ``at`` of ``clock``'s monotonic reading, on the system's CLOCK_MONOTONIC
    (what another process of this host, the keeper, reads)."""
    if isinstance(clock, SystemClock):
        return at
    return at - clock.monotonic() + time.monotonic()
