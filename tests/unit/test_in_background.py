"""tests/support.py's InBackground, the base of the e2e writers and scrapers: the work runs
for the length of the block, is stopped and joined at its end, and its error is not lost."""

from __future__ import annotations

import threading

import pytest

from tests.support import InBackground, wait_until


class Counter(InBackground):
    def __init__(self, fail_after: int | None = None) -> None:
        self.count = 0
        self.fail_after = fail_after

    def work(self, stop: threading.Event) -> None:
        while not stop.wait(0.01):
            if self.count == self.fail_after:
                raise ConnectionError("the server went away")
            self.count += 1


def test_the_work_runs_for_the_block_and_is_joined_at_its_end() -> None:
    with Counter() as counter:
        wait_until(lambda: counter.count >= 3, 10, "three rounds")
    stopped_at = counter.count
    assert not counter._thread.is_alive()
    assert counter.count == stopped_at


def test_the_error_the_work_died_of_is_raised_at_the_end_of_the_block() -> None:
    with pytest.raises(ConnectionError, match="went away"), Counter(fail_after=2) as counter:
        wait_until(lambda: not counter._thread.is_alive(), 10, "the work to die")


def test_an_error_of_the_block_itself_wins_and_names_the_work_s_in_a_note() -> None:
    def a_test_that_fails() -> None:
        with Counter(fail_after=0) as counter:
            wait_until(lambda: not counter._thread.is_alive(), 10, "the work to die")
            raise AssertionError("the test's own")

    with pytest.raises(AssertionError, match="the test's own") as raised:
        a_test_that_fails()
    assert raised.value.__notes__ == [
        "and Counter had died of ConnectionError('the server went away')"
    ]
