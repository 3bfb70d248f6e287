"""Switchover checks: each refusal with its reason and numbers; the plan."""

from __future__ import annotations

import pytest

from pgherd.model import switchover
from pgherd.model.checks import Check, refusal
from pgherd.model.lsn import Lsn
from pgherd.model.status import NodeStatus
from tests.unit.nodes import node_at, primary, standby, stopped, unreachable

HEALTHY = [primary("node1"), standby("node2"), standby("node3")]


def failing(checks: tuple[Check, ...]) -> dict[str, str]:
    return {c.name: c.reason for c in checks if c.blocks}


def test_a_healthy_standby_passes_every_check() -> None:
    result = switchover.assess(HEALTHY, "node2", node_at)
    assert failing(result.checks) == {}
    assert result.primary == "node1"
    assert result.siblings == ("node3",)
    assert refusal("switchover", result.checks) is None


@pytest.mark.parametrize(
    ("statuses", "target", "check", "reason"),
    [
        (HEALTHY, "node1", "target", "node1 is already the primary"),
        (HEALTHY, "node9", "known", "unknown node 'node9'"),
        (
            [primary("node1"), stopped(standby("node2")), standby("node3")],
            "node2",
            "target-running",
            "node2 is stopped",
        ),
        (
            [primary("node1"), unreachable("node2")],
            "node2",
            "reachable",
            "the agent of node2 does not answer (connection refused)",
        ),
        (
            [stopped(primary("node1")), standby("node2")],
            "node2",
            "one-primary",
            "no running primary to switch over from",
        ),
        (
            [primary("node1"), primary("node3"), standby("node2")],
            "node2",
            "one-primary",
            "more than one running primary: node1, node3",
        ),
        (
            [primary("node1"), standby("node2", upstream="node3"), standby("node3")],
            "node2",
            "target-upstream",
            "node2 streams from node3, not from the primary node1",
        ),
        (
            [primary("node1"), standby("node2", streaming=False)],
            "node2",
            "target-streaming",
            "node2 is not streaming from node1 right now",
        ),
        (
            [primary("node1"), standby("node2", replay_paused=True)],
            "node2",
            "replay-running",
            "replay is paused on node2",
        ),
        (
            [primary("node1"), standby("node2", system_identifier="42")],
            "node2",
            "same-cluster",
            "node2's system identifier 42 differs from node1's 7300000000000000001",
        ),
    ],
)
def test_refusals(statuses: list[NodeStatus], target: str, check: str, reason: str) -> None:
    result = switchover.assess(statuses, target, node_at)
    assert reason in failing(result.checks)[check]
    refused = refusal("switchover", result.checks)
    assert refused is not None
    assert refused[0].startswith("switchover refused: ")


def test_a_standby_far_behind_is_refused_with_the_numbers() -> None:
    statuses = [primary("node1", lsn="0/8000000"), standby("node2", replay="0/5000000")]
    result = switchover.assess(statuses, "node2", node_at, max_lag=16 * 1024 * 1024)
    assert failing(result.checks)["lag"] == (
        "node2 has replayed up to 0/5000000, 50331648 bytes (48.0 MB) behind node1 at "
        "0/8000000; the limit is 16777216 bytes (16.0 MB)"
    )
    relaxed = switchover.assess(statuses, "node2", node_at, max_lag=64 * 1024 * 1024)
    assert "lag" not in failing(relaxed.checks)


def test_only_the_nodes_involved_must_answer() -> None:
    statuses = [primary("node1"), standby("node2"), unreachable("node3")]
    assert failing(switchover.assess(statuses, "node2", node_at).checks) == {}
    with_siblings = switchover.assess(statuses, "node2", node_at, siblings_follow=True)
    assert "reachable" in failing(with_siblings.checks)


def test_the_plan_names_the_nodes_and_the_timeout() -> None:
    result = switchover.assess(HEALTHY, "node2", node_at)
    steps = switchover.plan(result, siblings_follow=True, timeout=5)
    assert steps[0] == "create a replication slot for node1 on node2 (and for node3)"
    assert "wait up to 5 s for node2 to replay node1's shutdown checkpoint" in steps[3]
    assert "point node3 at node2" in steps
    staying = switchover.plan(result, siblings_follow=False, timeout=5)
    assert any("node3 will stream from node1 again" in s for s in staying)


@pytest.mark.parametrize(
    ("replayed", "caught_up"),
    [(None, False), ("0/4027FD0", False), ("0/4027FCF", False), ("0/4028060", True)],
)
def test_caught_up_means_past_the_checkpoint_record(replayed: str | None, caught_up: bool) -> None:
    lsn = Lsn.parse(replayed) if replayed else None
    assert switchover.caught_up(Lsn.parse("0/4027FD0"), lsn) is caught_up
