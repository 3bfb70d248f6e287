"""Logical replication through the CLI between two independent lab clusters (PG 15):
publications, subscriptions, replication sets, row filters, column lists, schema sync,
DDL, sequences, errors with hints, and bad input quoted or refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgherd.clients.agent import AgentClient
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.support import pgherd, query, wait_until

pytestmark = pytest.mark.e2e

CUSTOMERS = (
    "CREATE TABLE customers (login text PRIMARY KEY, full_name text NOT NULL, "
    "registration_date timestamptz NOT NULL DEFAULT now())"
)


@pytest.fixture(scope="module")
def pair(module_dir: Path) -> Iterator[Lab]:
    """Two independent primaries (node1 publishes, node2 subscribes), shared by the module."""
    lab = start_lab(module_dir / "lab", 2, "--independent")
    yield lab
    stop_lab(lab)


def cli(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return pgherd(*args, config=lab.config_path, check=check)


def on_both(lab: Lab, sql: str) -> None:
    for node in ("node1", "node2"):
        query(lab.config, node, sql)


def sub_status(lab: Lab, name: str, node: str = "node2") -> dict[str, Any]:
    done = cli(lab, "subscription", "status", name, "--node", node, "--json", check=False)
    assert done.returncode in (0, 3), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def wait_ready(lab: Lab, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        data = sub_status(lab, name)
        tables_ready = all(t["state"] == "r" for t in data["tables"])
        return data if data["health"] == "replicating" and tables_ready else {}

    return wait_until(ready, timeout=40, what=f"subscription {name} replicating")


def rows(lab: Lab, node: str, sql: str) -> list[Any]:
    return query(lab.config, node, sql)


def wait_rows(lab: Lab, node: str, sql: str, expected: list[Any]) -> None:
    wait_until(lambda: rows(lab, node, sql) == expected, timeout=30, what=f"{sql} on {node}")


def subscribe(lab: Lab, name: str, publication: str, *extra: str) -> None:
    cli(
        lab,
        "subscription",
        "create",
        name,
        "--node",
        "node2",
        "--from",
        "node1",
        "--publication",
        publication,
        *extra,
    )


def drop(lab: Lab, subscription: str, publication: str) -> None:
    cli(lab, "subscription", "drop", subscription, "--node", "node2")
    cli(lab, "publication", "drop", publication, "--node", "node1")


def test_the_customers_walk_through(pair: Lab) -> None:
    on_both(pair, CUSTOMERS)
    created = cli(
        pair, "publication", "create", "customers_pub", "--node", "node1", "--tables", "customers"
    )
    assert "created publication 'customers_pub'" in created.stdout
    subscribe(pair, "customers_sub", "customers_pub")
    query(
        pair.config,
        "node1",
        "INSERT INTO customers (login, full_name) VALUES ('alice', 'Alice A'), ('bob', 'Bob B')",
    )
    wait_rows(
        pair,
        "node2",
        "SELECT login, full_name FROM customers ORDER BY 1",
        [("alice", "Alice A"), ("bob", "Bob B")],
    )
    data = wait_ready(pair, "customers_sub")
    assert [(t["name"], t["state"]) for t in data["tables"]] == [("customers", "r")]
    assert data["subscription"]["source_user"] == "replicator"
    assert data["lag_bytes"] is not None
    listed = json.loads(cli(pair, "publication", "list", "--node", "node1", "--json").stdout)
    (pub,) = [p for p in listed["node1"] if p["name"] == "customers_pub"]
    assert [t["name"] for t in pub["tables"]] == ["customers"]
    subs = json.loads(cli(pair, "subscription", "list", "--json").stdout)
    assert [s["name"] for s in subs["node2"]] == ["customers_sub"]
    assert subs["node1"] == []
    # No password in the stored connection string: a passfile instead.
    (conninfo,) = rows(pair, "node2", "SELECT subconninfo FROM pg_subscription")[0]
    assert "password" not in conninfo
    assert "passfile=" in conninfo
    drop(pair, "customers_sub", "customers_pub")
    assert rows(pair, "node1", "SELECT count(*) FROM pg_replication_slots") == [(0,)]


def test_an_insert_only_set_replicates_inserts_but_not_updates_or_deletes(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE events (id int PRIMARY KEY, what text)")
    query(pair.config, "node1", "INSERT INTO events VALUES (1, 'first'), (2, 'second')")
    cli(
        pair,
        "publication",
        "create",
        "events_pub",
        "--node",
        "node1",
        "--tables",
        "events",
        "--preset",
        "insert-only",
    )
    subscribe(pair, "events_sub", "events_pub")
    wait_ready(pair, "events_sub")
    query(pair.config, "node1", "UPDATE events SET what = 'changed' WHERE id = 1")
    query(pair.config, "node1", "DELETE FROM events WHERE id = 2")
    query(pair.config, "node1", "INSERT INTO events VALUES (3, 'third')")
    wait_rows(
        pair,
        "node2",
        "SELECT id, what FROM events ORDER BY id",
        [(1, "first"), (2, "second"), (3, "third")],
    )
    listed = json.loads(cli(pair, "publication", "list", "--node", "node1", "--json").stdout)
    (pub,) = [p for p in listed["node1"] if p["name"] == "events_pub"]
    assert pub["publish"] == ["insert", "truncate"]
    drop(pair, "events_sub", "events_pub")


def test_a_row_filter_and_a_column_list_send_only_matching_rows_and_listed_columns(
    pair: Lab,
) -> None:
    on_both(pair, "CREATE TABLE orders (id int PRIMARY KEY, country text, amount int, secret text)")
    cli(
        pair,
        "publication",
        "create",
        "fr_orders",
        "--node",
        "node1",
        "--tables",
        "orders",
        "--row-filter",
        "orders:country = 'FR'",
        "--columns",
        "orders:id,country,amount",
    )
    subscribe(pair, "fr_orders_sub", "fr_orders")
    wait_ready(pair, "fr_orders_sub")
    query(
        pair.config,
        "node1",
        "INSERT INTO orders VALUES (1, 'FR', 10, 's1'), (2, 'DE', 20, 's2'), (3, 'FR', 30, 's3')",
    )
    wait_rows(
        pair,
        "node2",
        "SELECT * FROM orders ORDER BY id",
        [(1, "FR", 10, None), (3, "FR", 30, None)],
    )
    listed = json.loads(cli(pair, "publication", "list", "--node", "node1", "--json").stdout)
    (pub,) = [p for p in listed["node1"] if p["name"] == "fr_orders"]
    assert pub["tables"] == [
        {
            "schema_name": "public",
            "name": "orders",
            "row_filter": "(country = 'FR'::text)",
            "columns": ["id", "country", "amount"],
        }
    ]
    drop(pair, "fr_orders_sub", "fr_orders")


def test_sync_schema_creates_the_missing_table_then_data_flows(pair: Lab) -> None:
    query(
        pair.config,
        "node1",
        "CREATE SCHEMA shop; CREATE TABLE shop.products (id serial PRIMARY KEY, "
        "name text NOT NULL UNIQUE, price numeric(10,2) CHECK (price > 0))",
    )
    query(pair.config, "node1", "INSERT INTO shop.products (name, price) VALUES ('tea', 3.5)")
    cli(pair, "publication", "create", "shop_pub", "--node", "node1", "--tables", "shop.products")
    refused = cli(
        pair,
        "subscription",
        "create",
        "shop_sub",
        "--node",
        "node2",
        "--from",
        "node1",
        "--publication",
        "shop_pub",
        check=False,
    )
    assert refused.returncode == 1
    assert "lacks published tables: shop.products" in refused.stderr
    assert "--sync-schema" in refused.stderr
    assert rows(pair, "node2", "SELECT count(*) FROM pg_subscription") == [(0,)]
    subscribe(pair, "shop_sub", "shop_pub", "--sync-schema")
    wait_rows(pair, "node2", "SELECT name, price::text FROM shop.products", [("tea", "3.50")])
    query(pair.config, "node1", "INSERT INTO shop.products (name, price) VALUES ('jam', 4)")
    wait_rows(pair, "node2", "SELECT name FROM shop.products ORDER BY id", [("tea",), ("jam",)])
    # The definition came along: constraints and indexes, not just columns.
    checks = rows(
        pair,
        "node2",
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'shop.products'::regclass",
    )
    assert checks == [(3,)]
    drop(pair, "shop_sub", "shop_pub")


def test_ddl_adds_a_column_on_both_sides_while_replication_keeps_running(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    cli(pair, "publication", "create", "items_pub", "--node", "node1", "--tables", "items")
    subscribe(pair, "items_sub", "items_pub")
    wait_ready(pair, "items_sub")
    query(pair.config, "node1", "INSERT INTO items VALUES (1, 'before')")
    done = cli(pair, "ddl", "node1", "ALTER TABLE items ADD COLUMN note text")
    lines = done.stdout.splitlines()
    assert "node2 (subscriber): applied on node2" in lines[0]
    assert "node1 (publisher): applied on node1" in lines[1]
    assert "subscribers first" in done.stdout
    query(pair.config, "node1", "INSERT INTO items VALUES (2, 'after', 'with a note')")
    wait_rows(
        pair,
        "node2",
        "SELECT id, name, note FROM items ORDER BY id",
        [(1, "before", None), (2, "after", "with a note")],
    )
    data = sub_status(pair, "items_sub")
    assert data["health"] == "replicating"
    assert data["apply_error_count"] == 0
    # A statement that fails on the publisher's dry run changes nothing anywhere.
    failed = cli(pair, "ddl", "node1", "ALTER TABLE items ADD COLUMN note text", check=False)
    assert failed.returncode == 1
    assert 'column "note" of relation "items" already exists' in failed.stderr
    # A failure on a subscriber stops the roll-out there, before the publisher changes.
    query(pair.config, "node2", "ALTER TABLE items ADD COLUMN extra text")
    stopped = cli(pair, "ddl", "node1", "ALTER TABLE items ADD COLUMN extra int", check=False)
    assert stopped.returncode == 1
    assert "ddl stopped at node2" in stopped.stderr
    assert "applied on: nowhere; not run on: node1" in stopped.stderr
    assert rows(
        pair,
        "node1",
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'items' AND column_name = 'extra'",
    ) == [(0,)]
    drop(pair, "items_sub", "items_pub")


def test_a_duplicate_key_shows_in_status_with_a_hint_and_fixing_it_resumes(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE members (login text PRIMARY KEY, name text)")
    cli(pair, "publication", "create", "members_pub", "--node", "node1", "--tables", "members")
    subscribe(pair, "members_sub", "members_pub")
    wait_ready(pair, "members_sub")
    query(pair.config, "node2", "INSERT INTO members VALUES ('bob', 'local Bob')")
    query(pair.config, "node1", "INSERT INTO members VALUES ('bob', 'Bob from node1')")

    def failing() -> dict[str, Any]:
        data = sub_status(pair, "members_sub")
        return data if data["health"] == "error" else {}

    data = wait_until(failing, timeout=30, what="the apply error in status")
    error = data["last_error"]
    assert error["current"] is True
    assert error["message"].startswith("duplicate key value violates unique constraint")
    assert "(login) = (bob) already exists on the subscriber in public.members" in error["hint"]
    assert "SKIP (lsn = " in error["hint"]
    table = cli(pair, "subscription", "status", "members_sub", "--node", "node2", check=False)
    assert table.returncode == 3
    assert "hint:" in table.stdout
    query(pair.config, "node2", "DELETE FROM members WHERE login = 'bob'")
    wait_rows(pair, "node2", "SELECT name FROM members", [("Bob from node1",)])
    data = wait_until(
        lambda: (d := sub_status(pair, "members_sub"))["health"] == "replicating" and d,
        what="replication resumed",
    )
    assert data["last_error"]["current"] is False
    drop(pair, "members_sub", "members_pub")


def test_names_with_quotes_spaces_and_sql_are_quoted_safely(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE canary (id int)")
    on_both(
        pair,
        'CREATE SCHEMA "we ird"; CREATE TABLE "we ird"."na;me" (id int PRIMARY KEY, "Val" text)',
    )
    publication = 'p"; DROP TABLE canary; --'
    subscription = "S 'x'\"; DROP TABLE canary; --"
    cli(
        pair,
        "publication",
        "create",
        publication,
        "--node",
        "node1",
        "--tables",
        '"we ird"."na;me"',
        "--columns",
        '"we ird"."na;me":id,"Val"',
    )
    subscribe(pair, subscription, publication)
    query(pair.config, "node1", 'INSERT INTO "we ird"."na;me" VALUES (1, \'v\')')
    wait_rows(pair, "node2", 'SELECT id, "Val" FROM "we ird"."na;me"', [(1, "v")])
    assert rows(pair, "node1", "SELECT pubname FROM pg_publication") == [(publication,)]
    assert rows(pair, "node2", "SELECT subname FROM pg_subscription") == [(subscription,)]
    for node in ("node1", "node2"):
        assert rows(pair, node, "SELECT count(*) FROM canary") == [(0,)]
    wait_ready(pair, subscription)
    drop(pair, subscription, publication)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tables", "no_such_table"), "table public.no_such_table does not exist"),
        (("--tables", '"Canary"'), 'table public."Canary" does not exist'),
        (
            ("--tables", "canary", "--row-filter", "canary:true); DROP TABLE canary; --"),
            "holds a ')' without its '('",
        ),
        (
            ("--tables", "canary", "--row-filter", "canary:id > 0; DROP TABLE canary"),
            "holds a semicolon",
        ),
        (("--tables", "canary", "--publish", "insert,upsert"), "names upsert"),
        (("--tables", "canary x"), "is not a valid SQL name"),
    ],
)
def test_bad_publications_are_refused_and_change_nothing(
    pair: Lab, args: tuple[str, ...], message: str
) -> None:
    query(pair.config, "node1", "CREATE TABLE IF NOT EXISTS canary (id int)")
    done = cli(pair, "publication", "create", "bad", "--node", "node1", *args, check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, "one line"
    assert rows(pair, "node1", "SELECT count(*) FROM pg_publication WHERE pubname = 'bad'") == [
        (0,)
    ]
    assert rows(pair, "node1", "SELECT count(*) FROM canary") == [(0,)]


def test_bad_subscriptions_are_refused_and_change_nothing(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE IF NOT EXISTS canary (id int)")
    cli(pair, "publication", "create", "canary_pub", "--node", "node1", "--tables", "canary")
    cases = [
        (
            ("--from", "node1", "--publication", "canary_pub", "--origin", "none"),
            "origin = none (--origin none): needs PostgreSQL 16 or later; node2 runs PostgreSQL 15",
        ),
        (
            ("--from", "postgresql://replicator:secret@127.0.0.1/postgres", "--publication", "x"),
            "holds a password",
        ),
        (("--from", "node1", "--publication", "no_such_pub"), "no publication 'no_such_pub'"),
        (("--from", "node2", "--publication", "canary_pub"), "the subscribing node itself"),
    ]
    for args, message in cases:
        done = cli(pair, "subscription", "create", "bad", "--node", "node2", *args, check=False)
        assert done.returncode == 1, args
        assert message in done.stderr, done.stderr
    assert rows(pair, "node2", "SELECT count(*) FROM pg_subscription") == [(0,)]
    assert rows(pair, "node1", "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    cli(pair, "publication", "drop", "canary_pub", "--node", "node1")


def test_acting_needs_the_token_and_reading_does_not(pair: Lab) -> None:
    node = pair.config.node("node1")
    status, body = AgentClient(node).request(
        "POST", "/logical/publications", body={"name": "x", "all_tables": True}
    )
    assert status == 401
    assert rows(pair, "node1", "SELECT count(*) FROM pg_publication WHERE pubname = 'x'") == [(0,)]
    status, body = AgentClient(node).request("GET", "/logical/publications")
    assert status == 200
    assert isinstance(body, list)


def test_independent_clusters_are_healthy_in_cluster_show_and_doctor(pair: Lab) -> None:
    data = json.loads(cli(pair, "cluster", "show", "--json").stdout)
    assert data["topology"] == "independent"
    assert data["problems"] == []
    ids = {n["system_identifier"] for n in data["nodes"]}
    assert len(ids) == 2
    assert cli(pair, "doctor").returncode == 0


def test_sequences_sync_then_drop_when_the_publisher_is_gone(pair: Lab) -> None:
    on_both(pair, "CREATE TABLE tickets (id bigserial PRIMARY KEY, what text)")
    query(
        pair.config,
        "node1",
        "INSERT INTO tickets (what) SELECT 'ticket ' || g FROM generate_series(1, 50) g",
    )
    cli(pair, "publication", "create", "tickets_pub", "--node", "node1", "--tables", "tickets")
    subscribe(pair, "tickets_sub", "tickets_pub")
    wait_rows(pair, "node2", "SELECT count(*) FROM tickets", [(50,)])
    synced = json.loads(
        cli(
            pair,
            "subscription",
            "sync-sequences",
            "tickets_sub",
            "--node",
            "node2",
            "--margin",
            "100",
            "--json",
        ).stdout
    )
    (seq,) = [s for s in synced if s["name"] == "tickets_id_seq"]
    assert (seq["publisher_value"], seq["new_value"]) == (50, 150)
    assert rows(pair, "node2", "INSERT INTO tickets (what) VALUES ('here') RETURNING id") == [
        (151,)
    ]

    cli(pair, "node", "stop", "node1")
    try:
        refused = cli(pair, "subscription", "drop", "tickets_sub", "--node", "node2", check=False)
        assert refused.returncode == 1
        assert "cannot be reached" in refused.stderr
        assert "--local-only" in refused.stderr
        assert rows(pair, "node2", "SELECT count(*) FROM pg_subscription") == [(1,)]
        done = cli(pair, "subscription", "drop", "tickets_sub", "--node", "node2", "--local-only")
        assert "its slot 'tickets_sub' stays on the publisher" in done.stdout
        assert rows(pair, "node2", "SELECT count(*) FROM pg_subscription") == [(0,)]
    finally:
        cli(pair, "node", "start", "node1")
    query(pair.config, "node1", "SELECT pg_drop_replication_slot('tickets_sub')")
    cli(pair, "publication", "drop", "tickets_pub", "--node", "node1")
