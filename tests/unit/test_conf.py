"""pgherd.conf, the include file pgherd owns, and the one line it adds to postgresql.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.pg import conf


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "on"),
        (False, "off"),
        (0, "0"),
        (10, "10"),
        (0.9, "0.9"),
        ("logical", "'logical'"),
        ("", "''"),
        ("64MB", "'64MB'"),
        ("it's", "'it''s'"),
        ("C:\\pg\\archive", "'C:\\\\pg\\\\archive'"),
        ("host=n1 application_name='node2'", "'host=n1 application_name=''node2'''"),
    ],
)
def test_quote(value: conf.Setting, shown: str) -> None:
    assert conf.quote(value) == shown


def test_render_names_the_node_and_lists_the_settings_in_order() -> None:
    text = conf.render(
        "node2", {"wal_level": "logical", "hot_standby": True, "max_wal_senders": 10}
    )
    assert "node node2" in text
    assert text.endswith("\n")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == ["wal_level = 'logical'", "hot_standby = on", "max_wal_senders = 10"]


def test_read_include_round_trips_render(tmp_path: Path) -> None:
    settings: dict[str, conf.Setting] = {
        "wal_level": "logical",
        "hot_standby": True,
        "wal_log_hints": False,
        "max_wal_senders": 10,
        "checkpoint_completion_target": 0.9,
        "primary_conninfo": "host=127.0.0.1 port=5441 user=replicator passfile='/a b/pgpass'",
        "archive_command": "cp '%p' 'C:\\wal\\%f'",
        "cluster_name": "",
    }
    (tmp_path / conf.INCLUDE_FILE).write_text(conf.render("node1", settings))
    assert conf.read_include(tmp_path) == {
        "wal_level": "logical",
        "hot_standby": "on",
        "wal_log_hints": "off",
        "max_wal_senders": "10",
        "checkpoint_completion_target": "0.9",
        "primary_conninfo": "host=127.0.0.1 port=5441 user=replicator passfile='/a b/pgpass'",
        "archive_command": "cp '%p' 'C:\\wal\\%f'",
        "cluster_name": "",
    }


def test_read_include_without_the_file_is_empty(tmp_path: Path) -> None:
    assert conf.read_include(tmp_path) == {}


DEBIAN_CONF = """\
# -----------------------------
# PostgreSQL configuration file
# -----------------------------
data_directory = '/var/lib/postgresql/15/main'
#include_dir = 'conf.d'
max_connections = 100
"""


@pytest.mark.parametrize("text", ["", DEBIAN_CONF, DEBIAN_CONF.rstrip("\n")])
def test_with_include_appends_the_line_once(text: str) -> None:
    once = conf.with_include(text)
    assert once.startswith(text)
    assert once.endswith(conf.INCLUDE_LINE + "\n")
    assert conf.has_include(once)
    assert conf.with_include(once) == once
    # the user's last line is not glued to ours
    assert f"\n{conf.INCLUDE_LINE}\n" in once


@pytest.mark.parametrize(
    "line",
    [
        "include = 'pgherd.conf'",
        "include 'pgherd.conf'",
        "include_if_exists = 'pgherd.conf'   # by hand",
        "  include = 'pgherd.conf'",
    ],
)
def test_with_include_respects_an_include_already_there(line: str) -> None:
    text = f"{DEBIAN_CONF}{line}\n"
    assert conf.has_include(text)
    assert conf.with_include(text) == text


@pytest.mark.parametrize(
    "line",
    ["#include = 'pgherd.conf'", "# include 'pgherd.conf'", "max_connections = 100 # pgherd.conf"],
)
def test_commented_include_lines_do_not_count(line: str) -> None:
    text = f"{DEBIAN_CONF}{line}\n"
    assert not conf.has_include(text)
    updated = conf.with_include(text)
    assert updated.startswith(text)
    assert updated.endswith(conf.INCLUDE_LINE + "\n")


def test_what_postgres_said_about_refused_files_is_one_line() -> None:
    stderr = (
        '2026-12-06 07:41:34.394 UTC [32389] LOG:  invalid value for parameter "wal_level": '
        '"bogus"\n'
        "2026-12-06 07:41:34.394 UTC [32389] HINT:  Available values: minimal, replica, logical.\n"
        '2026-12-06 07:41:34.394 UTC [32389] FATAL:  configuration file "/d/pgherd.conf" '
        "contains errors\n"
    )
    assert conf.config_errors(stderr) == (
        'invalid value for parameter "wal_level": "bogus"; Available values: minimal, replica, '
        'logical.; configuration file "/d/pgherd.conf" contains errors'
    )
