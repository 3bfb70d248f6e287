"""How a store call spends ``retry_timeout`` across etcd's endpoints (model/store_budget.py):
the shares, and the bound the timing rule stands on — the attempts of one call never
take longer than its budget, whatever each attempt actually takes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgherd.model.ha_settings import timing_problem
from pgherd.model.store_budget import attempt_limit, worst_case


@pytest.mark.parametrize(
    ("case", "remaining", "untried", "preferred", "expected"),
    [
        ("one endpoint: all of it", 1.0, 1, True, 1.0),
        ("preferred of three: half", 1.0, 3, True, 0.5),
        ("preferred of two: half", 1.0, 2, True, 0.5),
        ("second of three after a full wait: half of what is left", 0.5, 2, False, 0.25),
        ("second of three after a refusal: half of nearly all", 0.99, 2, False, 0.495),
        ("the last one: all that is left", 0.25, 1, False, 0.25),
        ("nothing left: not tried", 0.0, 2, False, 0.0),
        ("overrun (the clock moved on): not tried", -0.01, 1, False, 0.0),
        ("no endpoint", 1.0, 0, True, 0.0),
        ("five endpoints, one of the four others", 0.5, 4, False, 0.125),
    ],
)
def test_attempt_limit(
    case: str, remaining: float, untried: int, preferred: bool, expected: float
) -> None:
    assert attempt_limit(remaining, untried, preferred) == pytest.approx(expected), case


@pytest.mark.parametrize(
    ("budget", "endpoints", "shares"),
    [
        (1.0, 1, (1.0,)),
        (1.0, 2, (0.5, 0.5)),
        (1.0, 3, (0.5, 0.25, 0.25)),  # was 0.33 each, the others without a connection
        (2.0, 3, (1.0, 0.5, 0.5)),  # the setting docs/failover.md recommends on lossy links
        (1.0, 5, (0.5, 0.125, 0.125, 0.125, 0.125)),
        (0.5, 3, (0.25, 0.125, 0.125)),  # the tightest settings bench/failover.py runs
    ],
)
def test_worst_case_shares_add_up_to_the_budget(
    budget: float, endpoints: int, shares: tuple[float, ...]
) -> None:
    assert worst_case(budget, endpoints) == pytest.approx(shares)
    assert math.fsum(worst_case(budget, endpoints)) == pytest.approx(budget)


@given(
    budget=st.floats(min_value=0.01, max_value=600),
    endpoints=st.integers(min_value=1, max_value=9),
    spent=st.lists(st.floats(min_value=0, max_value=1), min_size=9, max_size=9),
)
def test_a_call_never_outlasts_its_budget(
    budget: float, endpoints: int, spent: list[float]
) -> None:
    """Each attempt takes any part of its limit (a refusal: none; a timeout: all of it),
    the clock read between attempts; the call as a whole ends within the budget."""
    clock = 0.0
    for tried in range(endpoints):
        limit = attempt_limit(budget - clock, endpoints - tried, preferred=tried == 0)
        assert 0 <= limit <= max(budget - clock, 0)
        if limit == 0:
            break
        clock += limit * spent[tried]
    assert clock <= budget + 1e-9


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry_timeout"),
    [(3, 0.5, 1), (2, 0.25, 0.5), (6, 1, 2)],  # the defaults, the tightest, lossy links
)
@pytest.mark.parametrize("endpoints", [1, 3, 5])
def test_the_timing_rule_still_holds_with_the_split(
    ttl: float, loop_wait: float, retry_timeout: float, endpoints: int
) -> None:
    """The timing rule takes ``retry_timeout`` as the longest a store call waits: the
    worst call over every endpoint is no longer, so every setting the rule accepts still
    lets a primary demote before its lease can expire."""
    assert timing_problem(ttl, loop_wait, retry_timeout) is None
    longest_call = math.fsum(worst_case(retry_timeout, endpoints))
    assert longest_call <= retry_timeout + 1e-12
    assert loop_wait + 2 * longest_call <= ttl
