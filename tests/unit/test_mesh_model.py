"""The mesh's pure parts: its spec, the checks before create, verify's comparison."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pgherd.model import mesh as m
from pgherd.model.mesh import Chunk, ColumnDef, MeshSpec, NodeFacts, TableDef


def spec(**kw: object) -> MeshSpec:
    base: dict[str, object] = {"name": "shop", "nodes": ("a", "b"), "tables": ("public.t",)}
    return MeshSpec.model_validate(base | kw)


def table(
    columns: tuple[tuple[str, str, bool], ...] = (("id", "integer", True), ("v", "text", False)),
    key: tuple[str, ...] = ("id",),
    ident: str = "d",
) -> TableDef:
    return TableDef(
        name="public.t",
        columns=tuple(ColumnDef(name=n, type=t, not_null=nn) for n, t, nn in columns),
        primary_key=key,
        replica_identity=ident,
    )


def facts(node: str, found: TableDef | None = None, **kw: object) -> NodeFacts:
    base: dict[str, object] = {
        "node": node,
        "version_num": 150004,
        "wal_level": "logical",
        "track_commit_timestamp": True,
        "free_slots": 10,
        "free_origins": 10,
        "tables": {"public.t": found if found is not None else table()},
    }
    return NodeFacts.model_validate(base | kw)


def test_pairs_are_a_full_mesh() -> None:
    three = spec(nodes=("a", "b", "c"))
    assert three.pairs() == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    assert three.sources_of("b") == ["a", "c"]


def test_names_of_what_a_mesh_creates() -> None:
    assert m.publication_name("shop") == "pgherd_shop"
    assert m.slot_name("shop", "b") == "pgherd_shop_b"  # on a source, for target b
    assert m.origin_name("shop", "a") == "pgherd_shop_a"  # on a target, for source a
    assert m.qualify("t") == "public.t"
    assert m.qualify("s.t") == "s.t"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": "Shop"}, "name"),
        ({"name": "a" * 21}, "name"),
        ({"nodes": ("a",)}, "nodes"),
        ({"nodes": ("a", "a")}, "listed twice"),
        ({"tables": ("t",)}, "tables"),
        ({"tables": ()}, "tables"),
        ({"policy": "first-wins"}, "policy"),
        ({"nodes": ("a", "b" * 60)}, "too long for a slot name"),
    ],
)
def test_a_bad_spec_is_refused(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        spec(**change)


PROBLEMS: list[tuple[str, list[NodeFacts], str | None]] = [
    ("all good", [facts("a"), facts("b")], None),
    ("old server", [facts("a", version_num=130011), facts("b")], "a: PostgreSQL 130011 is older"),
    ("wal_level", [facts("a"), facts("b", wal_level="replica")], "b: wal_level is replica"),
    (
        "commit timestamps",
        [facts("a", track_commit_timestamp=False), facts("b")],
        "a: track_commit_timestamp is off",
    ),
    ("slots", [facts("a", free_slots=0), facts("b")], "a: needs 1 free replication slots"),
    ("origins", [facts("a"), facts("b", free_origins=0)], "b: needs 1 free replication origins"),
    ("missing table", [facts("a"), facts("b", tables={"public.t": None})], "does not exist"),
    ("no key", [facts("a", table(key=())), facts("b", table(key=()))], "has no primary key"),
    ("identity", [facts("a", table(ident="f")), facts("b")], "REPLICA IDENTITY FULL"),
    (
        "type differs",
        [facts("a"), facts("b", table(columns=(("id", "integer", True), ("v", "json", False))))],
        "column v is text vs json",
    ),
    (
        "not null differs",
        [facts("a"), facts("b", table(columns=(("id", "integer", True), ("v", "text", True))))],
        "column v is text vs text NOT NULL",
    ),
    (
        "column missing",
        [facts("a"), facts("b", table(columns=(("id", "integer", True),)))],
        "column v is missing on the second",
    ),
    (
        "key differs",
        [
            facts("a"),
            facts("b", table(columns=(("id", "integer", True), ("v", "text", True)), key=("v",))),
        ],
        "differs between a and b",
    ),
    ("already a member", [facts("a", meshes=("shop",)), facts("b")], "already a member"),
]


@pytest.mark.parametrize(("case", "found", "problem"), PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_create_problems(case: str, found: list[NodeFacts], problem: str | None) -> None:
    problems = m.create_problems(spec(), found)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_column_order_does_not_matter() -> None:
    reordered = table(columns=(("v", "text", False), ("id", "integer", True)))
    assert m.create_problems(spec(), [facts("a"), facts("b", reordered)]) == []


def test_adding_a_node_to_its_own_mesh_is_no_problem() -> None:
    found = [facts("a", meshes=("shop",)), facts("c")]
    assert m.create_problems(spec(nodes=("a", "b", "c")), found, adding=True) == []


def test_differing_ranges_names_the_key_ranges_and_counts() -> None:
    same, other = Chunk(rows=10, digest="x"), Chunk(rows=10, digest="y")
    chunks = {"a": [same, same, same], "b": [same, other, Chunk(rows=9, digest="z")]}
    found = m.differing_ranges("public.t", ["[10]", "[20]"], chunks)
    assert [(d.start, d.end, dict(d.rows)) for d in found] == [
        ("[10]", "[20]", {"a": 10, "b": 10}),
        ("[20]", None, {"a": 10, "b": 9}),
    ]
    assert m.differing_ranges("public.t", [], {"a": [same], "b": [same]}) == []


def test_differing_keys_names_changed_and_missing_rows_in_key_order() -> None:
    rows = {
        "a": [("[1]", "x"), ("[2]", "y"), ("[3]", "z"), ("[5]", "w")],
        "b": [("[1]", "x"), ("[2]", "Y"), ("[4]", "q"), ("[5]", "w")],
    }
    found = m.differing_keys("public.t", rows)
    assert [(d.key, dict(d.digests)) for d in found] == [
        ("[2]", {"a": "y", "b": "Y"}),
        ("[3]", {"a": "z", "b": None}),
        ("[4]", {"a": None, "b": "q"}),
    ]
    assert m.describe_keys(found) == "[2], [3] (not on b), [4] (not on a)"
    assert len(m.differing_keys("public.t", rows, limit=1)) == 1


def test_star_and_chain_pairs_and_what_each_source_passes_on() -> None:
    star = spec(nodes=("hub", "a", "b", "c"), topology="star")
    assert star.pairs() == [
        ("hub", "a"), ("hub", "b"), ("hub", "c"), ("a", "hub"), ("b", "hub"), ("c", "hub")
    ]  # fmt: skip
    assert star.sources_of("a") == ["hub"]
    assert star.sources_of("hub") == ["a", "b", "c"]
    assert star.forwarded("hub", "a") == {"b", "c"}  # the hub passes the other leaves on
    assert star.forwarded("a", "hub") == frozenset()  # a leaf has nothing to pass on
    chain = spec(nodes=("a", "b", "c", "d"), topology="chain")
    assert chain.pairs() == [("a", "b"), ("b", "c"), ("c", "d"), ("b", "a"), ("c", "b"), ("d", "c")]
    assert chain.forwarded("b", "c") == {"a"}
    assert chain.forwarded("c", "b") == {"d"}
    assert chain.forwarded("a", "b") == frozenset()
    full = spec(nodes=("a", "b", "c"))
    assert full.forwarded("a", "b") == frozenset()
    assert len(full.pairs()) == 6
