"""Subscriptions on this node: create, list, status, enable, disable, refresh, drop.

Run inside the subscriber's agent. The subscription's apply worker is a process of the
subscriber's PostgreSQL, so it runs as the OS user ``postgres``: the passfile its
connection string names must belong to that user (libpq ignores a passfile others can
read), which is checked before anything is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgherd.errors import InvalidInput, QueryFailed, Refused
from pgherd.logical import schema as schema_sync
from pgherd.logical.publication import execute
from pgherd.model import subscription as model
from pgherd.model import worker_log
from pgherd.model.lsn import Lsn
from pgherd.model.publication import PG15, PG16
from pgherd.model.subscription import (
    SubscriptionInfo,
    SubscriptionSpec,
    SubscriptionStatus,
    TableSync,
)
from pgherd.pg import osuser, remote
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]
LOG_TAIL_BYTES = 2 * 1024 * 1024


def check_passfile(local: LocalNode, conninfo: str) -> None:
    """The passfile must be readable by the OS user the apply worker runs as."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    if params.get("password"):
        raise InvalidInput(
            "the connection string holds a password, which would be stored in clear text",
            "use a passfile instead",
        )
    passfile = params.get("passfile")
    if not passfile:
        raise InvalidInput(
            "the connection string names no passfile", "add passfile=PATH (mode 0600)"
        )
    path = Path(str(passfile))
    user = local.user
    try:
        st = path.stat()
    except OSError:
        raise InvalidInput(
            f"the passfile {path} does not exist on {local.node.name}",
            f"create it there (host:port:db:user:password, mode 0600, owned by {user.name})",
        ) from None
    osuser.require_reachable(path.parent, user)
    if st.st_uid != user.uid or st.st_mode & 0o077:
        raise InvalidInput(
            f"the passfile {path} must be owned by {user.name} with mode 0600 (the "
            "subscription's worker runs as that user, and libpq ignores a passfile that "
            "others can read)",
            f"chown {user.name} {path} && chmod 0600 {path}",
        )


def _exists(conn: Conn, name: str, dbname: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
        "WHERE s.subname = %s AND d.datname = %s",
        (name, dbname),
    ).fetchone()
    return row is not None


def create(local: LocalNode, spec: SubscriptionSpec) -> SubscriptionInfo:
    node = local.node.name
    where = f"in database {spec.dbname!r} on {node}"
    check_passfile(local, spec.conninfo)
    with local.instance.connect(spec.dbname) as conn:
        model.check_spec(spec, conn.info.server_version, node)
        if _exists(conn, spec.name, spec.dbname):
            raise Refused(
                f"subscription {spec.name!r} already exists {where}",
                "drop it first, or choose another name",
            )
        with remote.connect(spec.conninfo) as pub:
            found = {
                r[0]
                for r in pub.execute(
                    "SELECT pubname FROM pg_publication WHERE pubname = ANY(%s)",
                    (list(spec.publications),),
                )
            }
            missing = [p for p in spec.publications if p not in found]
            if missing:
                raise InvalidInput(
                    f"no publication {', '.join(map(repr, missing))} on the publisher",
                    "create it with `pgherd publication create`, or check --publication",
                )
            published = schema_sync.published_tables(pub, spec.publications)
        absent = schema_sync.missing_tables(conn, published)
        if absent and spec.sync_schema == "none":
            raise Refused(
                f"the subscriber lacks published tables: {', '.join(map(str, absent[:5]))}"
                + (" …" if len(absent) > 5 else ""),
                "create them first, or pass --sync-schema to copy their definitions",
            )
        if spec.sync_schema != "none":
            schema_sync.sync(
                local, conn, spec.conninfo, absent, whole=spec.sync_schema == "database"
            )
        execute(conn, create_statement(spec, conn.info.server_version))
        return describe(conn, spec.name, spec.dbname)


def create_statement(spec: SubscriptionSpec, version_num: int = PG16) -> sql.Composed:
    options: list[sql.Composable] = [
        sql.SQL("copy_data = {}").format(sql.Literal(spec.copy_data)),
        sql.SQL("enabled = {}").format(sql.Literal(spec.enabled)),
        sql.SQL("slot_name = {}").format(
            sql.Literal(spec.slot_name or model.slot_name_for(spec.name))
        ),
    ]
    origin = model.origin_option(spec, version_num)
    if origin is not None:
        options.append(sql.SQL("origin = {}").format(sql.Literal(origin)))
    return sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(spec.name),
        sql.Literal(spec.conninfo),
        sql.SQL(", ").join(map(sql.Identifier, spec.publications)),
        sql.SQL(", ").join(options),
    )


