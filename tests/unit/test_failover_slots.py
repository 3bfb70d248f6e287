"""Which slots a node creates, copies, advances and drops so that they survive a failover."""

from __future__ import annotations

import pytest

from pgherd.model.failover_slots import (
    Declared,
    SlotAction,
    SlotDo,
    SlotKind,
    SlotSeen,
    copy_delay,
    decide,
    ready,
    unready_copies,
)
from pgherd.model.lsn import Lsn

L, P = SlotKind.LOGICAL, SlotKind.PHYSICAL
MEMBERS = ("node1", "node2", "node3")
CDC = Declared("cdc", L, database="app", plugin="test_decoding")
ARCHIVER = Declared("archiver", P)


def logical(name: str, confirmed: int | None, **kw: object) -> SlotSeen:
    base: dict[str, object] = {"database": "app", "plugin": "pgoutput", "catalog_xmin": 700}
    found = base | kw
    return SlotSeen(
        name,
        L,
        confirmed_flush=Lsn(confirmed) if confirmed is not None else None,
        **found,  # type: ignore[arg-type]
    )


def physical(name: str, restart: int | None, **kw: object) -> SlotSeen:
    return SlotSeen(name, P, restart_lsn=Lsn(restart) if restart is not None else None, **kw)  # type: ignore[arg-type]


def act(actions: list[SlotAction]) -> list[tuple[str, str, int | None]]:
    return [(str(a.do), a.slot, a.lsn.value if a.lsn else None) for a in actions]


def test_a_primary_creates_the_permanent_slots_it_lacks() -> None:
    found = decide(True, [logical("cdc", 10, plugin="test_decoding")], [CDC, ARCHIVER], MEMBERS)
    assert act(found) == [("create", "archiver", None)]
    assert found[0].kind is P


CASES = [
    # (case, mine, leader's, replayed, expected actions)
    ("copies a logical slot it lacks", [], [logical("sub", 100)], 500, [("copy", "sub", None)]),
    ("not one the primary has not made usable", [], [logical("sub", None)], 500, []),
    (
        "advances to the subscriber's position",
        [logical("sub", 100)],
        [logical("sub", 300)],
        500,
        [("advance", "sub", 300)],
    ),
    (
        "never past what it replayed",
        [logical("sub", 100)],
        [logical("sub", 300)],
        200,
        [("advance", "sub", 200)],
    ),
    ("nothing when it is there already", [logical("sub", 300)], [logical("sub", 300)], 500, []),
    (
        "copies again one ahead of the primary's (the old primary rejoined)",
        [logical("sub", 400)],
        [logical("sub", 300)],
        500,
        [("copy", "sub", None)],
    ),
    ("not while it is in use", [logical("sub", 400, active=True)], [logical("sub", 300)], 500, []),
    ("nothing without a replay position", [logical("sub", 100)], [logical("sub", 300)], None, []),
    (
        "drops a copy the primary dropped",
        [logical("gone", 100)],
        [],
        500,
        [("drop", "gone", None)],
    ),
    ("keeps one in use", [logical("used", 100, active=True)], [], 500, []),
    (
        "leaves another plugin's slot of that name",
        [logical("sub", 1, plugin="x")],
        [logical("sub", 9)],
        50,
        [],
    ),
    ("ignores temporary slots", [], [logical("tmp", 10, temporary=True)], 500, []),
    (
        "leaves the standbys' physical slots to cluster operations",
        [],
        [physical("node2", 10)],
        500,
        [],
    ),
    ("leaves physical slots nobody declared", [], [physical("other", 10)], 500, []),
    (
        "keeps a declared physical slot and advances it",
        [physical("archiver", 100)],
        [physical("archiver", 400)],
        300,
        [("advance", "archiver", 300)],
    ),
    (
        "creates a declared physical slot's copy",
        [],
        [physical("archiver", 400)],
        300,
        [("create", "archiver", None)],
    ),
    (
        "keeps a declared logical slot like the others",
        [],
        [logical("cdc", 50, plugin="test_decoding")],
        300,
        [("copy", "cdc", None)],
    ),
]


