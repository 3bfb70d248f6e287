"""ha/clock.py: a fence moment on an agent's own clock reaches the keeper on the system's
(the fault suite's clock-back fault runs it end to end, in bench/faults.py)."""

from __future__ import annotations

import time

import pytest

from pgherd.ha.clock import SYSTEM, system_monotonic


class Skewed:
    """The machine's clocks, ``offset`` seconds off (as tests/faults/skewed_agent.py)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("offset", [-30.0, 0.0, 3600.0])
def test_a_moment_on_a_skewed_clock_is_as_far_ahead_on_the_systems(offset: float) -> None:
    clock = Skewed(offset)
    deadline = clock.monotonic() + 2.0  # the lease's end, as the agent sees it
    on_system = system_monotonic(clock, deadline)
    assert on_system - time.monotonic() == pytest.approx(2.0, abs=0.05)


def test_the_systems_clock_is_taken_as_it_is() -> None:
    assert system_monotonic(SYSTEM, 123.5) == 123.5