_LIST = """
SELECT s.oid, s.subname, d.datname, r.rolname AS owner, s.subenabled, s.subpublications,
       s.subslotname, s.subconninfo, {origin} AS origin,
       (SELECT st.pid FROM pg_stat_subscription st
         WHERE st.subid = s.oid AND st.relid IS NULL LIMIT 1) AS worker_pid
FROM pg_subscription s
JOIN pg_database d ON d.oid = s.subdbid
JOIN pg_roles r ON r.oid = s.subowner
"""


def _list_sql(conn: Conn) -> str:
    """The listing query: ``suborigin`` is there from PostgreSQL 16 (before, "any")."""
    origin = "s.suborigin" if conn.info.server_version >= PG16 else "'any'::text"
    return _LIST.format(origin=origin)


def _info(row: dict[str, Any]) -> SubscriptionInfo:
    shown = remote.describe(row["subconninfo"])
    return SubscriptionInfo(
        name=row["subname"],
        dbname=row["datname"],
        owner=row["owner"],
        enabled=row["subenabled"],
        publications=tuple(row["subpublications"]),
        slot_name=row["subslotname"],
        host=shown.get("host"),
        port=int(shown["port"]) if shown.get("port", "").isdigit() else None,
        source_user=shown.get("user"),
        source_dbname=shown.get("dbname"),
        worker_pid=row["worker_pid"],
        origin="none" if row.get("origin") == "none" else "any",
    )


def list_all(local: LocalNode) -> list[SubscriptionInfo]:
    with local.instance.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_list_sql(conn) + " ORDER BY d.datname, s.subname")
        return [_info(row) for row in cur.fetchall()]


def _row(conn: Conn, name: str, dbname: str | None) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            _list_sql(conn) + " WHERE s.subname = %s AND (%s::text IS NULL OR d.datname = %s)",
            (name, dbname, dbname),
        )
        rows = cur.fetchall()
    if not rows:
        raise InvalidInput(
            f"no subscription {name!r}" + (f" in database {dbname!r}" if dbname else ""),
            "see `pgherd subscription list`",
        )
    if len(rows) > 1:
        raise InvalidInput(
            f"subscriptions named {name!r} exist in several databases", "pass --dbname"
        )
    return rows[0]


def describe(conn: Conn, name: str, dbname: str | None = None) -> SubscriptionInfo:
    return _info(_row(conn, name, dbname))


def lookup(local: LocalNode, name: str, dbname: str | None) -> dict[str, Any]:
    with local.instance.connect() as conn:
        return _row(conn, name, dbname)


def _alter(
    local: LocalNode, name: str, dbname: str | None, action: sql.Composable
) -> SubscriptionInfo:
    row = lookup(local, name, dbname)
    with local.instance.connect(row["datname"]) as conn:
        execute(conn, sql.SQL("ALTER SUBSCRIPTION {} ").format(sql.Identifier(name)) + action)
        return describe(conn, name, row["datname"])


def enable(local: LocalNode, name: str, dbname: str | None = None) -> SubscriptionInfo:
    return _alter(local, name, dbname, sql.SQL("ENABLE"))


def disable(local: LocalNode, name: str, dbname: str | None = None) -> SubscriptionInfo:
    return _alter(local, name, dbname, sql.SQL("DISABLE"))


def refresh(local: LocalNode, name: str, dbname: str | None = None) -> SubscriptionInfo:
    """Pick up tables added to the publications (their data is copied)."""
    return _alter(local, name, dbname, sql.SQL("REFRESH PUBLICATION"))


def drop(local: LocalNode, name: str, dbname: str | None, local_only: bool) -> str:
    """Drop the subscription and its slot on the publisher; with ``local_only`` leave the
    slot (for a publisher that is gone). Returns a sentence for the report."""
    row = lookup(local, name, dbname)
    sub = sql.Identifier(name)
    slot = row["subslotname"]
    with local.instance.connect(row["datname"]) as conn:
        if local_only:
            if row["subenabled"]:
                execute(conn, sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sub))
            execute(conn, sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(sub))
            execute(conn, sql.SQL("DROP SUBSCRIPTION {}").format(sub))
            return (
                f"dropped subscription {name!r} here only; its slot {slot!r} stays on the "
                f"publisher: drop it there with SELECT pg_drop_replication_slot('{slot}')"
            )
        try:
            execute(conn, sql.SQL("DROP SUBSCRIPTION {}").format(sub))
        except QueryFailed as exc:
            if "could not connect to" in exc.message or "connection to server" in exc.message:
                raise Refused(
                    f"the publisher of subscription {name!r} cannot be reached, so its "
                    f"replication slot {slot!r} cannot be dropped: {exc.message}",
                    f"drop the subscription here only with --local-only (then drop the slot "
                    f"{slot!r} on the publisher if it comes back)",
                ) from None
            raise
    return f"dropped subscription {name!r} and its slot {slot!r} on the publisher"