@pytest.mark.parametrize(
    ("case", "mine", "leader", "replayed", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_a_standby_keeps_copies_of_the_primarys_slots(
    case: str,
    mine: list[SlotSeen],
    leader: list[SlotSeen],
    replayed: int | None,
    expected: list[tuple[str, str, int | None]],
) -> None:
    found = decide(
        False, mine, [CDC, ARCHIVER], MEMBERS, leader, Lsn(replayed) if replayed else None
    )
    assert act(found) == expected, case


def test_a_standby_that_cannot_read_the_primary_does_nothing() -> None:
    assert decide(False, [logical("gone", 1)], [CDC], MEMBERS, None, Lsn(5)) == []


def test_a_copy_names_its_database_and_plugin_for_the_copy() -> None:
    (copy,) = decide(False, [], [], MEMBERS, [logical("sub", 100)], Lsn(200))
    assert (copy.do, copy.database, copy.plugin) == (SlotDo.COPY, "app", "pgoutput")


@pytest.mark.parametrize(
    ("copy", "feedback", "expected"),
    [(700, 690, True), (700, 700, True), (700, 710, False), (None, 1, False), (700, None, False)],
)
def test_ready_once_the_primary_keeps_the_copys_catalog_rows(
    copy: int | None, feedback: int | None, expected: bool
) -> None:
    assert ready(copy, feedback) is expected


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [(690, []), (700, []), (710, ["sub"]), (None, ["sub"])],
    ids=["held", "held-exactly", "newer", "no-feedback"],
)
def test_copies_not_yet_safe_for_a_failover(feedback: int | None, expected: list[str]) -> None:
    mine = [logical("sub", 100, catalog_xmin=700), logical("gone", 100, catalog_xmin=1)]
    leader = [logical("sub", 300), physical("node2", 10, catalog_xmin=feedback)]
    assert unready_copies(mine, leader, "node2") == expected


def test_a_copy_that_could_not_be_advanced_is_copied_again() -> None:
    mine, leader = [logical("sub", 100)], [logical("sub", 300)]
    (again,) = decide(False, mine, [], MEMBERS, leader, Lsn(500), broken={"sub"})
    assert (again.do, again.reason) == (
        SlotDo.COPY,
        "logical slot sub of the primary could not be advanced",
    )
    assert act(decide(False, mine, [], MEMBERS, leader, Lsn(500), broken={"other"})) == [
        ("advance", "sub", 300)
    ]


@pytest.mark.parametrize(
    ("node", "primary", "expected"),
    [
        ("node2", "node1", 0.0),
        ("node3", "node1", 6.0),
        ("node1", "node2", 0.0),
        ("node3", "node2", 6.0),
    ],
)
def test_standbys_take_turns_to_restart_for_copies(
    node: str, primary: str, expected: float
) -> None:
    assert copy_delay(node, primary, MEMBERS) == expected


def made_then_removed(*names: str) -> tuple[set[str], set[str]]:
    """The store's record for slots pgherd made on this node (``owned``) and that were then
    removed from ``slots:`` (``retired``): the set-up most cases below share."""
    return set(names), set(names)


REMOVED = [
    # (case, primary?, mine, leader's, owned here, retired, expected actions)
    (
        "the primary drops a removed slot it made",
        True,
        [physical("old", 10), logical("cdc", 10, plugin="test_decoding")],
        None,
        {"old", "cdc"},
        {"old"},
        [("drop", "old", None)],
    ),
    (
        "nor one in use: it waits for its consumer",
        True,
        [logical("old", 10, active=True)],
        None,
        *made_then_removed("old"),
        [("wait", "old", None)],
    ),
    (
        "never a slot it did not make",
        True,
        [physical("by_hand", 10), logical("tool", 10)],
        None,
        set(),
        set(),
        [],
    ),
    (
        "forgets a removed slot once gone",
        True,
        [],
        None,
        *made_then_removed("old"),
        [("forget", "old", None)],
    ),
    (
        "keeps a declared slot it made",
        True,
        [physical("archiver", 10)],
        None,
        {"archiver"},
        set(),
        [],
    ),
    (
        "nor a standby's slot, whatever the record says",
        True,
        [physical("node2", 10)],
        None,
        {"node2"},
        set(),
        [],
    ),
    (
        "a standby drops its physical copy of a removed slot",
        False,
        [physical("old", 10)],
        [],
        *made_then_removed("old"),
        [("drop", "old", None)],
    ),
    (
        "even while the primary waits for its consumer (and does not copy it again)",
        False,
        [logical("old", 10)],
        [logical("old", 20, active=True)],
        *made_then_removed("old"),
        [("drop", "old", None)],
    ),
    (
        "a standby does not copy a removed slot it no longer has",
        False,
        [],
        [logical("old", 20, active=True), physical("old2", 20)],
        set(),
        {"old", "old2"},
        [],
    ),
    (
        "a standby leaves a physical slot made by hand",
        False,
        [physical("by_hand", 10)],
        [physical("by_hand", 10)],
        set(),
        set(),
        [],
    ),
    (
        "a standby waits for a consumer of its copy",
        False,
        [physical("old", 10, active=True)],
        [],
        *made_then_removed("old"),
        [("wait", "old", None)],
    ),
]


@pytest.mark.parametrize(
    ("case", "primary", "mine", "leader", "owned", "retired", "expected"),
    REMOVED,
    ids=[c[0] for c in REMOVED],
)
def test_a_permanent_slot_removed_from_the_config_is_dropped_where_pgherd_made_it(
    case: str,
    primary: bool,
    mine: list[SlotSeen],
    leader: list[SlotSeen] | None,
    owned: set[str],
    retired: set[str],
    expected: list[tuple[str, str, int | None]],
) -> None:
    declared_here = [logical("cdc", 10, plugin="test_decoding"), physical("archiver", 10)]
    found = decide(
        primary,
        declared_here + mine,
        [CDC, ARCHIVER],
        MEMBERS,
        leader,
        Lsn(500),
        owned=owned,
        retired=retired,
    )
    assert act(found) == expected, case


def test_a_drop_names_the_slot_kind_and_why() -> None:
    (drop,) = decide(True, [physical("old", 10)], [], MEMBERS, owned={"old"})
    assert (drop.kind, drop.reason) == (
        P,
        "permanent slot old was removed from slots: (pgherd made it)",
    )
