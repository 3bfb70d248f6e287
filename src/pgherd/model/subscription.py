"""Subscriptions: requests, what a subscriber reports, and how healthy that is. Pure."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pgherd.errors import InvalidInput
from pgherd.model import names
from pgherd.model.publication import PG15, PG16, require_features
from pgherd.model.status import Frozen, LsnField

SyncSchema = Literal["none", "tables", "database"]
Origin = Literal["any", "none"]
_SLOT_OK = re.compile(r"^[a-z0-9_]{1,63}$")

# pg_subscription_rel.srsubstate
SYNC_STATES = {
    "i": "initializing",
    "d": "copying data",
    "f": "copy finished",
    "s": "synchronized",
    "r": "ready",
}


class SubscriptionSpec(Frozen):
    """``subscription create``: ``conninfo`` names the publisher and a passfile, never a
    password."""

    name: str
    dbname: str = "postgres"
    conninfo: str
    publications: tuple[str, ...]
    copy_data: bool = True
    sync_schema: SyncSchema = "none"
    enabled: bool = True
    origin: Origin | None = None
    slot_name: str | None = None


class SubscriptionInfo(Frozen):
    name: str
    dbname: str
    owner: str
    enabled: bool
    publications: tuple[str, ...]
    slot_name: str | None
    host: str | None = None
    port: int | None = None
    source_user: str | None = None
    source_dbname: str | None = None
    worker_pid: int | None = None
    # "any": the publisher's received changes come too (PostgreSQL's default, the only way
    # before 16: they are passed on); "none": only the publisher's own (16+)
    origin: Origin = "any"


class TableSync(Frozen):
    schema_name: str
    name: str
    state: str  # one of SYNC_STATES
    lsn: LsnField | None = None

    @property
    def state_text(self) -> str:
        return SYNC_STATES.get(self.state, self.state)


class LastError(Frozen):
    """The last error a worker of the subscription logged, with what to do about it."""

    time: str | None
    message: str
    detail: str | None = None
    context: str | None = None
    relation: str | None = None
    finish_lsn: LsnField | None = None
    current: bool  # False once replication went past it (fixed)
    hint: str


class Health(StrEnum):
    REPLICATING = "replicating"
    SYNCING = "syncing"
    ERROR = "error"
    DISABLED = "disabled"
    STARTING = "starting"


class SubscriptionStatus(Frozen):
    subscription: SubscriptionInfo
    health: Health
    tables: tuple[TableSync, ...] = ()
    received_lsn: LsnField | None = None
    latest_end_lsn: LsnField | None = None
    last_msg_receipt_time: datetime | None = None
    origin_lsn: LsnField | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    confirmed_lsn: LsnField | None = None  # the slot's confirmed_flush_lsn on the publisher
    publisher_note: str | None = None  # why lag is unknown, when it is
    apply_error_count: int | None = None
    sync_error_count: int | None = None
    last_error: LastError | None = None


class SequenceSync(Frozen):
    """One sequence of ``sync-sequences``: the publisher's value and what was set."""

    schema_name: str
    name: str
    publisher_value: int | None
    subscriber_value: int | None
    new_value: int | None
    note: str


def slot_name_for(subscription: str) -> str:
    """A replication slot name for ``subscription``.

    PostgreSQL names the slot after the subscription by default, but slot names allow
    only ``[a-z0-9_]``: a subscription called ``Sales "EU"`` would fail to create. Such
    names get a cleaned-up slot name with a short hash, so two of them cannot collide.
    """
    if _SLOT_OK.match(subscription):
        return subscription
    cleaned = re.sub(r"[^a-z0-9_]+", "_", subscription.lower()).strip("_") or "sub"
    digest = hashlib.sha1(subscription.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{cleaned[:54]}_{digest}"


def check_spec(spec: SubscriptionSpec, version_num: int, node: str) -> None:
    names.check_name(spec.name, "subscription name")
    if not spec.publications:
        raise InvalidInput("no publication given", "give --publication NAME")
    for publication in spec.publications:
        names.check_name(publication, "publication name")
    if spec.slot_name is not None and not _SLOT_OK.match(spec.slot_name):
        raise InvalidInput(
            f"slot name {spec.slot_name!r} is not valid",
            "use lower-case letters, digits and underscores",
        )
    if spec.origin == "none":
        require_features([("origin = none (--origin none)", PG16)], version_num, node)


def origin_option(spec: SubscriptionSpec, version_num: int) -> Origin | None:
    """The ``origin`` to send in CREATE SUBSCRIPTION: "any" (``--forward``) is what a
    server before 16 always does and cannot be told, so it is left out there."""
    if spec.origin == "any" and version_num < PG16:
        return None
    return spec.origin


def health(
    enabled: bool,
    worker_pid: int | None,
    tables: Sequence[TableSync],
    last_error: LastError | None,
) -> Health:
    if not enabled:
        return Health.DISABLED
    if last_error is not None and last_error.current:
        return Health.ERROR
    if any(t.state != "r" for t in tables):
        return Health.SYNCING
    if worker_pid is None:
        return Health.STARTING
    return Health.REPLICATING


def needs_skip_support(version_num: int) -> bool:
    """ALTER SUBSCRIPTION … SKIP exists from PostgreSQL 15 on."""
    return version_num >= PG15
