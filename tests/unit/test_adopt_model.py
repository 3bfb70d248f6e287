"""model/adopt.py: what adopting an existing PostgreSQL changes, table-driven."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgherd.model.adopt import (
    Current,
    Facts,
    Original,
    Setting,
    Via,
    adopted_settings,
    from_config,
    merge_list,
    needs_restart,
    plan,
    problems,
    same,
)
from pgherd.pg import scram

FACTS = Facts(
    node="node1",
    major=15,
    programs_major=15,
    node_port=5432,
    server_port=5432,
    config_in_data_dir=True,
    standby=False,
    data_checksums=False,
)

DEBIAN_LIKE = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "wal_log_hints": "off",
    "wal_keep_size": "0MB",
    "wal_receiver_status_interval": "10s",
    "wal_retrieve_retry_interval": "5000ms",
    "listen_addresses": "localhost",
    "port": "5432",
    "unix_socket_directories": "/var/run/postgresql",
}


def original(checksums: bool = False, **values: str) -> Original:
    return Original(by="node1", at=0.0, data_checksums=checksums, values=DEBIAN_LIKE | values)


def with_values(values: dict[str, str]) -> Original:
    return Original(by="node1", at=0.0, data_checksums=False, values=DEBIAN_LIKE | values)


def settings(o: Original, nodes: int = 3) -> dict[str, object]:
    return dict(adopted_settings(o, "10.0.0.1", 5432, "/srv/pgherd/run", nodes, "512MB"))


@pytest.mark.parametrize(
    ("case", "change", "says"),
    [
        ("PostgreSQL 12", {"major": 12}, "pgherd adopts PostgreSQL 13 to 17"),
        ("no PG_VERSION", {"major": None}, "of an unknown version"),
        (
            "other programs",
            {"major": 14},
            "set pg_bin for node1 in pgherd.yaml (e.g. /usr/lib/postgresql/14/bin)",
        ),
        ("config elsewhere", {"config_in_data_dir": False}, "Debian's pg_createcluster"),
        ("another port", {"server_port": 5433}, "set port: 5433 for node1"),
        ("a standby", {"standby": True}, "adopt its primary"),
    ],
)
def test_problems(case: str, change: dict[str, object], says: str) -> None:
    found = problems(replace(FACTS, **change))  # type: ignore[arg-type]
    assert len(found) == 1, case
    assert says in found[0], case


def test_a_plain_server_has_no_problem() -> None:
    assert problems(FACTS) == ()


def test_adopted_settings_raise_only_what_replication_needs() -> None:
    values = settings(original())
    assert values["wal_level"] == "replica"
    assert values["max_wal_senders"] == 10  # 3 nodes + 4 fit in the operator's 10
    assert values["hot_standby"] is True
    assert values["wal_log_hints"] is True  # no checksums: pg_rewind needs it
    assert values["wal_keep_size"] == "512MB"
    assert values["wal_receiver_status_interval"] == "1s"
    assert values["wal_retrieve_retry_interval"] == "1s"
    assert values["listen_addresses"] == "localhost, 10.0.0.1"
    assert values["unix_socket_directories"] == "/var/run/postgresql, /srv/pgherd/run"
    for untouched in ("logging_collector", "log_line_prefix", "track_commit_timestamp"):
        assert untouched not in values


@pytest.mark.parametrize(
    ("given", "name", "expected"),
    [
        ({"wal_level": "logical"}, "wal_level", "logical"),
        ({"wal_level": "minimal"}, "wal_level", "replica"),
        ({"max_wal_senders": "3"}, "max_wal_senders", 7),
        ({"max_wal_senders": "40"}, "max_wal_senders", 40),
        ({"wal_keep_size": "2048MB"}, "wal_keep_size", "2048MB"),
        ({"listen_addresses": "*"}, "listen_addresses", "*"),
        ({"listen_addresses": "0.0.0.0"}, "listen_addresses", "0.0.0.0"),  # noqa: S104
        ({"listen_addresses": "10.0.0.1"}, "listen_addresses", "10.0.0.1"),
        ({"listen_addresses": ""}, "listen_addresses", "10.0.0.1"),
        (
            {"unix_socket_directories": "/srv/pgherd/run"},
            "unix_socket_directories",
            "/srv/pgherd/run",
        ),
    ],
)
def test_adopted_settings_keep_what_is_enough(
    given: dict[str, str], name: str, expected: object
) -> None:
    assert settings(with_values(given))[name] == expected


def test_checksums_make_wal_log_hints_unneeded_and_fast_intervals_stay() -> None:
    values = settings(
        original(
            checksums=True,
            wal_receiver_status_interval="1s",
            wal_retrieve_retry_interval="500ms",
        )
    )
    assert "wal_log_hints" not in values
    assert "wal_receiver_status_interval" not in values
    assert "wal_retrieve_retry_interval" not in values


def test_localhost_already_covers_the_loopback_address() -> None:
    assert merge_list("localhost", "127.0.0.1", ",") == "localhost"
    assert merge_list("localhost", "10.1.1.1", ",") == "localhost, 10.1.1.1"


def test_plan_lists_only_what_differs_and_says_how() -> None:
    current = {
        "wal_level": Current("replica", restart=True),
        "wal_log_hints": Current("off", restart=True),
        "wal_keep_size": Current("0MB", in_auto_conf=True),
        "listen_addresses": Current("localhost", in_auto_conf=True, restart=True),
        "hot_standby": Current("on", restart=True),
    }
    wanted: dict[str, Setting] = {
        "wal_level": "replica",
        "wal_log_hints": True,
        "wal_keep_size": "512MB",
        "listen_addresses": "localhost, 10.0.0.1",
        "hot_standby": True,
        "work_mem": "64MB",
    }
    changes = {c.name: c for c in plan(current, wanted)}
    assert set(changes) == {"wal_log_hints", "wal_keep_size", "listen_addresses", "work_mem"}
    assert changes["wal_log_hints"].via is Via.INCLUDE and changes["wal_log_hints"].restart
    assert changes["wal_keep_size"].via is Via.ALTER_SYSTEM  # the operator set it that way
    assert changes["listen_addresses"].via is Via.RESET  # host-specific: not in auto.conf
    assert changes["work_mem"].old == ""
    assert needs_restart(changes.values()) == ("wal_log_hints", "listen_addresses")


@pytest.mark.parametrize(
    ("name", "current", "new", "expected"),
    [
        ("wal_keep_size", "1024MB", "1GB", True),
        ("wal_keep_size", "0MB", "512MB", False),
        ("wal_receiver_status_interval", "1000ms", "1s", True),
        ("wal_receiver_status_interval", "10s", "1s", False),
        ("hot_standby", "on", True, True),
        ("hot_standby", "off", True, False),
        ("max_wal_senders", "10", 10, True),
        ("max_wal_senders", "10", 16, False),
        ("listen_addresses", "localhost,10.0.0.1", "localhost, 10.0.0.1", True),
        ("wal_level", "replica", "logical", False),
    ],
)
def test_same(name: str, current: str, new: object, expected: bool) -> None:
    assert same(name, current, new) is expected  # type: ignore[arg-type]


def test_from_config_writes_the_base_unit_out() -> None:
    assert from_config("wal_keep_size", "1024") == "1024MB"
    assert from_config("wal_retrieve_retry_interval", "5000") == "5000ms"
    assert from_config("wal_level", "replica") == "replica"


def test_scram_matches_the_password_behind_a_verifier() -> None:
    stored = scram.verifier("s3cret")
    assert scram.matches(stored, "s3cret")
    assert not scram.matches(stored, "other")
    assert not scram.matches("md5abcdef", "s3cret")
