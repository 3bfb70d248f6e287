"""PostgreSQL's version line, as `postgres --version` prints it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.pg.binaries import PgBin, parse_version


@pytest.mark.parametrize(
    ("text", "major", "version"),
    [
        ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", 15, "15.18"),
        ("postgres (PostgreSQL) 16.2", 16, "16.2"),
        ("postgres (PostgreSQL) 13.0", 13, "13.0"),
        ("postgres (PostgreSQL) 17beta1", 17, "17"),
    ],
)
def test_parse_version(text: str, major: int, version: str) -> None:
    assert parse_version(text) == (major, version)


@pytest.mark.parametrize(
    "text", ["", "garbage", "psql 15.18", "postgres (PostgreSQL)", "PostgreSQL 15.18"]
)
def test_parse_version_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL version line"):
        parse_version(text)


@pytest.mark.parametrize(
    ("version", "number"),
    [("15.18", 150018), ("16.2", 160002), ("13.0", 130000), ("17", 170000)],
)
def test_version_num_is_what_server_version_num_reports(version: str, number: int) -> None:
    pgbin = PgBin(Path("/usr/lib/postgresql/x/bin"), int(version.split(".")[0]), version)
    assert pgbin.version_num == number


def test_programs_are_found_in_the_bin_directory() -> None:
    pgbin = PgBin(Path("/usr/lib/postgresql/15/bin"), 15, "15.18")
    assert pgbin["pg_ctl"] == Path("/usr/lib/postgresql/15/bin/pg_ctl")
