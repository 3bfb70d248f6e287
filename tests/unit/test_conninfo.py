"""Connection strings, checked by parsing them back with libpq (through psycopg)."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgherd.pg import conninfo


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("/var/tmp/lab/secrets/pgpass", "/var/tmp/lab/secrets/pgpass"),
        ("a=b", "a=b"),
        ("", "''"),
        ("two words", "'two words'"),
        ("it's", "'it\\'s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("tab\there", "'tab\there'"),
    ],
)
def test_quote_value(value: str, quoted: str) -> None:
    assert conninfo.quote_value(value) == quoted


AWKWARD = [
    "plain",
    "two words",
    "it's",
    "'leading quote",
    "back\\slash",
    "ends with backslash\\",
    "a=b",
    "tab\there",
    "new\nline",
]


@pytest.mark.parametrize("value", AWKWARD)
def test_keyword_is_parsed_back_by_libpq_unchanged(value: str) -> None:
    text = conninfo.keyword(
        host="127.0.0.1",
        port=5441,
        user=value,
        passfile=Path(f"/var/tmp/{value}/pgpass"),
        dbname=value,
        application_name=value,
    )
    assert conninfo_to_dict(text) == {
        "host": "127.0.0.1",
        "port": "5441",
        "user": value,
        "passfile": f"/var/tmp/{value}/pgpass",
        "dbname": value,
        "application_name": value,
    }


@pytest.mark.parametrize("value", ["cr\rhere", "ff\fhere", "vt\vhere"])
def test_keyword_quotes_every_kind_of_white_space(value: str) -> None:
    text = conninfo.keyword("127.0.0.1", 5441, value, Path("/p"))
    assert conninfo_to_dict(text)["user"] == value


def test_keyword_leaves_out_what_was_not_asked_for() -> None:
    text = conninfo.keyword("::1", 5441, "replicator", Path("/var/tmp/lab/secrets/pgpass"))
    assert text == "host=::1 port=5441 user=replicator passfile=/var/tmp/lab/secrets/pgpass"
    assert "password" not in conninfo_to_dict(text)


def test_keyword_passes_session_options_to_the_server() -> None:
    text = conninfo.keyword("127.0.0.1", 5441, "postgres", Path("/p"), options="-c jit=off")
    assert conninfo_to_dict(text)["options"] == "-c jit=off"


def test_uri_as_psql_takes_it() -> None:
    uri = conninfo.uri("127.0.0.1", 5441, "postgres", Path("/var/tmp/lab/secrets/pgpass"))
    assert (
        uri == "postgresql://postgres@127.0.0.1:5441/postgres?passfile=/var/tmp/lab/secrets/pgpass"
    )


def test_uri_brackets_an_ipv6_host() -> None:
    uri = conninfo.uri("::1", 5441, "postgres", Path("/p"))
    assert uri.startswith("postgresql://postgres@[::1]:5441/")
    assert conninfo_to_dict(uri)["host"] == "::1"


@pytest.mark.parametrize(
    ("host", "user", "passfile", "dbname"),
    [
        ("127.0.0.1", "postgres", "/var/tmp/lab/secrets/pgpass", "postgres"),
        ("::1", "replicator", "/var/tmp/my lab/pgpass", "app db"),
        ("db1.example", "we@ird:user", "/var/tmp/p%20q?x=1&y/pgpass", "d/b"),
    ],
)
def test_uri_is_parsed_back_by_libpq_unchanged(
    host: str, user: str, passfile: str, dbname: str
) -> None:
    uri = conninfo.uri(host, 5441, user, Path(passfile), dbname)
    assert conninfo_to_dict(uri) == {
        "host": host,
        "port": "5441",
        "user": user,
        "passfile": passfile,
        "dbname": dbname,
    }


def test_read_write_names_every_node_and_keeps_the_writable_one() -> None:
    """A mesh worker's connection to a member that is an HA cluster: libpq tries each node
    and keeps the one that takes writes (its primary, whichever it is now)."""
    text = conninfo.read_write(
        [("10.0.0.1", 5432), ("10.0.0.2", 5433)],
        "replicator",
        Path("/etc/pgherd/east pgpass"),
        dbname="shop",
        application_name="pgherd_shop_west",
        sslrootcert=Path("/etc/pgherd/east/ca.crt"),
    )
    assert conninfo_to_dict(text) == {
        "host": "10.0.0.1,10.0.0.2",
        "port": "5432,5433",
        "user": "replicator",
        "passfile": "/etc/pgherd/east pgpass",
        "target_session_attrs": "read-write",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/pgherd/east/ca.crt",
        "dbname": "shop",
        "application_name": "pgherd_shop_west",
    }
    with pytest.raises(ValueError, match="no hosts"):
        conninfo.read_write([], "u", Path("/p"))
