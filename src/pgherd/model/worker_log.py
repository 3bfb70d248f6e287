"""The last error of a subscription's workers, read from the subscriber's server log. Pure.

PostgreSQL keeps only error counts (pg_stat_subscription_stats); the message is in the
log. Workers announce themselves ("logical replication apply worker for subscription
"s" has started") with their PID in the line prefix (``[%p]``, pgherd's
``log_line_prefix``), so an ERROR from that PID belongs to that subscription. An apply
error's CONTEXT names the remote transaction's commit LSN ("finished at 0/1A2B3C"): once
the subscription's replication origin has gone past it, the error has been fixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pgherd.model.lsn import Lsn
from pgherd.model.names import quote_ident
from pgherd.model.subscription import LastError, TableSync

_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Za-z0-9+:/_-]+)?) "
    r"\[(?P<pid>\d+)\] (?:\S*@\S* )?"
    r"(?P<level>LOG|ERROR|FATAL|PANIC|WARNING|DETAIL|CONTEXT|HINT|STATEMENT):  (?P<text>.*)$"
)
_APPLY_START = re.compile(
    r'^logical replication (?:parallel )?apply worker for subscription "(?P<sub>.*)" has started$'
)
_SYNC_START = re.compile(
    r"^logical replication table synchronization worker for subscription "
    r'"(?P<sub>.*)", table "(?P<table>.*)" has started$'
)
_FINISHED_AT = re.compile(r"finished at ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})")
_RELATION = re.compile(r'replication target relation "([^"]+)"')
_KEY = re.compile(r"Key \((?P<cols>.*)\)=\((?P<vals>.*)\) already exists")


@dataclass
class WorkerError:
    time: str
    pid: int
    subscription: str
    table: str | None  # for a table synchronization worker
    level: str
    message: str
    detail: str | None = None
    context: str | None = None
    hint: str | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def finish_lsn(self) -> Lsn | None:
        match = _FINISHED_AT.search(self.context or "")
        return Lsn.parse(match.group(1)) if match else None

    @property
    def relation(self) -> str | None:
        match = _RELATION.search(self.context or "")
        if match:
            return match.group(1)
        return self.table


def parse(lines: Iterable[str]) -> list[WorkerError]:
    """Errors of logical replication workers, oldest first, each with its subscription."""
    workers: dict[int, tuple[str, str | None]] = {}
    errors: list[WorkerError] = []
    current: WorkerError | None = None
    for raw in lines:
        match = _LINE.match(raw.rstrip("\n"))
        if match is None:
            continue
        pid, level, text = int(match["pid"]), match["level"], match["text"]
        if level == "LOG":
            started = _APPLY_START.match(text) or _SYNC_START.match(text)
            if started:
                table = started.groupdict().get("table")
                workers[pid] = (started["sub"], table)
            current = None
            continue
        if level in ("ERROR", "FATAL", "PANIC"):
            current = None
            if pid in workers:
                sub, table = workers[pid]
                current = WorkerError(match["time"], pid, sub, table, level, text)
                errors.append(current)
            continue
        if current is not None and current.pid == pid:
            if level == "DETAIL":
                current.detail = text
            elif level == "CONTEXT":
                current.context = text
            elif level == "HINT":
                current.hint = text
    return errors


def log_time(text: str | None) -> datetime | None:
    """A log line's time, when its zone is UTC (pgherd's nodes log in UTC by default)."""
    if not text:
        return None
    stamp, _, zone = text.rpartition(" ")
    if zone not in ("UTC", "GMT", "Etc/UTC"):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def last_error(
    subscription: str,
    errors: Sequence[WorkerError],
    origin_lsn: Lsn | None,
    tables: Sequence[TableSync],
    last_receipt: datetime | None,
    skip_supported: bool,
) -> LastError | None:
    """The subscription's most recent worker error, and whether it still stands."""
    mine = [e for e in errors if e.subscription == subscription]
    if not mine:
        return None
    err = mine[-1]
    finish = err.finish_lsn
    if finish is not None:
        current = origin_lsn is None or origin_lsn < finish
    elif err.table is not None:
        current = any(t.name == err.table and t.state not in ("r", "s") for t in tables)
    else:
        when = log_time(err.time)
        current = not (when is not None and last_receipt is not None and last_receipt > when)
    return LastError(
        time=err.time,
        message=err.message,
        detail=err.detail,
        context=err.context,
        relation=err.relation,
        finish_lsn=finish,
        current=current,
        hint=hint_for(err, subscription, skip_supported),
    )


def hint_for(err: WorkerError, subscription: str, skip_supported: bool) -> str:
    """What to do about a worker's error, in the operator's words."""
    msg = err.message
    sub = quote_ident(subscription)
    where = f" in {err.relation}" if err.relation else ""
    skip = ""
    if err.finish_lsn is not None and skip_supported:
        skip = (
            f"; or skip the whole remote transaction: ALTER SUBSCRIPTION {sub} "
            f"SKIP (lsn = '{err.finish_lsn}')"
        )
    if msg.startswith("duplicate key value violates unique constraint"):
        key = _KEY.search(err.detail or "")
        row = f"the row with ({key['cols']}) = ({key['vals']})" if key else "the conflicting row"
        return (
            f"{row} already exists on the subscriber{where}: delete or change it there "
            f"and replication resumes by itself{skip}"
        )
    if "does not exist" in msg and ("relation" in msg or "target relation" in msg):
        return (
            "create the table on the subscriber (pgherd ddl, or subscription create "
            f"--sync-schema), then ALTER SUBSCRIPTION {sub} REFRESH PUBLICATION"
        )
    if "missing replicated column" in msg or "missing some replicated column" in msg:
        return (
            "add the missing columns on the subscriber; `pgherd ddl PUBLISHER SQL` changes "
            "publisher and subscribers in an order that keeps replication running"
        )
    if msg.startswith("could not connect to the publisher") or "connection to server" in msg:
        return (
            "is the publisher up and reachable? check its pg_hba.conf, the replication "
            "role's password in the passfile (readable by the subscriber's OS user), and "
            "that the role may LOGIN"
        )
    if msg.startswith("permission denied"):
        return (
            "grant the replication role SELECT on the published tables on the publisher "
            "(pgherd publication create/alter does it for tables it publishes)"
        )
    if "replication slot" in msg and "does not exist" in msg:
        return (
            f"the publisher lost the slot: recreate it there, or drop and recreate the "
            f"subscription {sub}"
        )
    if "violates" in msg and "constraint" in msg:
        return f"fix the row on the subscriber{where} so it satisfies the constraint{skip}"
    return f"see the subscriber's postgresql.log around {err.time}{skip}"
