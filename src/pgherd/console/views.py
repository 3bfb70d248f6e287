"""Data for the pages that the overview's :class:`~pgherd.console.state.ClusterState` does
not hold: a node's details, the logical-replication tree, the archive, events, and lag
series for the charts. All read through the agents' API clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from pgherd.archive import status as status_mod
from pgherd.archive.backup import archive_of
from pgherd.clients.agent import AgentClient, fan_out
from pgherd.clients.history import HistoryClient
from pgherd.clients.logical import LogicalClient
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.console.state import ClusterState, Subscription
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import PgherdError
from pgherd.mesh.operations import Mesh
from pgherd.model import history
from pgherd.model.doctor import Finding, NodeFacts
from pgherd.model.events import OPERATIONS, Event
from pgherd.model.history import Sample, SampleKind
from pgherd.model.mesh import ConflictFilter, MeshConflict, MeshDdl, MeshSpec
from pgherd.model.publication import PublicationInfo, TableFacts
from pgherd.model.status import PgState, Role
from pgherd.model.subscription import SubscriptionStatus
from pgherd.ops.doctor import findings as run_checks
from pgherd.ops.events import event_log

READ_TIMEOUT = 5.0  # a page waits this long at most for an agent that hangs


def reader(node: NodeConfig) -> LogicalClient:
    """A client for the logical endpoints that gives up quickly: pages refresh often, and
    one hung agent must not hold every page up for the client's default 30 s."""
    client = LogicalClient(node)
    client.agent.timeout = READ_TIMEOUT
    return client


def findings(config: ClusterConfig) -> list[Finding]:
    return run_checks(config)


def facts(node: NodeConfig) -> NodeFacts | None:
    try:
        return AgentClient(node, timeout=3).facts()
    except PgherdError:
        return None


def events(
    config: ClusterConfig,
    token: str,
    limit: int = 200,
    operation: str = "",
    node: str = "",
    outcome: str = "",
) -> tuple[list[Event], str | None]:
    """The latest events, newest first, filtered; and why none could be read, if so. Read
    where ``pgherd cluster events`` reads them: the coordination store when the cluster
    has one (the HA loops record their decisions there), else the primary's database."""
    try:
        log = event_log(config, token)
    except PgherdError as exc:
        return [], exc.one_line()
    try:
        found = log.recent(limit)
    except PgherdError as exc:
        return [], exc.one_line()
    finally:
        if isinstance(log, StoreEventLog):
            log.store.close()
    return filter_events(found, operation, node, outcome), None


def event_kinds(found: Sequence[Event]) -> list[str]:
    """The filter's choices: every kind pgherd records, and any other the events hold."""
    return list(OPERATIONS) + sorted({e.operation for e in found} - set(OPERATIONS))


def filter_events(
    found: Sequence[Event], operation: str = "", node: str = "", outcome: str = ""
) -> list[Event]:
    picked = [
        e
        for e in found
        if (not operation or e.operation == operation)
        and (not node or e.node == node or node in e.details.values())
        and (not outcome or e.outcome == outcome)
    ]
    return sorted(picked, key=lambda e: e.started_at, reverse=True)


@dataclass
class LogicalNode:
    name: str
    running: bool
    publications: list[PublicationInfo] = field(default_factory=list)
    subscriptions: list[tuple[Subscription, SubscriptionStatus | None]] = field(
        default_factory=list
    )
    error: str | None = None


def logical_tree(current: ClusterState, dbname: str) -> list[LogicalNode]:
    """Per node: its publications in ``dbname`` and its subscriptions with their status."""
    config = current.config

    def one(node: NodeConfig) -> LogicalNode:
        running = current.status(node.name).state is PgState.RUNNING
        found = LogicalNode(node.name, running)
        if not running:
            return found
        client = reader(node)
        try:
            found.publications = client.publications(dbname)
        except PgherdError as exc:
            found.error = exc.message
        for sub in current.subscriptions:
            if sub.node != node.name:
                continue
            status: SubscriptionStatus | None
            try:
                status = client.subscription_status(sub.info.name, sub.info.dbname)
            except PgherdError:
                status = None
            found.subscriptions.append((sub, status))
        return found

    return fan_out(config.nodes, one)


