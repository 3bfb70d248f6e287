"""Major-version upgrades by logical replication: the checks before, the phase during,
what blocks the cut-over. Pure.

The new cluster (any newer major version) gets the old one's schema, a subscription to
a FOR ALL TABLES publication, catches up, gets the sequences, and takes over once the old
side stopped writing and the new side has everything. Unlike pg_upgrade, the old
cluster stays untouched and running until the cut-over, which lasts seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pgherd.model.publication import TableFacts, version_text
from pgherd.model.status import Frozen, NodeStatus, PgState, Role
from pgherd.model.subscription import Health, SubscriptionStatus

NAME = "pgherd_upgrade"  # the publication and the subscription an upgrade creates


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class Check(Frozen):
    level: Level
    text: str
    fix: str = ""


class UpgradePlan(Frozen):
    source: str
    target: str
    source_version: str | None
    target_version: str | None
    checks: tuple[Check, ...]
    steps: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(c.level is Level.ERROR for c in self.checks)


def _running_primary(status: NodeStatus, what: str) -> list[Check]:
    if status.state is not PgState.RUNNING:
        return [
            Check(
                level=Level.ERROR,
                text=f"{what} {status.name} is {status.state}",
                fix=f"start it: pgherd node start {status.name}",
            )
        ]
    if status.role is not Role.PRIMARY:
        return [
            Check(
                level=Level.ERROR,
                text=f"{what} {status.name} is a {status.role}",
                fix="logical replication needs primaries on both sides",
            )
        ]
    return []


def checks(
    source: NodeStatus,
    target: NodeStatus,
    source_tables: Sequence[TableFacts],
    target_tables: Sequence[TableFacts],
) -> list[Check]:
    found = _running_primary(source, "source") + _running_primary(target, "target")
    if found:
        return found
    sv, tv = source.version_num or 0, target.version_num or 0
    if tv // 10000 < sv // 10000:
        found.append(
            Check(
                level=Level.ERROR,
                text=f"target runs PostgreSQL {version_text(tv)}, older than the source's "
                f"{version_text(sv)}",
                fix="upgrade into a newer major version",
            )
        )
    elif tv // 10000 == sv // 10000:
        found.append(
            Check(
                level=Level.WARNING,
                text=f"both run PostgreSQL {sv // 10000}: this moves the data, it upgrades nothing",
                fix="use a target of a newer major version (--pg-bin) for an upgrade",
            )
        )
    else:
        found.append(
            Check(level=Level.OK, text=f"PostgreSQL {version_text(sv)} → {version_text(tv)}")
        )
    if target_tables:
        found.append(
            Check(
                level=Level.ERROR,
                text=f"the target database already holds {len(target_tables)} tables",
                fix="upgrade into an empty database (a new cluster)",
            )
        )
    else:
        found.append(Check(level=Level.OK, text="the target database is empty"))
    no_identity = [
        t
        for t in source_tables
        if t.replica_identity == "n"
        or (t.replica_identity == "d" and not t.has_primary_key)
        or (t.replica_identity == "i" and not t.has_identity_index)
    ]
    if no_identity:
        names = ", ".join(f"{t.schema_name}.{t.name}" for t in no_identity[:5])
        found.append(
            Check(
                level=Level.WARNING,
                text=f"{len(no_identity)} tables have no primary key or replica identity "
                f"({names}): UPDATE and DELETE on them fail on the source while published",
                fix="add primary keys, or ALTER TABLE … REPLICA IDENTITY FULL, before start",
            )
        )
    rows = sum(t.rows_estimate for t in source_tables)
    found.append(
        Check(level=Level.OK, text=f"{len(source_tables)} tables, about {rows} rows to copy")
    )
    found.append(
        Check(
            level=Level.WARNING,
            text="not carried by logical replication: large objects, DDL after the start, "
            "roles and grants (global objects)",
            fix="make no schema changes until the cut-over (or use pgherd ddl); create roles "
            "on the target (pg_dumpall --roles-only)",
        )
    )
    return found


def steps(source: str, target: str) -> tuple[str, ...]:
    return (
        f"start: publication {NAME} FOR ALL TABLES on {source}; the schema copied to {target} "
        "(pg_dump --schema-only by the target's newer pg_dump); subscription "
        f"{NAME} on {target}, which copies every table",
        "status: wait until every table is ready and the lag is small",
        f"cutover: {source} becomes read-only, the lag drains to zero, sequences are moved "
        f"past {source}'s values, the subscription is dropped; point clients at {target}",
    )


class Phase(StrEnum):
    NOT_STARTED = "not started"
    COPYING = "copying"
    CATCHING_UP = "catching up"
    READY = "ready for cut-over"
    ERROR = "error"
    DISABLED = "disabled"


def phase(status: SubscriptionStatus | None) -> Phase:
    if status is None:
        return Phase.NOT_STARTED
    if status.health is Health.ERROR:
        return Phase.ERROR
    if status.health is Health.DISABLED:
        return Phase.DISABLED
    if any(t.state != "r" for t in status.tables):
        return Phase.COPYING
    if status.lag_bytes is None or status.lag_bytes > 16 * 1024 * 1024:
        return Phase.CATCHING_UP
    return Phase.READY


def cutover_blockers(status: SubscriptionStatus) -> list[str]:
    found = []
    if status.health is Health.DISABLED:
        found.append("the subscription is disabled")
    if status.last_error is not None and status.last_error.current:
        found.append(f"the subscription fails: {status.last_error.message}")
    waiting = [t.name for t in status.tables if t.state != "r"]
    if waiting:
        found.append(f"{len(waiting)} tables are still copying ({', '.join(waiting[:5])})")
    if status.publisher_note:
        found.append(status.publisher_note)
    return found
