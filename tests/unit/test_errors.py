"""Errors as the operator reads them: one line, the problem and what to do."""

from __future__ import annotations

import pytest

from pgherd.errors import (
    AgentUnreachable,
    CommandFailed,
    ConfigError,
    DataDirNotEmpty,
    PathUnreachable,
    PgherdError,
    PortInUse,
    PostgresNotFound,
    Refused,
    UnknownNode,
    last_lines,
)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            PgherdError("port 5441 is taken", "choose another"),
            "port 5441 is taken — choose another",
        ),
        (PgherdError("no hint here"), "no hint here"),
        (PgherdError("first line\n  second line\n", "fix it"), "first line second line — fix it"),
        (PgherdError("tabs\tand   runs  of spaces"), "tabs and runs of spaces"),
        (
            ConfigError("pgherd.yaml: nodes.0.port: too big"),
            "pgherd.yaml: nodes.0.port: too big — fix pgherd.yaml (see docs/config.md)",
        ),
        (
            PostgresNotFound("no PostgreSQL server programs found"),
            "no PostgreSQL server programs found — install PostgreSQL "
            "(apt-get install postgresql-15) or pass --pg-bin DIR",
        ),
        (ConfigError("explicit beats default", ""), "explicit beats default"),
    ],
)
def test_one_line(error: PgherdError, line: str) -> None:
    assert error.one_line() == line


def test_unknown_node_lists_the_known_ones() -> None:
    error = UnknownNode("node9", ["node1", "node2"])
    assert error.name == "node9"
    assert error.one_line() == "unknown node 'node9' — known nodes: node1, node2"
    assert UnknownNode("x", []).hint == "the config lists no nodes"


def test_refusals_share_a_class_the_api_maps_to_409() -> None:
    for kind in (PortInUse, DataDirNotEmpty, PathUnreachable):
        assert issubclass(kind, Refused)
    assert not issubclass(AgentUnreachable, Refused)


INITDB_STDERR = """\
The files belonging to this database system will be owned by user "postgres".
This user must also own the server process.

initdb: error: directory "/var/tmp/x/data" exists but is not empty
initdb: hint: If you want to create a new database system, either remove or empty the
directory "/var/tmp/x/data" or run initdb with an argument other than "/var/tmp/x/data".
"""


def test_command_failed_keeps_the_last_lines_of_stderr() -> None:
    error = CommandFailed("initdb", 1, INITDB_STDERR, "pass --force to replace it")
    assert error.message == (
        "initdb failed (exit 1): "
        'initdb: error: directory "/var/tmp/x/data" exists but is not empty | '
        "initdb: hint: If you want to create a new database system, either remove or empty the | "
        'directory "/var/tmp/x/data" or run initdb with an argument other than "/var/tmp/x/data".'
    )
    assert error.stderr == INITDB_STDERR
    assert (error.program, error.returncode) == ("initdb", 1)
    assert error.one_line().endswith(" — pass --force to replace it")
    assert "\n" not in error.one_line()


def test_command_failed_without_stderr() -> None:
    error = CommandFailed("pg_ctl", 3, "  \n\n")
    assert error.one_line() == "pg_ctl failed (exit 3)"


@pytest.mark.parametrize(
    ("text", "count", "joined"),
    [
        ("", 3, ""),
        ("one\n", 3, "one"),
        ("a\n\n b \nc\nd\n", 3, "b | c | d"),
        ("a\nb\nc\n", 1, "c"),
    ],
)
def test_last_lines(text: str, count: int, joined: str) -> None:
    assert last_lines(text, count) == joined
