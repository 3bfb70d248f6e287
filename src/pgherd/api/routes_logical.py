"""The agent API for logical replication: publications, subscriptions, DDL, sequences.

Reading is open; acting needs an operator's or a peer's credential. Names travel in
query strings and JSON bodies, never in URL paths, so a publication called ``a/b "c"``
needs no escaping rules of its own. The console uses the same endpoints as the CLI.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from pgherd.api.auth import authorized
from pgherd.logical import ddl, publication, sequences, subscription, writes
from pgherd.model.ddl import DdlApplied, DdlEffect
from pgherd.model.publication import (
    PublicationAlter,
    PublicationInfo,
    PublicationResult,
    PublicationSpec,
    TableFacts,
)
from pgherd.model.status import Frozen, Message
from pgherd.model.subscription import (
    SequenceSync,
    SubscriptionInfo,
    SubscriptionSpec,
    SubscriptionStatus,
)
from pgherd.pg.local_node import LocalNode


class SubscriptionRef(Frozen):
    name: str
    dbname: str | None = None


class DropSubscription(SubscriptionRef):
    local_only: bool = False


class SyncSequences(SubscriptionRef):
    margin: int = Field(default=1000, ge=0, le=2**62)


class DdlRequest(Frozen):
    statement: str = Field(min_length=1, max_length=256 * 1024)
    dbname: str = "postgres"
    regrant: bool = False
    meshes: tuple[str, ...] = ()  # log it for these meshes' members (pgherd.mesh_ddl)


class StopWrites(Frozen):
    timeout: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)


def router(local: LocalNode) -> APIRouter:
    """Open reads under ``/logical``, plus token-protected actions."""
    routes = APIRouter(prefix="/logical", tags=["logical"])
    acting = APIRouter(tags=["logical"], dependencies=authorized())  # under routes

    @routes.get("/publications")
    def list_publications(dbname: str = "postgres") -> list[PublicationInfo]:
        return publication.list_all(local, dbname)

    @routes.get("/subscriptions")
    def list_subscriptions() -> list[SubscriptionInfo]:
        return subscription.list_all(local)

    @routes.get("/subscriptions/status")
    def subscription_status(name: str, dbname: str | None = None) -> SubscriptionStatus:
        return subscription.status(local, name, dbname)

    @routes.get("/tables")
    def list_tables(dbname: str = "postgres") -> list[TableFacts]:
        return writes.tables(local, dbname)

    @acting.post("/writes/stop")
    def stop_writes(req: StopWrites) -> Message:
        """Read-only from now on; answers with the WAL position once no one writes."""
        return Message(message=str(writes.stop(local, req.timeout)))

    @acting.post("/writes/resume")
    def resume_writes() -> Message:
        writes.resume(local)
        return Message(message="writes allowed again")

    @acting.post("/publications")
    def create_publication(spec: PublicationSpec) -> PublicationResult:
        return publication.create(local, spec)

    @acting.post("/publications/alter")
    def alter_publication(change: PublicationAlter) -> PublicationResult:
        return publication.alter(local, change)

    @acting.delete("/publications")
    def drop_publication(name: str, dbname: str = "postgres") -> Message:
        publication.drop(local, name, dbname)
        return Message(message=f"dropped publication {name!r}")

    @acting.post("/subscriptions")
    def create_subscription(spec: SubscriptionSpec) -> SubscriptionInfo:
        return subscription.create(local, spec)

    @acting.post("/subscriptions/enable")
    def enable_subscription(ref: SubscriptionRef) -> SubscriptionInfo:
        return subscription.enable(local, ref.name, ref.dbname)

    @acting.post("/subscriptions/disable")
    def disable_subscription(ref: SubscriptionRef) -> SubscriptionInfo:
        return subscription.disable(local, ref.name, ref.dbname)

    @acting.post("/subscriptions/refresh")
    def refresh_subscription(ref: SubscriptionRef) -> SubscriptionInfo:
        return subscription.refresh(local, ref.name, ref.dbname)

    @acting.post("/subscriptions/drop")
    def drop_subscription(req: DropSubscription) -> Message:
        return Message(message=subscription.drop(local, req.name, req.dbname, req.local_only))

    @acting.post("/subscriptions/sync-sequences")
    def sync_sequences(req: SyncSequences) -> list[SequenceSync]:
        return sequences.sync(local, req.name, req.dbname, req.margin)

    @acting.post("/ddl/dry-run")
    def ddl_dry_run(req: DdlRequest) -> DdlEffect:
        return ddl.dry_run(local, req.statement, req.dbname)

    @acting.post("/ddl")
    def ddl_apply(req: DdlRequest) -> DdlApplied:
        return ddl.apply(local, req.statement, req.dbname, req.regrant, req.meshes)

    routes.include_router(acting)
    return routes
