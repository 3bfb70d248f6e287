"""Conflict classification and each policy's resolution, table-driven."""

from __future__ import annotations

import pytest

from pgherd.model.conflict import (
    Change,
    ConflictKind,
    Policy,
    Resolution,
    Version,
    decide,
    saw,
)

T1 = 838_900_000_000_000  # microseconds since 2000-01-01, as PostgreSQL sends them
T2 = T1 + 1_000_000
LUW = Policy.LAST_UPDATE_WINS
NP = Policy.NODE_PRIORITY
ERR = Policy.ERROR
INS, UPD, DEL = Change.INSERT, Change.UPDATE, Change.DELETE
PRIORITY = ("a", "b", "c")
V = Version
EXISTS = ConflictKind.INSERT_EXISTS
U_DIFFERS, U_MISSING = ConflictKind.UPDATE_DIFFERS, ConflictKind.UPDATE_MISSING
D_DIFFERS, D_MISSING = ConflictKind.DELETE_DIFFERS, ConflictKind.DELETE_MISSING
APPLY, REMOTE, LOCAL = Resolution.APPLY, Resolution.APPLY_REMOTE, Resolution.KEEP_LOCAL
SKIP, ERROR = Resolution.SKIP, Resolution.ERROR

# (policy, change, local version or None, remote version, conflict, resolution)
CASES: list[tuple[Policy, Change, Version | None, Version, ConflictKind | None, Resolution]] = [
    # no conflict
    (LUW, INS, None, V("a", T1), None, APPLY),
    (ERR, INS, None, V("a", T1), None, APPLY),
    (LUW, UPD, V("a", T1), V("a", T2), None, APPLY),
    (ERR, DEL, V("a", T2), V("a", T1), None, APPLY),
    # insert/insert
    (LUW, INS, V("b", T1), V("a", T2), EXISTS, REMOTE),
    (LUW, INS, V("b", T2), V("a", T1), EXISTS, LOCAL),
    (LUW, INS, V("b", T1), V("a", T1), EXISTS, REMOTE),
    (LUW, INS, V("a", T1), V("b", T1), EXISTS, LOCAL),
    (LUW, INS, V(None, None), V("b", T1), EXISTS, REMOTE),
    (NP, INS, V("b", T2), V("a", T1), EXISTS, REMOTE),
    (NP, INS, V("a", T1), V("b", T2), EXISTS, LOCAL),
    (NP, INS, V("x", T1), V("c", T1), EXISTS, REMOTE),
    (ERR, INS, V("b", T1), V("a", T2), EXISTS, ERROR),
    # update/update: the local row was last written by another node
    (LUW, UPD, V("b", T1), V("a", T2), U_DIFFERS, REMOTE),
    (LUW, UPD, V("c", T2), V("a", T1), U_DIFFERS, LOCAL),
    (NP, UPD, V("c", T2), V("b", T1), U_DIFFERS, REMOTE),
    (NP, UPD, V("a", T1), V("b", T2), U_DIFFERS, LOCAL),
    (ERR, UPD, V("b", T1), V("a", T2), U_DIFFERS, ERROR),
    # update/delete: the delete wins
    (LUW, UPD, None, V("a", T2), U_MISSING, SKIP),
    (NP, UPD, None, V("a", T2), U_MISSING, SKIP),
    (ERR, UPD, None, V("a", T2), U_MISSING, ERROR),
    (LUW, DEL, V("b", T2), V("a", T1), D_DIFFERS, REMOTE),
    (NP, DEL, V("a", T2), V("c", T1), D_DIFFERS, REMOTE),
    (ERR, DEL, V("b", T2), V("a", T1), D_DIFFERS, ERROR),
    # a row of an initial copy (a baseline): every change follows it, under every policy
    (LUW, INS, V(None, T2, baseline=True), V("a", T1), None, APPLY),
    (NP, UPD, V(None, None, baseline=True), V("c", T1), None, APPLY),
    (ERR, DEL, V(None, T2, baseline=True), V("b", T1), None, APPLY),
    # delete/delete: both agree
    (LUW, DEL, None, V("a", T1), D_MISSING, SKIP),
    (NP, DEL, None, V("a", T1), D_MISSING, SKIP),
    (ERR, DEL, None, V("a", T1), D_MISSING, SKIP),
]


