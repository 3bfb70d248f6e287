"""Names and row filters as users type them: parsed as PostgreSQL would, or refused."""

from __future__ import annotations

import re

import pytest

from pgherd.errors import InvalidInput
from pgherd.model import names
from pgherd.model.names import QualifiedName


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("customers", QualifiedName("public", "customers")),
        ("Customers", QualifiedName("public", "customers")),
        ("sales.orders", QualifiedName("sales", "orders")),
        ('"We ird"."na;me"', QualifiedName("We ird", "na;me")),
        ('"a.b"', QualifiedName("public", "a.b")),
        ('"quo""te"', QualifiedName("public", 'quo"te')),
        ('  s."T"  ', QualifiedName("s", "T")),
        ('"x; DROP TABLE y; --"', QualifiedName("public", "x; DROP TABLE y; --")),
    ],
)
def test_tables_parse_as_postgresql_reads_them(text: str, expected: QualifiedName) -> None:
    assert names.parse_table(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a b", "not a valid SQL name"),
        ("x;drop", "not a valid SQL name"),
        ('"open', "unpaired double quote"),
        ("a.b.c", "more than two dotted parts"),
        ('""', "is empty"),
        ("x" * 64, "longer than 63 bytes"),
        ("1abc", "not a valid SQL name"),
    ],
)
def test_bad_table_names_are_refused(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        names.parse_table(text)


def test_lists_split_on_commas_outside_quotes() -> None:
    assert names.parse_tables('a, "b,c" ,s.d,') == [
        QualifiedName("public", "a"),
        QualifiedName("public", "b,c"),
        QualifiedName("s", "d"),
    ]


def test_prefix_splits_on_the_first_colon_outside_quotes() -> None:
    table, rest = names.split_table_prefix("\"a:b\".t:x = '1:2'", "--row-filter")
    assert table == QualifiedName("a:b", "t")
    assert rest == "x = '1:2'"


@pytest.mark.parametrize(
    "expr",
    [
        "country = 'FR'",
        "amount > 100 AND (status = 'open' OR status = 'new')",
        "note = 'it''s; fine -- really'",
        "E'a\\'b;' = name",
        '"We ird" IS NOT NULL',
        "lower(login) LIKE 'a%'",
    ],
)
def test_expressions_that_stay_in_their_where_are_kept(expr: str) -> None:
    assert names.check_expression(expr) == expr


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("true); DROP TABLE customers; --", "a ')' without its '('"),
        ("1=1; DROP TABLE x", "a semicolon"),
        ("a = 1 -- comment", "a comment"),
        ("a = 1 /* x */", "a comment"),
        ("(a = 1", "a '(' without its ')'"),
        ("a = $$x$$", "a dollar sign"),
        ("a = 'open", "an unterminated string literal"),
        ("   ", "empty"),
    ],
)
def test_expressions_that_could_escape_are_refused(expr: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        names.check_expression(expr)


@pytest.mark.parametrize(
    ("name", "shown"),
    [("plain", "plain"), ("Mixed", '"Mixed"'), ('a"b', '"a""b"'), ("has space", '"has space"')],
)
def test_quote_ident_matches_postgresql(name: str, shown: str) -> None:
    assert names.quote_ident(name) == shown
