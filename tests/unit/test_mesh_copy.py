"""Who copies from whom when nodes join a mesh, and where each pair's stream starts."""

from __future__ import annotations

import pytest

from pgherd.model import mesh_copy as mc
from pgherd.model.mesh import MeshSpec
from pgherd.model.mesh_copy import CopyState, CopyStatus, SlotStart, TableProgress

FRESH, COPY, SNAPSHOT = SlotStart.FRESH, SlotStart.COPY, SlotStart.SNAPSHOT


def spec(*nodes: str) -> MeshSpec:
    return MeshSpec(name="shop", nodes=nodes, tables=("public.t",))


def starts(plan: mc.JoinPlan, mesh: MeshSpec) -> dict[tuple[str, str], SlotStart]:
    return {(s, t): plan.slot_start(s, t) for s, t in mesh.pairs()}


def test_add_node_copies_from_the_reference_and_copies_the_others_slots() -> None:
    mesh = spec("a", "b", "c", "n")
    plan = mc.plan_add(("a", "b", "c"), "n", "a")
    assert starts(plan, mesh) == {
        ("a", "b"): FRESH, ("a", "c"): FRESH, ("a", "n"): SNAPSHOT,
        ("b", "a"): FRESH, ("b", "c"): FRESH, ("b", "n"): COPY,
        ("c", "a"): FRESH, ("c", "b"): FRESH, ("c", "n"): COPY,
        ("n", "a"): FRESH, ("n", "b"): FRESH, ("n", "c"): FRESH,
    }  # fmt: skip
    assert plan.progress_from_reference(mesh, "n") == ("b", "c")
    # Everyone starts the newcomer's stream at the end of its copy.
    assert plan.started_after_copy(mesh) == [("n", "a"), ("n", "b"), ("n", "c")]


def test_create_from_a_source_replaces_the_others_rows() -> None:
    mesh = spec("a", "b", "c")
    plan = mc.plan_create_from(mesh.nodes, "b")
    assert plan.newcomers == ("a", "c")
    assert starts(plan, mesh) == {
        ("a", "b"): FRESH, ("a", "c"): FRESH,
        ("b", "a"): SNAPSHOT, ("b", "c"): SNAPSHOT,
        ("c", "a"): FRESH, ("c", "b"): FRESH,
    }  # fmt: skip
    assert plan.progress_from_reference(mesh, "a") == ()
    assert plan.started_after_copy(mesh) == [("a", "b"), ("a", "c"), ("c", "a"), ("c", "b")]


def test_merge_copies_every_pair_and_starts_nothing_after_a_copy() -> None:
    mesh = spec("a", "b", "c")
    plan = mc.plan_merge(mesh.nodes)
    assert set(starts(plan, mesh).values()) == {SNAPSHOT}
    assert plan.copies["b"] == ("a", "c")
    assert plan.started_after_copy(mesh) == []


@pytest.mark.parametrize(
    "bad",
    [lambda: mc.plan_add(("a", "b"), "n", "x"), lambda: mc.plan_create_from(("a", "b"), "x")],
)
def test_a_reference_that_is_not_a_member_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="x is not"):
        bad()  # type: ignore[operator]


def test_progress_line() -> None:
    status = CopyStatus(
        mesh="shop",
        node="n",
        state=CopyState.COPYING,
        started_at=100.0,
        tables=(
            TableProgress(table="public.a", source="a", rows=1000, done=True),
            TableProgress(table="public.t", source="a", rows=250_000, estimate=1_000_000),
        ),
    )
    assert mc.progress_line(status, 110.0) == (
        "n: copying public.t from a: 250,000 rows of ~1,000,000 (25 %), 25,100 rows/s"
    )
    done = status.model_copy(update={"state": CopyState.DONE})
    assert mc.progress_line(done, 110.0) == "n: copied 251,000 rows in 10.0 s (25,100 rows/s)"
