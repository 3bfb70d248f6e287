"""Sequences in a mesh: each member its own residue class, and the pairs that could meet."""

from __future__ import annotations

import pytest

from pgherd.model import mesh_sequences as ms
from pgherd.model.mesh_sequences import SequenceFact, SequenceSetting

BIG = 2**63 - 1


def fact(next_value: int = 1, increment: int = 1, **kw: object) -> SequenceFact:
    base: dict[str, object] = {
        "table": "public.t",
        "column": "id",
        "sequence": "public.t_id_seq",
        "increment": increment,
        "next_value": next_value,
        "min_value": 1,
        "max_value": BIG,
    }
    return SequenceFact.model_validate(base | kw)


@pytest.mark.parametrize(
    ("floor", "step", "offset", "value"),
    [
        (0, 10, 1, 1),
        (1, 10, 1, 11),
        (100, 10, 3, 103),
        (103, 10, 3, 113),
        (109, 10, 10, 110),  # the last member's residue is 0
        (5, 1, 1, 6),
    ],
)
def test_first_above(floor: int, step: int, offset: int, value: int) -> None:
    assert ms.first_above(floor, step, offset) == value
    assert value > floor
    assert value % step == offset % step


def test_plan_gives_each_member_its_residue_above_everything_stored() -> None:
    facts = {
        "a": [fact(next_value=51, column_max=50)],
        "b": [fact(next_value=1, column_max=2000)],  # rows came from elsewhere
        "c": [fact(next_value=7)],
    }
    found = ms.plan(("a", "b", "c"), 10, facts)
    assert found.problems == []
    floor = 2000 + ms.MARGIN_STEPS * 10
    assert found.settings == {
        "a": [SequenceSetting(sequence="public.t_id_seq", increment=10, restart=floor + 1)],
        "b": [SequenceSetting(sequence="public.t_id_seq", increment=10, restart=floor + 2)],
        "c": [SequenceSetting(sequence="public.t_id_seq", increment=10, restart=floor + 3)],
    }


def test_plan_leaves_members_already_set_alone_and_sets_a_newcomer() -> None:
    facts = {
        "a": [fact(next_value=3011, increment=10)],
        "b": [fact(next_value=3022, increment=10)],
        "c": [fact(next_value=4, increment=1, column_max=3021)],  # the newcomer
    }
    found = ms.plan(("a", "b", "c"), 10, facts)
    assert found.settings["a"] == []
    assert found.settings["b"] == []
    restart = found.settings["c"][0].restart
    assert restart % 10 == 3
    assert restart > 3021


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (fact(increment=-1), "counts down"),
        (fact(cycle=True), "CYCLE"),
        (fact(max_value=5), "too small a range"),
        (fact(max_value=200, column_max=100), "above its maximum"),
    ],
)
def test_plan_refuses_what_cannot_be_given_a_residue(bad: SequenceFact, problem: str) -> None:
    found = ms.plan(("a", "b"), 10, {"a": [bad], "b": [fact()]})
    assert any(problem in p and p.startswith("a: sequence public.t_id_seq") for p in found.problems)


def test_plan_refuses_more_members_than_the_step() -> None:
    found = ms.plan(("a", "b", "c"), 2, {})
    assert found.problems == [
        "3 members but a sequence step of 2: two members would share values (the step is "
        "fixed when the mesh is created)"
    ]


@pytest.mark.parametrize(
    ("a", "b", "meet"),
    [
        (fact(next_value=11, increment=10), fact(next_value=12, increment=10), False),
        (fact(next_value=11, increment=10), fact(next_value=21, increment=10), True),
        (fact(next_value=1, increment=1), fact(next_value=500, increment=1), True),
        (fact(next_value=1, increment=2), fact(next_value=2, increment=4), False),
        (fact(next_value=1, increment=2), fact(next_value=3, increment=4), True),
        (fact(next_value=1, increment=-10), fact(next_value=2, increment=10), True),
        (fact(next_value=1, increment=10, cycle=True), fact(next_value=2, increment=10), True),
    ],
)
def test_could_meet(a: SequenceFact, b: SequenceFact, meet: bool) -> None:
    assert (ms.could_meet(a, b) is not None) is meet
    assert (ms.could_meet(b, a) is not None) is meet


def test_collisions_name_the_sequence_and_the_two_members() -> None:
    facts = {
        "a": [fact(next_value=11, increment=10)],
        "b": [fact(next_value=21, increment=10)],
        "c": [fact(next_value=13, increment=10)],
    }
    found = ms.collisions(facts)
    assert [(c.sequence, c.nodes) for c in found] == [("public.t_id_seq", ("a", "b"))]
    assert "next values 11 and 21" in found[0].why
