"""Publication requests: options into one spec, presets, version checks, identity warnings."""

from __future__ import annotations

import pytest

from pgherd.errors import InvalidInput, Refused
from pgherd.model import publication as model
from pgherd.model.names import QualifiedName
from pgherd.model.publication import TableIdentity, build_spec


def test_tables_with_a_filter_and_columns() -> None:
    spec = build_spec(
        "p",
        tables="customers,orders",
        row_filters=["customers:country = 'FR'"],
        columns=["orders:id,total"],
    )
    by_name = {t.name: t for t in spec.tables}
    assert by_name["customers"].row_filter == "country = 'FR'"
    assert by_name["customers"].columns is None
    assert by_name["orders"].columns == ("id", "total")
    assert spec.publish == ("insert", "update", "delete", "truncate")


@pytest.mark.parametrize(
    ("preset", "publish", "expected"),
    [
        ("default", None, ("insert", "update", "delete", "truncate")),
        ("insert-only", None, ("insert", "truncate")),
        (None, "delete,insert", ("insert", "delete")),
        (None, None, ("insert", "update", "delete", "truncate")),
    ],
)
def test_presets_and_publish(
    preset: str | None, publish: str | None, expected: tuple[str, ...]
) -> None:
    assert model.parse_publish(publish, preset) == expected


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "say what to publish"),
        ({"all_tables": True, "tables": "a"}, "cannot be combined"),
        ({"tables": "a", "row_filters": ["b:x > 1"]}, "not in --tables"),
        ({"tables": "a", "columns": ["b:x"]}, "not in --tables"),
        ({"tables": "a", "row_filters": ["a:x > 1", "a:y > 1"]}, "two row filters"),
        ({"tables": "a,a"}, "listed twice"),
        ({"tables": "a", "publish": "insert", "preset": "default"}, "both say what to publish"),
        ({"tables": "a", "publish": "upsert"}, "names upsert"),
        ({"tables": "a", "preset": "ddl_sql"}, "unknown preset"),
        ({"tables": "a", "row_filters": ["a"]}, "not of the form TABLE:VALUE"),
        ({"tables": "a", "row_filters": ["a:true); drop table a; --"]}, "without its"),
        ({"tables": "a", "columns": ["a:x,x"]}, "names a column twice"),
        ({"all_tables": True, "row_filters": ["a:x"]}, "cannot be combined|apply to tables"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        build_spec("p", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "kwargs", "refused"),
    [
        (140005, {"tables": "a", "row_filters": ["a:x > 1"]}, "row filters"),
        (140005, {"tables": "a", "columns": ["a:x"]}, "column lists"),
        (140005, {"schemas": ["s"]}, "publishing a schema"),
        (130010, {"tables": "a"}, None),
        (150004, {"tables": "a", "row_filters": ["a:x > 1"], "columns": ["a:x"]}, None),
    ],
)
def test_features_are_checked_against_the_server_version(
    version: int, kwargs: dict[str, object], refused: str | None
) -> None:
    spec = build_spec("p", **kwargs)  # type: ignore[arg-type]
    needed = model.features_needed(spec.tables, spec.schemas)
    if refused is None:
        model.require_features(needed, version, "node1")
    else:
        with pytest.raises(Refused, match=f"{refused}.*PostgreSQL 15.*node1 runs PostgreSQL 14"):
            model.require_features(needed, version, "node1")


T = QualifiedName("public", "t")


@pytest.mark.parametrize(
    ("identity", "publish", "warned"),
    [
        (TableIdentity(T, "d", True, False), ("insert", "update"), False),
        (TableIdentity(T, "d", False, False), ("insert", "update"), True),
        (TableIdentity(T, "d", False, False), ("insert", "truncate"), False),
        (TableIdentity(T, "n", True, False), ("delete",), True),
        (TableIdentity(T, "f", False, False), ("update",), False),
        (TableIdentity(T, "i", False, True), ("update",), False),
        (TableIdentity(T, "i", False, False), ("update",), True),
    ],
)
def test_tables_without_identity_are_warned_about(
    identity: TableIdentity, publish: tuple[str, ...], warned: bool
) -> None:
    found = model.identity_warnings([identity], publish, "p")
    assert bool(found) is warned
    if warned:
        assert "REPLICA IDENTITY FULL" in found[0]
        assert "ADD PRIMARY KEY" in found[0]
