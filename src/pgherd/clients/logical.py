"""The logical-replication endpoints of an agent, typed (see ``api/routes_logical.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from pgherd.clients.agent import AgentClient
from pgherd.config import NodeConfig
from pgherd.model.ddl import DdlApplied, DdlEffect
from pgherd.model.lsn import Lsn
from pgherd.model.publication import (
    PublicationAlter,
    PublicationInfo,
    PublicationResult,
    PublicationSpec,
    TableFacts,
)
from pgherd.model.status import Message
from pgherd.model.subscription import (
    SequenceSync,
    SubscriptionInfo,
    SubscriptionSpec,
    SubscriptionStatus,
)

SLOW = 600.0  # a schema copy or a DDL may take a while


class LogicalClient:
    def __init__(self, node: NodeConfig, token: str | None = None) -> None:
        self.node = node
        self.agent = AgentClient(node, token, timeout=30)

    # ---- publications ------------------------------------------------------------------

    def publications(self, dbname: str = "postgres") -> list[PublicationInfo]:
        data = self.agent.call("GET", "/logical/publications", params={"dbname": dbname})
        return [PublicationInfo.model_validate(d) for d in data]

    def create_publication(self, spec: PublicationSpec) -> PublicationResult:
        data = self.agent.call("POST", "/logical/publications", SLOW, body=spec.model_dump())
        return PublicationResult.model_validate(data)

    def alter_publication(self, change: PublicationAlter) -> PublicationResult:
        data = self.agent.call(
            "POST", "/logical/publications/alter", SLOW, body=change.model_dump()
        )
        return PublicationResult.model_validate(data)

    def drop_publication(self, name: str, dbname: str = "postgres") -> str:
        data = self.agent.call(
            "DELETE", "/logical/publications", params={"name": name, "dbname": dbname}
        )
        return Message.model_validate(data).message

    # ---- subscriptions -----------------------------------------------------------------

    def subscriptions(self) -> list[SubscriptionInfo]:
        return [
            SubscriptionInfo.model_validate(d)
            for d in self.agent.call("GET", "/logical/subscriptions")
        ]

    def subscription_status(self, name: str, dbname: str | None = None) -> SubscriptionStatus:
        params = {"name": name} | ({"dbname": dbname} if dbname else {})
        data = self.agent.call("GET", "/logical/subscriptions/status", params=params)
        return SubscriptionStatus.model_validate(data)

    def create_subscription(self, spec: SubscriptionSpec) -> SubscriptionInfo:
        data = self.agent.call("POST", "/logical/subscriptions", SLOW, body=spec.model_dump())
        return SubscriptionInfo.model_validate(data)

    def subscription_action(
        self, action: str, name: str, dbname: str | None = None
    ) -> SubscriptionInfo:
        """``action``: enable, disable or refresh."""
        actions = {
            "enable": self.enable_subscription,
            "disable": self.disable_subscription,
            "refresh": self.refresh_subscription,
        }
        return actions[action](name, dbname)

    def enable_subscription(self, name: str, dbname: str | None = None) -> SubscriptionInfo:
        body = {"name": name, "dbname": dbname}
        data = self.agent.call("POST", "/logical/subscriptions/enable", SLOW, body=body)
        return SubscriptionInfo.model_validate(data)

    def disable_subscription(self, name: str, dbname: str | None = None) -> SubscriptionInfo:
        body = {"name": name, "dbname": dbname}
        data = self.agent.call("POST", "/logical/subscriptions/disable", SLOW, body=body)
        return SubscriptionInfo.model_validate(data)

    def refresh_subscription(self, name: str, dbname: str | None = None) -> SubscriptionInfo:
        body = {"name": name, "dbname": dbname}
        data = self.agent.call("POST", "/logical/subscriptions/refresh", SLOW, body=body)
        return SubscriptionInfo.model_validate(data)

    def drop_subscription(self, name: str, dbname: str | None, local_only: bool) -> str:
        body = {"name": name, "dbname": dbname, "local_only": local_only}
        data = self.agent.call("POST", "/logical/subscriptions/drop", SLOW, body=body)
        return Message.model_validate(data).message

    def sync_sequences(self, name: str, dbname: str | None, margin: int) -> list[SequenceSync]:
        body = {"name": name, "dbname": dbname, "margin": margin}
        data = self.agent.call("POST", "/logical/subscriptions/sync-sequences", SLOW, body=body)
        return [SequenceSync.model_validate(d) for d in data]

    # ---- ddl ---------------------------------------------------------------------------

    def ddl_dry_run(self, statement: str, dbname: str) -> DdlEffect:
        body = {"statement": statement, "dbname": dbname}
        return DdlEffect.model_validate(
            self.agent.call("POST", "/logical/ddl/dry-run", SLOW, body=body)
        )

    def ddl_apply(
        self, statement: str, dbname: str, regrant: bool, meshes: Sequence[str] = ()
    ) -> DdlApplied:
        body = {
            "statement": statement,
            "dbname": dbname,
            "regrant": regrant,
            "meshes": list(meshes),
        }
        data = self.agent.call("POST", "/logical/ddl", SLOW, body=body)
        return DdlApplied.model_validate(data)

    # ---- tables and writes (upgrade) ---------------------------------------------------

    def tables(self, dbname: str = "postgres") -> list[TableFacts]:
        data = self.agent.call("GET", "/logical/tables", params={"dbname": dbname})
        return [TableFacts.model_validate(d) for d in data]

    def stop_writes(self, timeout: float) -> Lsn:
        data = self.agent.call(
            "POST", "/logical/writes/stop", timeout + 30, body={"timeout": timeout}
        )
        return Lsn.parse(Message.model_validate(data).message)

    def resume_writes(self) -> str:
        data = self.agent.call("POST", "/logical/writes/resume")
        return Message.model_validate(data).message
