"""How long the agent waits before restarting a PostgreSQL that keeps crashing."""

from __future__ import annotations

from pgherd.model.backoff import Backoff


def crash_delays(backoff: Backoff, started: float, crashes: int) -> list[float]:
    """Delays for ``crashes`` crashes, each soon (1 s) after the restart before it."""
    delays = []
    now = started
    backoff.last_start = now
    for _ in range(crashes):
        now += 1
        delay = backoff.next_delay(now)
        delays.append(delay)
        now += delay
        backoff.last_start = now  # the restart
    return delays


def test_first_restart_is_immediate_then_the_wait_doubles_up_to_the_limit() -> None:
    assert crash_delays(Backoff(), 1000.0, 8) == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_the_limit_is_configurable() -> None:
    assert crash_delays(Backoff(limit=5.0), 1000.0, 5) == [0.0, 2.0, 4.0, 5.0, 5.0]


def test_a_server_that_ran_long_enough_starts_again_from_an_immediate_restart() -> None:
    backoff = Backoff()
    assert crash_delays(backoff, 1000.0, 4) == [0.0, 2.0, 4.0, 8.0]
    backoff.last_start = 2000.0
    assert backoff.next_delay(2000.0 + 61) == 0.0  # ran for 61 s > stable_after: forgiven
    backoff.last_start = 2061.0
    assert backoff.next_delay(2062.0) == 2.0


def test_a_server_that_crashes_within_stable_after_keeps_backing_off() -> None:
    backoff = Backoff()
    assert crash_delays(backoff, 1000.0, 3) == [0.0, 2.0, 4.0]
    backoff.last_start = 2000.0
    assert backoff.next_delay(2000.0 + 60) == 8.0  # exactly stable_after: not yet stable
