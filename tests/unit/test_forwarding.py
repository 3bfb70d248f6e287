"""Subscription cycles that send a change back to where it was made."""

from __future__ import annotations

import pytest

from pgherd.model.forwarding import Edge, common, loops


def edge(pub: str, sub: str, tables: str = "t", forwards: bool = True) -> Edge:
    return Edge(f"{pub}_{sub}", pub, sub, frozenset(tables.split(",")), forwards)


@pytest.mark.parametrize(
    ("existing", "new", "loop"),
    [
        # a cascade is no loop
        ([edge("a", "b")], edge("b", "c"), None),
        # two ways on PostgreSQL 15 (both forward): the change comes back
        ([edge("a", "b")], edge("b", "a"), "b → a → b (t)"),
        # two ways, one of them origin = none: b's changes come back through a
        ([edge("a", "b", forwards=False)], edge("b", "a"), "b → a → b (t)"),
        # two ways, both origin = none (16+): no loop
        ([edge("a", "b", forwards=False)], edge("b", "a", forwards=False), None),
        # different tables each way: nothing travels around
        ([edge("a", "b", "t1")], edge("b", "a", "t2"), None),
        # a ring of three that shares a table
        ([edge("a", "b", "t,u"), edge("b", "c", "u")], edge("c", "a", "u,v"), "c → a → b → c (u)"),
        # a ring of three with two edges that filter by origin
        (
            [edge("a", "b", forwards=False), edge("b", "c", forwards=False)],
            edge("c", "a"),
            None,
        ),
    ],
)
def test_loops(existing: list[Edge], new: Edge, loop: str | None) -> None:
    found = loops(existing, new)
    if loop is None:
        assert found == []
    else:
        assert [f.describe() for f in found][:1] == [loop]


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("public.t,public.u", "public.u,s.v", "public.u"),
        ("*", "s.v", "s.v"),
        ("s.*", "s.v,public.t", "s.v"),
        ("s.*", "x.*", ""),
        ("s.*", "s.*", "s.*"),
    ],
)
def test_common_tables(a: str, b: str, shared: str) -> None:
    found = common(frozenset(a.split(",")), frozenset(b.split(",")))
    assert found == frozenset(shared.split(",") if shared else ())
