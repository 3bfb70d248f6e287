"""Where a backup's or a restore's time goes: seconds per phase, measured where each
phase runs (``time.monotonic``), reported as ``phases`` in ``--json``.

Phases follow one another and never overlap, so they add up to no more than the
operation's wall time; what no phase covers (the rest of the CLI's own work) is the
difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pgherd.pg.process import own_age


class Phases:
    """Named, consecutive spans of one operation, in the order they ran."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seconds: dict[str, float] = {}

    def now(self) -> float:
        return self._clock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (added to an earlier span of the same name)."""
        began = self._clock()
        try:
            yield
        finally:
            self.add(name, self._clock() - began)

    def add(self, name: str, seconds: float) -> None:
        """A span timed elsewhere (between two readings of :meth:`now`)."""
        self._seconds[name] = self._seconds.get(name, 0.0) + max(0.0, seconds)

    def as_json(self) -> dict[str, float]:
        """Seconds per phase, in the order the phases ran, cut (not rounded) to the
        millisecond: their sum never exceeds the time measured."""
        # (the 1e-9: 0.3 s measured as 0.29999… is 0.3, not 0.299)
        return {name: math.floor(s * 1000 + 1e-6) / 1000 for name, s in self._seconds.items()}

    @property
    def total(self) -> float:
        return sum(self._seconds.values())


def from_process_start() -> Phases:
    """The phases of a command, opened by ``cli_start``: from the process's start (the
    interpreter, the CLI's imports) to now."""
    phases = Phases()
    phases.add("cli_start", own_age() or 0.0)
    return phases
