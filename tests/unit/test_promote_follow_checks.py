"""Promote, follow and rejoin checks; slot bookkeeping and doctor's slot findings."""

from __future__ import annotations

from pgherd.model import promote, slots
from pgherd.model.checks import Check, refusal
from pgherd.model.follow import (
    RejoinMethod,
    follow_checks,
    rejoin_checks,
    rejoin_plan,
)
from pgherd.model.lsn import Lsn
from pgherd.model.timeline import Divergence, Verdict
from tests.unit.nodes import node_at, primary, slot, standby, stopped, unreachable


def failing(checks: tuple[Check, ...]) -> dict[str, str]:
    return {c.name: c.reason for c in checks if c.blocks}


# ---- promote ----------------------------------------------------------------------------


def test_promote_is_refused_while_a_primary_runs_even_when_forced() -> None:
    statuses = [primary("node1"), standby("node2")]
    for force in (False, True):
        checks = promote.assess(statuses, "node2", force)
        assert failing(checks)["no-primary"] == (
            "this cluster already has an active primary 'node1'"
        )


def test_promote_after_the_primary_stopped() -> None:
    statuses = [stopped(primary("node1")), standby("node2", streaming=False)]
    assert failing(promote.assess(statuses, "node2", False)) == {}


def test_an_unreachable_node_needs_force() -> None:
    statuses = [unreachable("node1"), standby("node2", streaming=False)]
    checks = promote.assess(statuses, "node2", False)
    assert "may still run a primary" in failing(checks)["others-known"]
    forced = promote.assess(statuses, "node2", True)
    assert failing(forced) == {}
    assert [c.name for c in forced if c.overridden] == ["others-known"]


def test_promoting_a_standby_with_less_wal_than_another_names_the_loss() -> None:
    statuses = [
        stopped(primary("node1")),
        standby("node2", replay="0/5000000", streaming=False),
        standby("node3", replay="0/5000100", streaming=False),
    ]
    checks = promote.assess(statuses, "node2", False)
    assert failing(checks)["most-advanced"] == (
        "node3 has WAL up to 0/5000100, 256 bytes more than node2 (up to 0/5000000); "
        "promoting node2 loses them"
    )
    assert failing(promote.assess(statuses, "node3", False)) == {}
    assert failing(promote.assess(statuses, "node2", True)) == {}


def test_a_restarted_standby_counts_its_replayed_wal() -> None:
    restarted = standby("node2", replay="0/5000100", streaming=False).model_copy(
        update={"receive_lsn": Lsn.parse("0/5000000")}
    )
    statuses = [stopped(primary("node1")), restarted, standby("node3", replay="0/5000080")]
    assert failing(promote.assess(statuses, "node2", False)) == {}


def test_promote_refuses_a_primary_or_a_stopped_node() -> None:
    statuses = [primary("node1"), stopped(standby("node2"))]
    assert "node2 is stopped" in failing(promote.assess(statuses, "node2", False)).values()
    assert "not a standby" in failing(promote.assess(statuses, "node1", False))["target-standby"]


# ---- follow -----------------------------------------------------------------------------

CASCADE = [primary("node1"), standby("node2"), standby("node3")]
OK = Divergence(Verdict.FOLLOW, "fine")


def test_follow_a_sibling_standby_is_allowed() -> None:
    assert failing(follow_checks(CASCADE, "node3", "node2", node_at, OK)) == {}


def test_follow_refuses_a_loop() -> None:
    statuses = [primary("node1"), standby("node2", upstream="node3"), standby("node3")]
    reason = failing(follow_checks(statuses, "node3", "node2", node_at, OK))["no-loop"]
    assert reason.startswith("node2 → node3 streams from node3")


def test_follow_refuses_another_cluster_with_both_identifiers() -> None:
    stranger = primary("node4", system_identifier="7399999999999999999")
    checks = follow_checks([*CASCADE, stranger], "node3", "node4", node_at, OK)
    assert failing(checks)["same-cluster"] == (
        "node4 belongs to another cluster: its system identifier 7399999999999999999 "
        "differs from node3's 7300000000000000001"
    )


def test_follow_refuses_a_diverged_node_and_points_at_rejoin() -> None:
    diverged = Divergence(Verdict.REWIND, "node3 is past 0/4028060", Lsn.parse("0/4028060"))
    checks = follow_checks(CASCADE, "node3", "node1", node_at, diverged)
    (check,) = [c for c in checks if c.blocks]
    assert check.reason == "node3 is past 0/4028060"
    assert check.hint.endswith("pgherd node rejoin node3")


