"""SQL for replication operations on one server: slots, origins, promotion, replay,
checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from pgherd.errors import QueryFailed, Refused, TimedOut
from pgherd.model.lsn import Lsn

Conn = psycopg.Connection[Any]


def _one(conn: Conn, query: str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def in_recovery(conn: Conn) -> bool:
    return bool(_one(conn, "SELECT pg_is_in_recovery()"))


def create_physical_slot(conn: Conn, name: str) -> bool:
    """Create a physical slot that reserves WAL at once; False if it already exists."""
    exists = conn.execute(
        "SELECT slot_type FROM pg_replication_slots WHERE slot_name = %s", (name,)
    ).fetchone()
    if exists is not None:
        if exists[0] != "physical":
            raise Refused(f"a {exists[0]} slot named {name!r} exists", "drop it or rename the node")
        return False
    try:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    except psycopg.errors.DuplicateObject:
        return False
    return True


def create_logical_slot(conn: Conn, name: str, plugin: str = "pgoutput") -> bool:
    """Create a logical slot for ``plugin`` unless a slot of that name exists; True when
    it was created here."""
    made = conn.execute(
        "SELECT pg_create_logical_replication_slot(%s, %s) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        (name, plugin, name),
    ).fetchone()
    return made is not None


def copy_logical_slot(conn: Conn, source: str, name: str) -> bool:
    """Create slot ``name`` as a copy of logical slot ``source`` (the same position and
    catalog horizon: it keeps what ``source`` keeps) unless a slot of that name exists;
    True when it was created here."""
    made = conn.execute(
        "SELECT pg_copy_logical_replication_slot(%s, %s) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        (source, name, name),
    ).fetchone()
    return made is not None


def advance_slot(conn: Conn, name: str, lsn: Lsn) -> None:
    """Move slot ``name`` forward to ``lsn`` (``pg_replication_slot_advance``; a logical
    slot must be advanced from a connection to its own database, and works on a standby
    too: PostgreSQL 11+)."""
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (name, str(lsn)))


def create_origin(conn: Conn, name: str) -> bool:
    """Create a replication origin unless it exists; True when it was created here."""
    made = conn.execute(
        "SELECT pg_replication_origin_create(%s) WHERE pg_replication_origin_oid(%s) IS NULL",
        (name, name),
    ).fetchone()
    return made is not None


def drop_slot_now(conn: Conn, name: str) -> None:
    """Drop slot ``name`` if it exists; psycopg.errors.ObjectInUse while a walsender uses
    it (the caller may wait for its consumer to stop, as a mesh drop does)."""
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        (name,),
    )


def drop_origin(conn: Conn, name: str) -> None:
    """Drop origin ``name`` if it exists; psycopg.errors.ObjectInUse while a session has
    it set up."""
    conn.execute(
        "SELECT pg_replication_origin_drop(%s) WHERE pg_replication_origin_oid(%s) IS NOT NULL",
        (name, name),
    )


def drop_slot(conn: Conn, name: str) -> bool:
    """Drop an inactive slot; False if there is none. An active slot is refused."""
    row = conn.execute(
        "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = %s", (name,)
    ).fetchone()
    if row is None:
        return False
    if row[0]:
        raise Refused(
            f"slot {name!r} is in use (by process {row[1]})",
            "stop or re-point the standby that streams through it first",
        )
    try:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    except psycopg.errors.UndefinedObject:
        return False
    except psycopg.errors.ObjectInUse as exc:
        raise Refused(f"slot {name!r} is in use: {exc}") from None
    return True


def request_promotion(conn: Conn) -> None:
    """Ask the startup process to end recovery (``pg_promote`` without its 100 ms polling:
    the caller polls more often, which shortens a switchover's pause)."""
    if not _one(conn, "SELECT pg_promote(false)"):
        raise QueryFailed("pg_promote() did not signal the promotion", "see the server log")


def wait_promoted(
    conn: Conn,
    timeout: float,
    interval: float = 0.01,
    while_waiting: Callable[[], None] | None = None,
) -> None:
    """Until the server left recovery; ``while_waiting`` is called at every poll (it may
    raise to give up waiting)."""
    deadline = time.monotonic() + timeout
    while in_recovery(conn):
        if while_waiting is not None:
            while_waiting()
        if time.monotonic() > deadline:
            raise TimedOut(
                f"the server was still in recovery {timeout:.0f} s after the promotion request",
                "see its postgresql.log",
            )
        time.sleep(interval)


def current_lsn(conn: Conn) -> Lsn:
    return Lsn.parse(_one(conn, "SELECT pg_current_wal_lsn()::text"))


def checkpoint(conn: Conn) -> Lsn | None:
    """CHECKPOINT (a restartpoint on a standby); the redo position it recorded."""
    conn.execute("CHECKPOINT")
    return Lsn.parse_optional(_one(conn, "SELECT redo_lsn::text FROM pg_control_checkpoint()"))


def replay_positions(conn: Conn) -> tuple[Lsn | None, Lsn | None]:
    """(replayed, received) on a standby."""
    row = conn.execute(
        "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text"
    ).fetchone()
    assert row is not None
    return Lsn.parse_optional(row[0]), Lsn.parse_optional(row[1])


def wait_replayed_past(
    conn: Conn, target: Lsn, timeout: float, interval: float = 0.01
) -> tuple[bool, Lsn | None, Lsn | None]:
    """Poll until the replay position is strictly past ``target`` (the start of a record
    that must be replayed); returns (reached, replayed, received)."""
    deadline = time.monotonic() + timeout
    while True:
        replayed, received = replay_positions(conn)
        if replayed is not None and replayed > target:
            return True, replayed, received
        if time.monotonic() >= deadline:
            return False, replayed, received
        time.sleep(interval)


def reload(conn: Conn) -> None:
    conn.execute("SELECT pg_reload_conf()")


def replay_timeline(conninfo: str) -> int:
    """The timeline a standby's startup process is replaying, asked over a replication
    connection (``IDENTIFY_SYSTEM``: a cascading walsender answers with the replay
    timeline). SQL has no function for it; it settles whether a standby that is not
    streaming took a timeline switch, without shutting it down (as repmgr asks too)."""
    try:
        with psycopg.connect(conninfo, replication="true", autocommit=True) as conn:
            row = conn.execute("IDENTIFY_SYSTEM").fetchone()
    except psycopg.Error as exc:
        raise QueryFailed(f"IDENTIFY_SYSTEM failed: {str(exc).strip()}") from None
    if row is None:
        raise QueryFailed("IDENTIFY_SYSTEM returned no row")
    return int(row[1])