# ---- status ----------------------------------------------------------------------------


def status(local: LocalNode, name: str, dbname: str | None = None) -> SubscriptionStatus:
    row = lookup(local, name, dbname)
    info = _info(row)
    with local.instance.connect(row["datname"]) as conn, conn.cursor(row_factory=dict_row) as cur:
        version = conn.info.server_version
        cur.execute(
            "SELECT n.nspname, c.relname, sr.srsubstate, sr.srsublsn::text AS lsn "
            "FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE sr.srsubid = %s ORDER BY 1, 2",
            (row["oid"],),
        )
        tables = tuple(
            TableSync(
                schema_name=r["nspname"], name=r["relname"], state=r["srsubstate"], lsn=r["lsn"]
            )
            for r in cur.fetchall()
        )
        cur.execute(
            "SELECT received_lsn::text, latest_end_lsn::text, last_msg_receipt_time "
            "FROM pg_stat_subscription WHERE subid = %s AND relid IS NULL",
            (row["oid"],),
        )
        worker = cur.fetchone() or {}
        counts: dict[str, Any] = {}
        if version >= PG15:
            cur.execute(
                "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
                "WHERE subid = %s",
                (row["oid"],),
            )
            counts = cur.fetchone() or {}
        cur.execute(
            "SELECT remote_lsn::text FROM pg_replication_origin_status WHERE external_id = %s",
            (f"pg_{row['oid']}",),
        )
        origin = cur.fetchone()
    origin_lsn = Lsn.parse_optional(origin["remote_lsn"]) if origin else None
    receipt = worker.get("last_msg_receipt_time")
    errors = worker_log.parse(_log_tail(local.node.server_log))
    last_error = worker_log.last_error(
        name, errors, origin_lsn, tables, receipt, model.needs_skip_support(version)
    )
    publisher = publisher_lag(row["subconninfo"], row["subslotname"])
    return SubscriptionStatus(
        subscription=info,
        health=model.health(info.enabled, info.worker_pid, tables, last_error),
        tables=tables,
        received_lsn=worker.get("received_lsn"),
        latest_end_lsn=worker.get("latest_end_lsn"),
        last_msg_receipt_time=receipt,
        origin_lsn=origin_lsn,
        lag_bytes=publisher.lag_bytes,
        lag_seconds=publisher.lag_seconds,
        confirmed_lsn=publisher.confirmed_lsn,
        publisher_note=publisher.note,
        apply_error_count=counts.get("apply_error_count"),
        sync_error_count=counts.get("sync_error_count"),
        last_error=last_error,
    )


@dataclass(frozen=True)
class PublisherView:
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    confirmed_lsn: Lsn | None = None
    note: str | None = None


def publisher_lag(conninfo: str, slot: str | None) -> PublisherView:
    """The publisher's view of the subscription's slot, through the subscription's own
    connection: WAL bytes not yet confirmed, the replay lag it measures, the confirmed
    position."""
    if slot is None:
        return PublisherView(note="the subscription has no slot")
    try:
        with remote.connect(conninfo) as pub:
            row = pub.execute(
                """
                SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
                       extract(epoch FROM r.replay_lag)::float8,
                       s.confirmed_flush_lsn::text
                FROM pg_replication_slots s
                LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
                WHERE s.slot_name = %s
                """,
                (slot,),
            ).fetchone()
    except Refused as exc:
        return PublisherView(note=f"publisher not reachable: {exc.message}")
    except psycopg.Error as exc:
        return PublisherView(note=f"cannot read the slot on the publisher: {exc}")
    if row is None:
        return PublisherView(note=f"slot {slot!r} does not exist on the publisher")
    lag_bytes = max(int(row[0]), 0) if row[0] is not None else None
    lag_seconds = float(row[1]) if row[1] is not None else (0.0 if lag_bytes == 0 else None)
    return PublisherView(lag_bytes, lag_seconds, Lsn.parse_optional(row[2]))


def _log_tail(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - LOG_TAIL_BYTES, 0))
            data = handle.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()