def test_follow_refuses_itself_a_primary_and_a_stopped_upstream() -> None:
    assert "cannot follow itself" in failing(
        follow_checks(CASCADE, "node2", "node2", node_at, OK)
    ).get("upstream", "")
    assert (
        "node1 is a primary"
        in failing(follow_checks(CASCADE, "node1", "node2", node_at, OK))["node-standby"]
    )
    statuses = [primary("node1"), standby("node2"), stopped(standby("node3"))]
    assert failing(follow_checks(statuses, "node2", "node3", node_at, OK)) == {
        "upstream-running": "node3 is stopped"
    }


# ---- rejoin -----------------------------------------------------------------------------


def test_rejoin_refuses_a_running_primary_and_a_cluster_without_primary() -> None:
    primary_name, checks = rejoin_checks([primary("node1"), primary("node2")], "node1", node_at)
    assert primary_name == "node2"
    assert "node1 is running as a primary beside node2" in failing(checks)["node-stopped"]
    _, none = rejoin_checks([stopped(primary("node1")), standby("node2")], "node1", node_at)
    assert "no running primary" in failing(none)["one-primary"]
    refused = refusal("rejoin", none)
    assert refused is not None
    assert refused[1] == "promote a standby first: pgherd standby promote NODE"


def test_rejoin_plan() -> None:
    rewind = Divergence(Verdict.REWIND, "diverged")
    assert rejoin_plan(OK, False, True).method is RejoinMethod.FOLLOW
    assert rejoin_plan(rewind, False, True).method is RejoinMethod.REWIND
    assert rejoin_plan(rewind, True, True).method is RejoinMethod.CLONE
    no_hints = rejoin_plan(rewind, False, False)
    assert no_hints.method is RejoinMethod.CLONE
    assert "wal_log_hints" in no_hints.reason
    reclone = Divergence(Verdict.RECLONE, "timeline 2 twice")
    assert rejoin_plan(reclone, False, True) == (
        rejoin_plan(reclone, False, True).__class__(RejoinMethod.CLONE, "timeline 2 twice")
    )


# ---- slots ------------------------------------------------------------------------------


def test_stale_slots_after_a_switchover() -> None:
    # node2 became the primary; node1 streams from it; node3 still streams from node1.
    old = standby("node1", upstream="node2", slots=(slot("node2"), slot("node3", active=True)))
    statuses = [old, primary("node2", slots=(slot("node1", active=True),)), standby("node3")]
    assert slots.stale_slots(statuses, "node1", node_at) == ["node2"]
    assert slots.stale_slots(statuses, "node2", node_at) == []


def test_slots_of_other_tools_are_never_dropped_automatically() -> None:
    statuses = [primary("node1", slots=(slot("archiver"), slot("sub", kind="logical")))]
    assert slots.stale_slots(statuses, "node1", node_at) == []


def test_doctor_reports_inactive_slots_with_the_wal_they_hold() -> None:
    mb = 1024 * 1024
    statuses = [
        primary(
            "node1",
            slots=(
                slot("node2", held=40 * mb),  # node2 is stopped
                slot("node3", held=1024),  # node3 now streams from node2: left over
                slot("node9", held=3 * mb),  # no such node any more
                slot("small", held=1024, kind="logical"),  # small logical: quiet
            ),
        ),
        stopped(standby("node2")),
        standby("node3", upstream="node2"),
    ]
    found = {(f.check, f.node): f for f in slots.findings(statuses, node_at)}
    assert set(found) == {
        ("inactive-slot", "node1"),
        ("stale-slot", "node1"),
        ("orphan-slot", "node1"),
    }
    assert found["inactive-slot", "node1"].message == (
        "the slot of standby node2 is inactive (node2 is stopped) and holds 40.0 MB of WAL"
    )
    assert found["stale-slot", "node1"].message == (
        "slot 'node3' is left over (node3 streams from node2) and holds 1.0 kB of WAL"
    )
    assert "belongs to no node in the config" in found["orphan-slot", "node1"].message
    assert "3.0 MB" in found["orphan-slot", "node1"].message
    assert "pg_drop_replication_slot('node9')" in found["orphan-slot", "node1"].fix