def writable_nodes(current: ClusterState) -> list[str]:
    """The nodes that can publish or subscribe: running primaries (a standby is read-only:
    CREATE PUBLICATION and CREATE SUBSCRIPTION fail there)."""
    return [
        s.name for s in current.statuses if s.state is PgState.RUNNING and s.role is Role.PRIMARY
    ]


def tables(config: ClusterConfig, node: str, dbname: str) -> list[TableFacts]:
    return reader(config.node(node)).tables(dbname)


def lag_series(
    config: ClusterConfig, kind: SampleKind, subject: str, minutes: float = 60
) -> dict[str, Any]:
    """Samples of one stream from every agent (the sender changes with a switchover),
    as columns for the chart: times (epoch seconds) and one list per measure."""
    since = history.now() - timedelta(minutes=minutes)

    def read(node: NodeConfig) -> list[Sample]:
        try:
            return list(HistoryClient(node, timeout=5).history(since, kind, subject).samples)
        except PgherdError:
            return []

    merged = [s for found in fan_out(config.nodes, read) for s in found]
    picked = history.lag_series(merged, kind, subject, since)
    return {
        "kind": str(kind),
        "subject": subject,
        "interval": config.history.interval,
        "t": [round(s.at.timestamp(), 3) for s in picked],
        "lag_bytes": [s.lag_bytes for s in picked],
        "write_lag_bytes": [s.write_lag_bytes for s in picked],
        "flush_lag_bytes": [s.flush_lag_bytes for s in picked],
        "lag_seconds": [s.lag_seconds for s in picked],
        "source": [s.source for s in picked],
    }


def archive_page(config: ClusterConfig) -> dict[str, Any]:
    """The archive's status, backups and restore points (read from the archive directory,
    as ``pgherd archive status`` and ``backup list`` read it)."""
    if config.archive is None:
        return {"configured": False}
    try:
        archive = archive_of(config)
        return {
            "configured": True,
            "status": status_mod.status(config),
            "backups": list(reversed(archive.backups())),
            "points": list(reversed(archive.restore_points())),
            "error": None,
        }
    except PgherdError as exc:
        return {"configured": True, "error": exc.one_line()}


# ---- mesh ---------------------------------------------------------------------------------

CONFLICT_ROWS = 200  # the conflict log shows this many, newest first


@dataclass
class MeshPage:
    """The mesh page: the meshes the agents know, and for the one shown its pairs, its
    conflict log (filtered) and its schema changes."""

    meshes: list[str] = field(default_factory=list)
    spec: MeshSpec | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[MeshConflict] = field(default_factory=list)
    ddl: list[MeshDdl] = field(default_factory=list)
    error: str | None = None


def mesh_names(config: ClusterConfig, token: str) -> list[str]:
    """Every mesh some member's agent keeps (an agent that does not answer is skipped)."""

    def specs(node: NodeConfig) -> list[MeshSpec]:
        try:
            return MeshClient(node, token, timeout=READ_TIMEOUT).specs()
        except PgherdError:
            return []

    return sorted({s.name for found in fan_out(config.nodes, specs) for s in found})


def mesh_page(
    config: ClusterConfig,
    token: str,
    name: str = "",
    table: str = "",
    kind: str = "",
    resolution: str = "",
) -> MeshPage:
    page = MeshPage(meshes=mesh_names(config, token))
    name = name or (page.meshes[0] if page.meshes else "")
    if not name:
        return page
    try:
        which = ConflictFilter(
            limit=CONFLICT_ROWS,
            table=table or None,
            kind=kind or None,  # the form's text, validated here
            resolution=resolution or None,
        )
    except ValidationError:
        page.error = f"no conflict kind {kind!r} or resolution {resolution!r}: pick from the lists"
        return page
    mesh = Mesh(config, token)
    try:
        page.spec = mesh.find(name)
        page.pairs = mesh.status(name)
        page.conflicts = mesh.conflicts(name, which)
        first = mesh.members(page.spec)[0]
        page.ddl = MeshClient(first.agent, first.token, timeout=READ_TIMEOUT).ddl_log(name, 20)
    except PgherdError as exc:
        page.error = exc.one_line()
    return page
