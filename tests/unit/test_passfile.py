"""pgpass files: written so libpq reads back exactly the password pgherd generated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pgherd.errors import ConfigError
from pgherd.pg import passfile


@pytest.mark.parametrize(
    ("field", "escaped"),
    [
        ("plain", "plain"),
        ("a:b", "a\\:b"),
        ("a\\b", "a\\\\b"),
        ("\\:", "\\\\\\:"),
        ("", ""),
    ],
)
def test_escape(field: str, escaped: str) -> None:
    assert passfile.escape(field) == escaped


def test_render_writes_one_wildcard_line_per_role() -> None:
    text = passfile.render({"postgres": "s3cret", "replicator": "pa:ss"})
    assert text == "*:*:*:postgres:s3cret\n*:*:*:replicator:pa\\:ss\n"


@pytest.mark.parametrize(
    "password",
    ["simple", "with:colon", "back\\slash", "trailing\\", "::\\\\::", "sp ace", "*"],
)
def test_render_then_password_for_round_trips(tmp_path: Path, password: str) -> None:
    path = tmp_path / "pgpass"
    path.write_text(passfile.render({"postgres": "other", "replicator": password}))
    assert passfile.password_for(path, "replicator") == password
    assert passfile.password_for(path, "postgres") == "other"


def test_password_for_a_missing_role_names_the_role(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    path.write_text(passfile.render({"postgres": "x"}))
    with pytest.raises(ConfigError, match="has no password for role 'replicator'"):
        passfile.password_for(path, "replicator")


def test_password_for_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    with pytest.raises(ConfigError, match=f"cannot read the passfile {re.escape(str(missing))}"):
        passfile.password_for(missing, "postgres")


def test_password_for_skips_lines_that_are_not_entries(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    path.write_text("# a comment\nnot a pgpass line\n*:*:*:postgres:right\n")
    assert passfile.password_for(path, "postgres") == "right"


def test_generated_passwords_are_ascii_long_and_different() -> None:
    passwords = {passfile.generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert password.isascii()
        assert len(password) >= 32
        assert ":" not in password
        assert "\\" not in password
