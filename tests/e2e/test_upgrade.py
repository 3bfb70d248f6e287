"""A major-version upgrade by logical replication: PostgreSQL 15 (Debian's) into 16
(the server programs of the PyPI package pgserver, a dev dependency) through
``pgherd upgrade plan|start|status|cutover``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgherd import config as config_mod
from pgherd.lab import layout
from pgherd.lab.lifecycle import write_lab_files
from pgherd.pg import binaries, osuser
from tests.conftest import free_port_base
from tests.e2e.conftest import Lab, stop_lab
from tests.support import pgherd, query, wait_until

pytestmark = pytest.mark.e2e


def pg16() -> Path:
    found = binaries.pgserver_bindir()
    if found is None:
        pytest.fail(
            "PostgreSQL 16 programs not found: the dev dependency pgserver is not installed "
            "(run scripts/bootstrap.sh)"
        )
    assert binaries.inspect(found).major == 16
    return found


@pytest.fixture(scope="module")
def versions(module_dir: Path, os_user: osuser.OsUser) -> Iterator[Lab]:
    """node1 on PostgreSQL 15, node2 on 16: two independent clusters in one config."""
    directory = module_dir / "lab"
    os_user.make_dir(directory)
    base = free_port_base(2, (0, 1000))
    # tls: off, the only e2e lab in plain text: pgserver's PostgreSQL 16 is built without
    # OpenSSL, and a node with TLS on refuses to configure a server that cannot speak it.
    shape = layout.lab_config(
        directory, layout.LabShape(2, base, os_user.name, None, independent=True, tls=False)
    )
    nodes = shape.model_dump(mode="json")["nodes"]
    nodes[1]["pg_bin"] = str(pg16())
    config = config_mod.parse(
        shape.model_dump(mode="json") | {"nodes": nodes}, source="test config"
    )
    write_lab_files(config, directory / "pgherd.yaml", os_user)
    pgherd("lab", "up", "--dir", directory)
    lab = Lab(directory, base)
    yield lab
    stop_lab(lab)


def cli(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return pgherd(*args, config=lab.config_path, check=check)


def status(lab: Lab) -> dict[str, Any]:
    done = cli(lab, "upgrade", "status", "--to", "node2", "--json", check=False)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_upgrade_15_to_16_end_to_end(versions: Lab) -> None:
    config = versions.config
    assert query(config, "node1", "SHOW server_version")[0][0].startswith("15.")
    assert query(config, "node2", "SHOW server_version")[0][0].startswith("16.")
    query(
        config,
        "node1",
        "CREATE TABLE customers (login text PRIMARY KEY, full_name text NOT NULL, "
        "registration_date timestamptz NOT NULL DEFAULT now()); "
        "CREATE TABLE tickets (id bigserial PRIMARY KEY, login text REFERENCES customers, "
        "what text); CREATE INDEX ON tickets (login); "
        "CREATE VIEW open_tickets AS SELECT * FROM tickets",
    )
    query(
        config,
        "node1",
        "INSERT INTO customers (login, full_name) SELECT 'c' || g, 'C ' || g "
        "FROM generate_series(1, 1000) g; "
        "INSERT INTO tickets (login, what) SELECT 'c' || (g % 1000 + 1), 'w' "
        "FROM generate_series(1, 5000) g",
    )

    plan = json.loads(
        cli(versions, "upgrade", "plan", "--from", "node1", "--to", "node2", "--json").stdout
    )
    assert plan["ok"] is True
    assert plan["checks"][0]["text"].startswith("PostgreSQL 15.")
    assert "→ 16.2" in plan["checks"][0]["text"]
    assert status(versions)["phase"] == "not started"

    cli(versions, "upgrade", "start", "--from", "node1", "--to", "node2")
    wait_until(
        lambda: status(versions)["phase"] == "ready for cut-over",
        timeout=60,
        what="the upgrade ready for cut-over",
    )
    # Writes go on during the catch-up; the cut-over must carry them.
    query(config, "node1", "INSERT INTO customers (login, full_name) VALUES ('late', 'Late')")
    query(config, "node1", "INSERT INTO tickets (login, what) VALUES ('late', 'late one')")

    done = cli(versions, "upgrade", "cutover", "--to", "node2", "--margin", "100")
    assert "cut-over done" in done.stdout
    for sql in (
        "SELECT count(*) FROM customers",
        "SELECT count(*), max(id) FROM tickets",
        "SELECT count(*) FROM open_tickets",
    ):
        assert query(config, "node2", sql) == query(config, "node1", sql)
    assert query(config, "node2", "SELECT count(*) FROM tickets") == [(5001,)]
    new_id = query(
        config, "node2", "INSERT INTO tickets (login, what) VALUES ('late', 'on 16') RETURNING id"
    )
    assert new_id == [(5102,)]  # set to 5001 + 100 (the margin); the next value follows
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        query(config, "node1", "INSERT INTO customers (login, full_name) VALUES ('x', 'X')")
    assert query(config, "node2", "SELECT count(*) FROM pg_subscription") == [(0,)]
    assert query(config, "node1", "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert query(config, "node1", "SELECT count(*) FROM pg_publication") == [(0,)]


def test_origin_none_works_on_16(versions: Lab) -> None:
    """The feature refused on 15 (see test_logical) is accepted where the server has it."""
    query(versions.config, "node1", "ALTER SYSTEM RESET default_transaction_read_only")
    query(versions.config, "node1", "SELECT pg_reload_conf()")
    for node in ("node1", "node2"):
        query(versions.config, node, "CREATE TABLE notes (id int PRIMARY KEY)")
    cli(versions, "publication", "create", "notes_pub", "--node", "node1", "--tables", "notes")
    cli(
        versions,
        "subscription",
        "create",
        "notes_sub",
        "--node",
        "node2",
        "--from",
        "node1",
        "--publication",
        "notes_pub",
        "--origin",
        "none",
    )
    assert query(versions.config, "node2", "SELECT suborigin FROM pg_subscription") == [("none",)]
    query(versions.config, "node1", "INSERT INTO notes VALUES (1)")
    wait_until(
        lambda: query(versions.config, "node2", "SELECT id FROM notes") == [(1,)],
        what="the row on 16",
    )
    cli(versions, "subscription", "drop", "notes_sub", "--node", "node2")