@pytest.mark.parametrize(
    ("policy", "change", "local", "remote", "conflict", "resolution"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[4]}-{c[5]}-{i}" for i, c in enumerate(CASES)],
)
def test_decide(
    policy: Policy,
    change: Change,
    local: Version | None,
    remote: Version,
    conflict: ConflictKind | None,
    resolution: Resolution,
) -> None:
    decision = decide(policy, change, local, remote, PRIORITY)
    assert (decision.conflict, decision.resolution) == (conflict, resolution)
    assert decision.reason


def test_both_nodes_reach_the_same_row_under_last_update_wins() -> None:
    # a writes at T1, b at T2: on a the change from b arrives, on b the change from a.
    on_a = decide(LUW, INS, V("a", T1), V("b", T2))
    on_b = decide(LUW, INS, Version("b", T2), Version("a", T1))
    assert on_a.resolution is Resolution.APPLY_REMOTE  # a takes b's row
    assert on_b.resolution is Resolution.KEEP_LOCAL  # b keeps its own


def test_a_tie_is_broken_by_node_name_the_same_way_on_both_nodes() -> None:
    on_a = decide(LUW, UPD, Version("a", T1), Version("b", T1))
    on_b = decide(LUW, UPD, Version("b", T1), Version("a", T1))
    assert on_a.resolution is Resolution.KEEP_LOCAL
    assert on_b.resolution is Resolution.APPLY_REMOTE
    assert "a sorts first" in on_a.reason


def test_times_within_one_resolution_slot_are_a_tie() -> None:
    # 3 ms apart, in one 10 ms slot: a tie, decided by name on both nodes alike.
    on_b = decide(LUW, UPD, V("b", T1 + 3_000), V("a", T1), resolution_us=10_000)
    on_a = decide(LUW, UPD, V("a", T1), V("b", T1 + 3_000), resolution_us=10_000)
    assert on_b.resolution is Resolution.APPLY_REMOTE
    assert on_a.resolution is Resolution.KEEP_LOCAL
    # 3 ms apart but across a slot boundary: the later one wins.
    edge = T1 + 9_999
    later = decide(LUW, UPD, V("b", edge), V("a", edge + 3_000), resolution_us=10_000)
    assert later.resolution is REMOTE
    # The default slot is 100 ms: 30 ms apart is a tie.
    assert decide(LUW, UPD, V("a", T1), V("b", T1 + 30_000)).resolution is LOCAL


def test_a_change_made_after_the_source_applied_the_local_version_is_no_conflict() -> None:
    # b inserted the row at T1; a applied it, then updated it at T2: on b, the update from
    # a follows b's own version, whichever the policy, even with a's clock behind b's.
    for policy in Policy:
        decision = decide(policy, UPD, V("b", T2), V("a", T1), PRIORITY, source_saw_local=True)
        assert (decision.conflict, decision.resolution) == (None, APPLY)
    decision = decide(NP, DEL, V("a", T1), V("c", T2), PRIORITY, source_saw_local=True)
    assert decision.resolution is APPLY


SAW_CASES: list[tuple[dict[str, int], Version | None, bool]] = [
    ({"b": T2}, V("b", T1), True),
    ({"b": T1}, V("b", T1), True),
    ({"b": T1}, V("b", T2), False),
    ({"c": T2}, V("b", T1), False),
    ({"b": T2}, V(None, None), False),
    ({"b": T2}, None, False),
]


@pytest.mark.parametrize(("seen", "local", "expected"), SAW_CASES)
def test_saw(seen: dict[str, int], local: Version | None, expected: bool) -> None:
    assert saw(seen, local) is expected
