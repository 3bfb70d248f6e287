"""LSN parsing, formatting and arithmetic, checked against what PostgreSQL prints."""

from __future__ import annotations

import pytest

from pgherd.model.lsn import Lsn, lag_bytes

SEGMENT = 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/3000060", 0x3000060),
        ("16/B374D848", 0x16_B374D848),
        ("1/0", 1 << 32),
        ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1),
    ],
)
def test_parse_and_format_round_trip(text: str, value: int) -> None:
    lsn = Lsn.parse(text)
    assert lsn.value == value
    assert str(lsn) == text
    assert Lsn.parse(str(lsn)) == lsn


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("16/b374d848", "16/B374D848"),  # lower case, as some tools print it
        ("00000000/00000001", "0/1"),  # zero-padded halves
        ("  0/3000060\n", "0/3000060"),  # a line read from a program's output
    ],
)
def test_parse_normalises_to_postgresql_spelling(text: str, shown: str) -> None:
    assert str(Lsn.parse(text)) == shown


@pytest.mark.parametrize(
    "text",
    ["", "0", "16/", "/B374D848", "16/G374D848", "123456789/0", "0/123456789", "1/2/3", "0x1/0"],
)
def test_bad_input_names_the_value_and_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="not an LSN") as caught:
        Lsn.parse(text)
    assert repr(text) in str(caught.value)
    assert "16/B374D848" in str(caught.value)


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_out_of_range_values_are_refused(value: int) -> None:
    with pytest.raises(ValueError, match="LSN out of range"):
        Lsn(value)


def test_parse_optional_passes_none_through() -> None:
    assert Lsn.parse_optional(None) is None
    assert Lsn.parse_optional("0/10") == Lsn(16)


def test_ordering_follows_the_wal() -> None:
    texts = ["1/0", "0/FFFFFFFF", "0/3000060", "0/0", "A/0", "9/FFFFFFFF"]
    ordered = sorted(Lsn.parse(t) for t in texts)
    assert [str(lsn) for lsn in ordered] == [
        "0/0",
        "0/3000060",
        "0/FFFFFFFF",
        "1/0",
        "9/FFFFFFFF",
        "A/0",
    ]
    assert Lsn.parse("0/3000060") < Lsn.parse("0/3000061")
    assert max(Lsn.parse("1/0"), Lsn.parse("0/FFFFFFFF")) == Lsn.parse("1/0")


@pytest.mark.parametrize(
    ("ahead", "behind", "diff"),
    [
        ("16/B374D848", "16/B374D800", 0x48),
        ("1/0", "0/FFFFFFFF", 1),  # across the high word, as pg_wal_lsn_diff counts it
        ("0/3000060", "0/3000060", 0),
        ("0/0", "0/1000000", -SEGMENT),
    ],
)
def test_subtraction_is_the_distance_in_bytes(ahead: str, behind: str, diff: int) -> None:
    assert Lsn.parse(ahead) - Lsn.parse(behind) == diff


@pytest.mark.parametrize(
    ("ahead", "behind", "lag"),
    [
        ("0/3000148", "0/3000100", 0x48),
        ("0/3000148", "0/3000148", 0),
        ("0/3000100", "0/3000148", 0),  # a standby briefly ahead of a stale primary reading
        (None, "0/3000100", None),
        ("0/3000148", None, None),
        (None, None, None),
    ],
)
def test_lag_bytes(ahead: str | None, behind: str | None, lag: int | None) -> None:
    assert lag_bytes(Lsn.parse_optional(ahead), Lsn.parse_optional(behind)) == lag


@pytest.mark.parametrize(
    ("text", "segment"),
    [
        ("0/0", 0),
        ("0/FFFFFF", 0),
        ("0/1000000", 1),
        ("0/3000060", 3),
        ("1/0", 256),  # 4 GiB / 16 MiB segments per high word
        ("16/B374D848", 0x16 * 256 + 0xB3),
    ],
)
def test_segment_number(text: str, segment: int) -> None:
    assert Lsn.parse(text).segment_number() == segment


def test_segment_number_with_another_segment_size() -> None:
    assert Lsn.parse("0/3000060").segment_number(64 * 1024 * 1024) == 0
    assert Lsn.parse("0/4000000").segment_number(64 * 1024 * 1024) == 1
