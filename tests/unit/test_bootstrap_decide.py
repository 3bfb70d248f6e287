"""model/bootstrap.py: who initialises, adopts, clones, waits or is refused, table-driven."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pgherd.model.bootstrap import (
    BootWorld,
    ClusterRecord,
    DataState,
    LocalData,
    Marker,
    Origin,
    PeerData,
    Step,
    Work,
    decide,
    parse_record,
)

DIR = Path("/srv/pg/data")
EMPTY = LocalData(DIR, DataState.EMPTY)
PRIMARY_DATA = LocalData(DIR, DataState.CLUSTER, "700")
MINE = LocalData(DIR, DataState.CLUSTER, "700", pgherd_made=True)
STANDBY_DATA = LocalData(DIR, DataState.CLUSTER, "700", standby=True, pgherd_made=True)
OTHER = LocalData(DIR, DataState.CLUSTER, "999", pgherd_made=True)
FILES = LocalData(DIR, DataState.FILES)

NOW = 10_000.0
CLAIM = ClusterRecord(cluster="main", by="node1", origin=Origin.INITDB, at=NOW - 5)
PUBLISHED = CLAIM.model_copy(update={"system_identifier": "700"})


def peer(name: str, sysid: str | None = None, **kw: bool) -> PeerData:
    values = {"reachable": True, "checked_in": True} | kw
    return PeerData(name, system_identifier=sysid, **values)


EMPTY_PEERS = (peer("node2"), peer("node3"))
LEADER_UP = (peer("node1", "700", running_primary=True), peer("node3"))


def world(record: ClusterRecord | None = None, **kw: object) -> BootWorld:
    values: dict[str, object] = {
        "store_ok": True,
        "cluster": "main",
        "record": record,
        "record_version": 0 if record is None else 7,
        "peers": EMPTY_PEERS,
        "now": NOW,
    }
    values.update(kw)
    return BootWorld(**values)  # type: ignore[arg-type]


def marker(work: Work, source: str | None = None) -> Marker:
    return Marker(work=work, at=NOW - 100, source=source)


@pytest.mark.parametrize(
    ("case", "me", "data", "w", "step", "says"),
    [
        # ---- the store holds no cluster --------------------------------------------------
        ("all empty, all answer: initdb", "node1", EMPTY, world(), Step.INITDB, "claiming"),
        (
            "a peer is silent: wait for it (it may hold data)",
            "node1",
            EMPTY,
            world(peers=(peer("node2"), PeerData("node3", reachable=False))),
            Step.WAIT,
            "waiting for node3 to answer",
        ),
        (
            "a peer holds data: it is adopted, wait to clone it",
            "node2",
            EMPTY,
            world(peers=(peer("node1", "700"), peer("node3"))),
            Step.WAIT,
            "node1 holds a PostgreSQL cluster (system identifier 700)",
        ),
        (
            "a primary pgherd did not make: adopt",
            "node1",
            PRIMARY_DATA,
            world(),
            Step.ADOPT,
            "adopting the PostgreSQL cluster in /srv/pg/data (system identifier 700)",
        ),
        (
            "a running primary pgherd did not make: adopt",
            "node1",
            replace(PRIMARY_DATA, running=True),
            world(),
            Step.ADOPT,
            "as the primary",
        ),
        ("pgherd's own data: register", "node1", MINE, world(), Step.REGISTER, "made by pgherd"),
        (
            "a standby's data: wait for its primary",
            "node2",
            STANDBY_DATA,
            world(),
            Step.WAIT,
            "start the agent of its primary first",
        ),
        (
            "files that are no cluster: never touched",
            "node1",
            FILES,
            world(),
            Step.WAIT,
            "not touching them",
        ),
        (
            "an older cluster with a leader and no record: register the leader's identifier",
            "node2",
            STANDBY_DATA,
            world(leader="node1", peers=LEADER_UP),
            Step.REGISTER,
            "the leader's and mine",
        ),
        (
            "no record, I lead: register",
            "node1",
            MINE,
            world(leader="node1"),
            Step.REGISTER,
            "I lead",
        ),
        (
            "no record, the leader runs another cluster: refuse",
            "node2",
            OTHER,
            world(leader="node1", peers=LEADER_UP),
            Step.REFUSE,
            "system identifier 999, but the cluster 'main' is 700",
        ),
        (
            "no record, the leader is silent: wait",
            "node2",
            MINE,
            world(leader="node1", peers=(PeerData("node1", reachable=False),)),
            Step.WAIT,
            "compare system identifiers",
        ),
        # ---- claimed, not yet published ----------------------------------------------------
        ("another's claim: wait", "node2", EMPTY, world(CLAIM), Step.WAIT, "node1 is creating"),
        (
            "my own claim, empty: run initdb",
            "node1",
            EMPTY,
            world(CLAIM),
            Step.INITDB,
            "I claimed",
        ),
        (
            "a stale claim whose claimer does not check in: take it over",
            "node2",
            EMPTY,
            world(
                CLAIM.model_copy(update={"at": NOW - 120}),
                peers=(peer("node1", checked_in=False, reachable=False), peer("node3")),
            ),
            Step.INITDB,
            "taking the claim over",
        ),
        (
            "an old claim whose claimer still checks in: wait",
            "node2",
            EMPTY,
            world(CLAIM.model_copy(update={"at": NOW - 120}), peers=(peer("node1"),)),
            Step.WAIT,
            "node1 is creating",
        ),
        (
            "a fresh claim whose claimer did not check in yet: wait",
            "node2",
            EMPTY,
            world(CLAIM, peers=(peer("node1", checked_in=False),)),
            Step.WAIT,
            "node1 is creating",
        ),
        (
            "another's claim while I hold data: wait, it will not be mine",
            "node2",
            OTHER,
            world(CLAIM),
            Step.WAIT,
            "this node's data (system identifier 999) will not be it",
        ),
        # ---- published -----------------------------------------------------------------------
        (
            "my data are the cluster: member",
            "node2",
            STANDBY_DATA,
            world(PUBLISHED, leader="node1", peers=LEADER_UP),
            Step.MEMBER,
            "holds the cluster (system identifier 700)",
        ),
        (
            "another cluster's data: refuse, naming both and the fix",
            "node3",
            OTHER,
            world(PUBLISHED, leader="node1", peers=LEADER_UP),
            Step.REFUSE,
            "it holds the cluster with system identifier 999, but the cluster 'main' is 700 "
            "(node1's) — move it aside (mv /srv/pg/data /srv/pg/data.old)",
        ),
        (
            "empty, a leader runs: clone it",
            "node3",
            EMPTY,
            world(PUBLISHED, leader="node1", peers=LEADER_UP),
            Step.CLONE,
            "cloning the leader node1",
        ),
        (
            "empty, no leader yet: wait",
            "node3",
            EMPTY,
            world(PUBLISHED, peers=LEADER_UP),
            Step.WAIT,
            "waiting for a leader",
        ),
        (
            "empty, the leader does not run yet: wait",
            "node3",
            EMPTY,
            world(PUBLISHED, leader="node1", peers=(peer("node1", "700"),)),
            Step.WAIT,
            "waiting for the leader node1 to run as the primary",
        ),
        (
            "empty, the leader runs another cluster: never clone it",
            "node3",
            EMPTY,
            world(PUBLISHED, leader="node1", peers=(peer("node1", "999", running_primary=True),)),
            Step.WAIT,
            "not cloning",
        ),
        (
            "the store says I lead but I hold nothing: wait",
            "node1",
            EMPTY,
            world(PUBLISHED, leader="node1"),
            Step.WAIT,
            "lease to lapse",
        ),
        # ---- markers: interrupted work -------------------------------------------------------
        (
            "an interrupted clone: clean, even if its identifier matches",
            "node3",
            replace(STANDBY_DATA, marker=marker(Work.CLONE, "node1")),
            world(PUBLISHED, leader="node1", peers=LEADER_UP),
            Step.CLEAN,
            "a clone from node1 did not finish",
        ),
        (
            "an interrupted initdb under my claim: clean",
            "node1",
            replace(MINE, marker=marker(Work.INITDB)),
            world(CLAIM),
            Step.CLEAN,
            "an initdb did not finish",
        ),
        (
            "an initdb whose claim was taken over: clean",
            "node1",
            replace(OTHER, marker=marker(Work.INITDB)),
            world(PUBLISHED.model_copy(update={"by": "node2"})),
            Step.CLEAN,
            "removing what it left",
        ),
        (
            "an initdb interrupted before the store had anything: clean",
            "node1",
            replace(MINE, marker=marker(Work.INITDB)),
            world(),
            Step.CLEAN,
            "did not finish",
        ),
        (
            "an initdb that published before it stopped: member",
            "node1",
            replace(MINE, marker=marker(Work.INITDB)),
            world(PUBLISHED),
            Step.MEMBER,
            "holds the cluster",
        ),
        (
            "an interrupted adoption: resumed, its data never removed",
            "node1",
            replace(PRIMARY_DATA, marker=marker(Work.ADOPT)),
            world(PUBLISHED.model_copy(update={"origin": Origin.ADOPT})),
            Step.ADOPT,
            "resuming the adoption",
        ),
        # ---- the store ------------------------------------------------------------------------
        (
            "store down: wait",
            "node1",
            EMPTY,
            world(store_ok=False),
            Step.WAIT,
            "the store is unreachable",
        ),
        (
            "store down, PostgreSQL runs: the HA loop takes over (it fences)",
            "node1",
            replace(MINE, running=True),
            world(store_ok=False),
            Step.MEMBER,
            "the HA loop takes over",
        ),
        (
            "a record of another cluster's name: refuse",
            "node1",
            MINE,
            world(PUBLISHED.model_copy(update={"cluster": "other"})),
            Step.REFUSE,
            "names the cluster 'other', not 'main'",
        ),
        (
            "an unreadable key: wait, saying so",
            "node1",
            EMPTY,
            world(record_problem="the key holds garbage"),
            Step.WAIT,
            "garbage",
        ),
    ],
)
def test_decide(case: str, me: str, data: LocalData, w: BootWorld, step: Step, says: str) -> None:
    plan = decide(me, data, w)
    assert plan.step is step, f"{case}: {plan}"
    assert says in plan.reason, f"{case}: {plan.reason}"


def test_a_clone_names_its_source() -> None:
    plan = decide("node3", EMPTY, world(PUBLISHED, leader="node1", peers=LEADER_UP))
    assert plan.source == "node1"


def test_the_record_round_trips_and_garbage_is_none() -> None:
    assert parse_record(PUBLISHED.model_dump_json()) == PUBLISHED
    assert parse_record("not json") is None
    assert parse_record('{"cluster": "main"}') is None
