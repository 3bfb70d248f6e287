"""Sequence margins, DDL order, upgrade checks, sources: decisions without servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.errors import InvalidInput
from pgherd.lab import layout
from pgherd.logical import ddl as ddl_ops
from pgherd.logical import source
from pgherd.model import ddl, sequences, upgrade
from pgherd.model.cluster import view
from pgherd.model.doctor import check_cluster
from pgherd.model.names import QualifiedName
from pgherd.model.publication import TableFacts
from pgherd.model.sequences import SequenceState
from pgherd.model.status import Desired, NodeStatus, PgState, Role
from pgherd.pg import remote

S = QualifiedName("public", "s")


def seq(last: int | None, inc: int = 1, readable: bool = True) -> SequenceState:
    low, high = (1, 2**63 - 1) if inc > 0 else (-(2**63), -1)
    return SequenceState(S, last, inc, low, high, readable)


@pytest.mark.parametrize(
    ("publisher", "subscriber", "new", "note"),
    [
        (seq(500), seq(None), 1500, "set"),
        (seq(500), seq(10), 1500, "set"),
        (seq(500), seq(9000), None, "already ahead"),
        (seq(-500, -1), seq(-10, -1), -1500, "set"),
        (seq(None), seq(3), None, "never used"),
        (seq(None, readable=False), seq(3), None, "GRANT SELECT ON SEQUENCE"),
        (SequenceState(S, 90, 1, 1, 100), SequenceState(S, 1, 1, 1, 100), 100, "set"),
    ],
)
def test_sequences_move_past_the_publisher_never_back(
    publisher: SequenceState, subscriber: SequenceState, new: int | None, note: str
) -> None:
    (step,) = sequences.plan([publisher], {S: subscriber}, margin=1000)
    assert step.new_value == new
    assert note in step.note


def test_a_sequence_missing_on_the_subscriber_is_reported() -> None:
    (step,) = sequences.plan([seq(5)], {}, 10)
    assert step.new_value is None
    assert step.note == "not on the subscriber"


def snap(*tables: tuple[int, str, dict[str, str]]) -> ddl_ops.Snapshot:
    return {oid: ("public", name, cols) for oid, name, cols in tables}


def test_ddl_effect_and_order_for_an_added_column() -> None:
    before = snap((1, "t", {"id": "integer"}), (2, "u", {"id": "integer"}))
    after = snap((1, "t", {"id": "integer", "c": "text"}), (2, "u", {"id": "integer"}))
    effect = ddl_ops.effect(
        before, after, set(), {("public", "t"): ["p"]}, {("public", "t"): ["p"]}
    )
    assert [(t.name, t.publications) for t in effect.touched] == [("t", ("p",))]
    assert effect.added_columns == ("t.c",)
    assert ddl.order(effect)[0] is ddl.Order.SUBSCRIBERS_FIRST


def test_ddl_effect_and_order_for_a_dropped_column_and_table() -> None:
    before = snap((1, "t", {"id": "integer", "c": "text"}), (2, "u", {"id": "integer"}))
    after = snap((1, "t", {"id": "integer"}))
    effect = ddl_ops.effect(before, after, set(), {("public", "u"): ["p"]}, {})
    assert effect.dropped_columns == ("t.c", "u (the table)")
    assert {t.name for t in effect.published} == {"u"}
    how, reason = ddl.order(effect)
    assert how is ddl.Order.PUBLISHER_FIRST
    assert "t.c" in reason


def test_ddl_effect_sees_new_tables_and_locked_ones() -> None:
    before = snap((1, "t", {"id": "integer"}))
    after = snap((1, "t", {"id": "integer"}), (3, "n", {"id": "integer"}))
    effect = ddl_ops.effect(before, after, {1}, {}, {("public", "n"): ["all"]})
    assert [(t.name, t.new, t.publications) for t in effect.touched] == [
        ("n", True, ("all",)),
        ("t", False, ()),
    ]
    publisher = ddl.DdlTarget(node="a", dbname="d", role="publisher")
    subs = [ddl.DdlTarget(node="b", dbname="d", role="subscriber")]
    assert [t.node for t in ddl.sequence_of(publisher, subs, ddl.order(effect)[0])] == ["b", "a"]


def status(
    name: str, version: int = 150004, role: Role = Role.PRIMARY, sysid: str = "1"
) -> NodeStatus:
    return NodeStatus(
        name=name,
        state=PgState.RUNNING,
        desired=Desired.RUNNING,
        role=role,
        version_num=version,
        system_identifier=sysid,
    )


def facts(name: str, ident: str = "d", pk: bool = True) -> TableFacts:
    return TableFacts(
        schema_name="public",
        name=name,
        replica_identity=ident,
        has_primary_key=pk,
        has_identity_index=False,
        rows_estimate=10,
    )


def levels(found: list[upgrade.Check]) -> list[str]:
    return [str(c.level) for c in found]


def test_upgrade_checks() -> None:
    ok = upgrade.checks(status("a"), status("b", 160002), [facts("t")], [])
    assert "error" not in levels(ok)
    assert "PostgreSQL 15.4 → 16.2" in ok[0].text
    down = upgrade.checks(status("a", 160002), status("b"), [], [])
    assert down[0].level is upgrade.Level.ERROR
    full = upgrade.checks(status("a"), status("b", 160002), [], [facts("x")])
    assert any("already holds 1 tables" in c.text for c in full)
    same = upgrade.checks(status("a"), status("b"), [facts("t", pk=False)], [])
    assert "it upgrades nothing" in same[0].text
    assert any("no primary key" in c.text for c in same)
    standby = upgrade.checks(status("a"), status("b", role=Role.STANDBY), [], [])
    assert levels(standby) == ["error"]


def test_independent_nodes_are_each_their_own_cluster() -> None:
    statuses = [status("node1", sysid="1"), status("node2", sysid="2")]
    assert view(statuses, lambda _h, _p: None, independent=True).problems == ()
    streaming = view(statuses, lambda _h, _p: None)
    assert any("more than one running primary" in p for p in streaming.problems)
    assert check_cluster(statuses, independent=True) == []
    assert {f.check for f in check_cluster(statuses)} >= {"split-brain", "system-identifier"}


def test_sources_never_carry_a_password() -> None:
    config = layout.lab_config(
        Path("/var/tmp/x"), layout.LabShape(2, 5440, "postgres", None, independent=True)
    )
    assert config.independent
    assert config.settings["wal_retrieve_retry_interval"] == "1s"
    conninfo, node = source.resolve(config, "node1", "app")
    assert node == "node1"
    assert "password" not in conninfo
    assert "passfile=/var/tmp/x/secrets/pgpass" in conninfo
    assert "dbname=app" in conninfo
    uri, node = source.resolve(config, "postgresql://rep@db.example:6432/app", "postgres")
    assert node is None
    assert remote.describe(uri) == {
        "host": "db.example",
        "port": "6432",
        "user": "rep",
        "dbname": "app",
    }
    assert "passfile=/var/tmp/x/secrets/pgpass" in uri
    with pytest.raises(InvalidInput, match="holds a password"):
        source.resolve(config, "postgresql://rep:secret@h/app", "postgres")
    with pytest.raises(InvalidInput, match="neither a node"):
        source.resolve(config, "node9", "postgres")


def test_ddl_reaches_the_other_members_of_a_mesh_that_holds_a_touched_table() -> None:
    from pgherd.model.mesh import MeshSpec

    effect = ddl.DdlEffect(touched=(ddl.TouchedTable(schema_name="public", name="items"),))
    specs = [
        MeshSpec(name="m1", nodes=("node1", "node2", "node3"), tables=("public.items",)),
        MeshSpec(name="m2", nodes=("node1", "node4"), tables=("public.other",)),
        MeshSpec(name="m3", nodes=("node2", "node5"), tables=("public.items",)),
        MeshSpec(name="m4", dbname="app", nodes=("node1", "node6"), tables=("public.items",)),
    ]
    found = ddl.mesh_targets(specs, "node1", "postgres", effect)
    assert [(t.node, t.role, t.meshes) for t in found] == [
        ("node2", "mesh member", ("m1",)),
        ("node3", "mesh member", ("m1",)),
    ]
    assert ddl.mesh_targets(specs, "node9", "postgres", effect) == []
    assert ddl.touched_meshes(specs, "node2", "postgres", effect) == ["m1", "m3"]
    # They get it from node1's stream: pgherd runs it on node1 (and direct subscribers) only.
    publisher = ddl.DdlTarget(node="node1", dbname="postgres", role="publisher")
    subscriber = ddl.DdlTarget(node="node7", dbname="postgres", role="subscriber")
    order = ddl.sequence_of(publisher, [*found, subscriber], ddl.Order.SUBSCRIBERS_FIRST)
    assert [t.node for t in order] == ["node7", "node1"]
