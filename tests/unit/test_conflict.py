"""Conflict classification and each policy's resolution, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pgherd.model.conflict import (
    Change,
    ConflictKind,
    Policy,
    Resolution,
    Version,
    decide,
)

T1 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T2 = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
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
