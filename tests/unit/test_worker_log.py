"""A subscription's last error from the server log, and whether it still stands."""

# ruff: noqa: E501 - log lines are as long as PostgreSQL writes them

from __future__ import annotations

from datetime import UTC, datetime

from pgherd.model import worker_log
from pgherd.model.lsn import Lsn
from pgherd.model.subscription import TableSync, slot_name_for

LOG = """\
2026-01-02 10:00:00.100 UTC [100] LOG:  logical replication apply worker for subscription "custsub" has started
2026-01-02 10:00:00.200 UTC [101] LOG:  logical replication table synchronization worker for subscription "other", table "orders" has started
2026-01-02 10:00:01.000 UTC [100] ERROR:  duplicate key value violates unique constraint "customers_pkey"
2026-01-02 10:00:01.000 UTC [100] DETAIL:  Key (login)=(bob) already exists.
2026-01-02 10:00:01.000 UTC [100] CONTEXT:  processing remote data for replication origin "pg_16400" during message type "INSERT" for replication target relation "public.customers" in transaction 740, finished at 0/1A3B2C8
2026-01-02 10:00:01.100 UTC [7] LOG:  background worker "logical replication worker" (PID 100) exited with exit code 1
2026-01-02 10:00:01.300 UTC [101] ERROR:  permission denied for table orders
2026-01-02 10:00:02.000 UTC [55] postgres@postgres ERROR:  syntax error at or near "x"
"""


def test_errors_are_attributed_to_their_subscription() -> None:
    errors = worker_log.parse(LOG.splitlines())
    assert [(e.subscription, e.message.split()[0]) for e in errors] == [
        ("custsub", "duplicate"),
        ("other", "permission"),
    ]
    dup = errors[0]
    assert dup.detail == "Key (login)=(bob) already exists."
    assert dup.finish_lsn == Lsn.parse("0/1A3B2C8")
    assert dup.relation == "public.customers"
    assert errors[1].relation == "orders"


def test_a_duplicate_key_stands_until_the_origin_passes_it() -> None:
    errors = worker_log.parse(LOG.splitlines())
    before = worker_log.last_error("custsub", errors, Lsn.parse("0/1A3B000"), (), None, True)
    assert before is not None
    assert before.current
    assert "(login) = (bob) already exists on the subscriber in public.customers" in before.hint
    assert "SKIP (lsn = '0/1A3B2C8')" in before.hint
    after = worker_log.last_error("custsub", errors, Lsn.parse("0/1A3B300"), (), None, True)
    assert after is not None
    assert not after.current


def test_skip_is_not_offered_where_it_does_not_exist() -> None:
    errors = worker_log.parse(LOG.splitlines())
    found = worker_log.last_error("custsub", errors, None, (), None, False)
    assert found is not None
    assert "SKIP" not in found.hint


def test_a_sync_error_stands_while_its_table_is_not_ready() -> None:
    errors = worker_log.parse(LOG.splitlines())
    copying = [TableSync(schema_name="public", name="orders", state="d")]
    ready = [TableSync(schema_name="public", name="orders", state="r")]
    err = worker_log.last_error("other", errors, None, copying, None, True)
    assert err is not None
    assert err.current
    assert "SELECT on the published tables" in err.hint
    err = worker_log.last_error("other", errors, None, ready, None, True)
    assert err is not None
    assert not err.current


def test_a_connection_error_is_over_once_messages_arrive_again() -> None:
    lines = [
        '2026-01-02 10:00:00.100 UTC [9] LOG:  logical replication apply worker for subscription "s" has started',
        "2026-01-02 10:00:00.200 UTC [9] ERROR:  could not connect to the publisher: connection refused",
    ]
    errors = worker_log.parse(lines)
    early = datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC)
    late = datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)
    err = worker_log.last_error("s", errors, None, (), early, True)
    assert err is not None
    assert err.current
    assert "publisher up" in err.hint
    err = worker_log.last_error("s", errors, None, (), late, True)
    assert err is not None
    assert not err.current


def test_no_error_for_a_subscription_the_log_does_not_mention() -> None:
    assert (
        worker_log.last_error("nope", worker_log.parse(LOG.splitlines()), None, (), None, True)
        is None
    )


def test_slot_names_are_valid_and_distinct() -> None:
    assert slot_name_for("custsub") == "custsub"
    odd = slot_name_for('Sales "EU"; drop')
    assert odd.startswith("sales_eu_drop_")
    assert len(odd) <= 63
    assert slot_name_for("A") != slot_name_for("a ")
    assert all(c.isalnum() or c == "_" for c in slot_name_for("ü" * 70))
