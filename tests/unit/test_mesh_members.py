"""Mesh members that are nodes or whole HA clusters: names looked up in this config and its
peers', and where the workers that apply into a member run."""

from __future__ import annotations

import pytest

from pgherd.model.mesh_members import (
    MemberPlace,
    NoPrimary,
    Place,
    UnknownMember,
    apply_commit_mode,
    find_member,
    local_member,
    member_primary,
    workers_here,
)

HERE = Place(cluster="east", independent=False, nodes=("e1", "e2", "e3"))
SOLO = Place(cluster="solo", independent=False, nodes=("s1",))
LAB = Place(cluster="lab", independent=True, nodes=("node1", "node2"))
ONE = Place(cluster="one", independent=True, nodes=("only",))


@pytest.mark.parametrize(
    ("name", "places", "expected"),
    [
        # a node, as meshes began: itself
        ("e2", [HERE, SOLO], MemberPlace(0, ("e2",), cluster=False)),
        ("node1", [LAB], MemberPlace(0, ("node1",), cluster=False)),
        # this config's cluster: every node of it
        ("east", [HERE, SOLO], MemberPlace(0, ("e1", "e2", "e3"), cluster=True)),
        # a peer's cluster, and a peer's node
        ("solo", [HERE, SOLO], MemberPlace(1, ("s1",), cluster=True)),
        ("s1", [HERE, SOLO], MemberPlace(1, ("s1",), cluster=False)),
        # a one-node independent config is one member under its cluster's name too
        ("one", [HERE, ONE], MemberPlace(1, ("only",), cluster=True)),
    ],
)
def test_a_member_name_stands_for_a_node_or_a_cluster(
    name: str, places: list[Place], expected: MemberPlace
) -> None:
    assert find_member(name, places) == expected


@pytest.mark.parametrize(
    ("name", "places", "says"),
    [
        ("west", [HERE, SOLO], "no node or cluster named west (known: e1, e2, e3, east, s1"),
        (
            "lab",
            [LAB],
            "lab is a cluster of 2 independent primaries, not one member: name "
            "its nodes (node1, node2)",
        ),
        (
            "east",
            [HERE, Place("east", False, ("x",))],
            "east names more than one node or cluster (in 2 places)",
        ),
        ("s1", [SOLO, Place("other", False, ("s1",))], "s1 names more than one"),
        ("solo", [SOLO, Place("x", False, ("solo",))], "solo names more than one"),
    ],
)
def test_unknown_and_ambiguous_names_are_refused_with_the_way_out(
    name: str, places: list[Place], says: str
) -> None:
    with pytest.raises(UnknownMember, match="^" + says.replace("(", r"\(").replace(")", r"\)")):
        find_member(name, places)


@pytest.mark.parametrize(
    ("members", "node", "cluster", "expected"),
    [
        (("node1", "node2"), "node1", "lab", "node1"),  # a node member
        (("east", "solo"), "e2", "east", "east"),  # a standby of a cluster member keeps it
        (("east", "solo"), "s1", "solo", "solo"),
        (("node1", "node2"), "node3", "lab", None),  # not a member
        (("east", "e2"), "e2", "east", "e2"),  # the node's own name first
    ],
)
def test_the_member_a_node_serves(
    members: tuple[str, ...], node: str, cluster: str, expected: str | None
) -> None:
    assert local_member(members, node, cluster) == expected


@pytest.mark.parametrize(
    ("running", "standby", "run", "reason"),
    [
        (True, False, True, "this node is its member's primary"),
        (True, True, False, "this node is a standby: its primary applies"),
        (False, False, False, "PostgreSQL is not running here"),  # fenced, crashed, stopped
        (False, True, False, "PostgreSQL is not running here"),
    ],
)
def test_workers_run_only_on_a_running_primary(
    running: bool, standby: bool, run: bool, reason: str
) -> None:
    decided = workers_here(running, standby)
    assert (decided.run, decided.reason) == (run, reason)


@pytest.mark.parametrize(
    ("primaries", "unreachable", "expected"),
    [
        (["e2"], [], "e2"),
        (["e2"], ["e1"], "e2"),  # the old primary's host is gone: the new one answers
        (
            [],
            ["e1"],
            "cluster east has no running primary (no answer from e1): wait for its "
            "failover (pgherd cluster show), then retry",
        ),
        ([], [], "cluster east has no running primary: wait"),
        (["e1", "e2"], [], "cluster east has 2 primaries (e1, e2): settle that first"),
    ],
)
def test_the_node_that_answers_for_a_cluster_member(
    primaries: list[str], unreachable: list[str], expected: str
) -> None:
    if expected in primaries:
        assert member_primary("east", primaries, unreachable) == expected
        return
    with pytest.raises(NoPrimary) as caught:
        member_primary("east", primaries, unreachable)
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize(
    ("synchronous_standby_names", "mode"),
    [
        ("", "off"),  # no synchronous standby: as native apply, the origin says what is durable
        ("  ", "off"),
        ('ANY 1 ("node2", "node3")', "on"),  # pgherd's synchronous mode: wait for them
        ("node2", "on"),
    ],
)
def test_apply_commits_wait_for_the_synchronous_standbys_there_are(
    synchronous_standby_names: str, mode: str
) -> None:
    assert apply_commit_mode(synchronous_standby_names) == mode
