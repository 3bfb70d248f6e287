"""How long a login must wait after failed ones. Pure: the console keeps the failures.

Five failures in a quarter of an hour are free (typos happen); each one after doubles
the wait before the next attempt, from one second up to a quarter of an hour. Kept per
user name and per client address, and the longer wait applies: guessing one user's
password from many addresses, or many users' from one address, both slow down, while a
user who mistyped elsewhere is not locked out by someone else's guessing from one place
for longer than that place's own wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    free: int = 5
    window: float = 900.0  # seconds a failure counts
    first_wait: float = 1.0
    longest_wait: float = 900.0


DEFAULT = Policy()


def recent(failures: Sequence[float], now: float, policy: Policy = DEFAULT) -> list[float]:
    """The failures that still count, oldest first."""
    return sorted(t for t in failures if now - t < policy.window)


def wait(failures: Sequence[float], now: float, policy: Policy = DEFAULT) -> float:
    """Seconds until another attempt may be checked (0: now)."""
    counted = recent(failures, now, policy)
    extra = len(counted) - policy.free
    if extra < 0:
        return 0.0
    delay = min(policy.longest_wait, policy.first_wait * 2.0 ** min(extra, 30))
    return max(0.0, counted[-1] + delay - now)
