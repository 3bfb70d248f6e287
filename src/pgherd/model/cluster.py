"""The cluster as a whole, from every node's status: rows for ``cluster show`` and the
problems that make it unhealthy. Pure functions of the statuses read once.

They read a status through :class:`StatusReading`, which both forms of an agent's status
satisfy: :class:`~pgherd.model.status.NodeStatus` (pydantic, the agents' and the console's)
and :class:`~pgherd.model.status_lite.LiteStatus` (the quick commands', without pydantic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pgherd.model.lsn import Lsn, lag_bytes
from pgherd.model.status_lite import PgState, Role

# Resolves an upstream's host and port (as a standby reports them) to a node name.
NodeAt = Callable[[str | None, int | None], str | None]


class _Receiver(Protocol):
    @property
    def status(self) -> str: ...


class _SentTo(Protocol):
    """A row of pg_stat_replication: a standby its upstream streams to."""

    @property
    def application_name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def replay_lag_s(self) -> float | None: ...


class StatusReading(Protocol):
    """What the cluster's view reads of one node's status."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> PgState: ...

    @property
    def role(self) -> Role: ...

    @property
    def timeline(self) -> int | None: ...

    @property
    def system_identifier(self) -> str | None: ...

    @property
    def current_lsn(self) -> Lsn | None: ...

    @property
    def replay_lsn(self) -> Lsn | None: ...

    @property
    def upstream_host(self) -> str | None: ...

    @property
    def upstream_port(self) -> int | None: ...

    @property
    def wal_receiver(self) -> _Receiver | None: ...

    @property
    def replication(self) -> Sequence[_SentTo]: ...

    @property
    def position(self) -> Lsn | None: ...

    @property
    def pending_restart(self) -> Sequence[str]: ...

    @property
    def config_fingerprint(self) -> str | None: ...


# What cluster show and doctor say of a cluster that runs in plain text (allowed, on
# purpose: ``tls: off``), every time.
TLS_OFF = (
    "TLS is off (tls: off in pgherd.yaml): the agents' API with its token, PostgreSQL's "
    "replication and client connections and etcd speak plain text"
)

S = TypeVar("S", bound=StatusReading)


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"


@dataclass(frozen=True)
class NodeRow:
    """One node as ``cluster show`` lists it, from its agent's status."""

    name: str
    role: Role
    state: str  # PgState, or "streaming"/"not streaming" for a running standby
    upstream: str | None
    timeline: int | None
    lsn: Lsn | None
    lag_bytes: int | None
    lag_seconds: float | None
    system_identifier: str | None
    problem: str | None
    pending_restart: tuple[str, ...] = ()  # settings that wait for a restart
    config_fingerprint: str | None = None  # of the pgherd.yaml its agent runs with

    @property
    def is_primary(self) -> bool:
        return self.role is Role.PRIMARY and self.state == PgState.RUNNING


@dataclass(frozen=True)
class ClusterView:
    """Every node's row, the primary and what is wrong with the cluster as a whole."""

    rows: tuple[NodeRow, ...]
    primary: str | None
    system_identifier: str | None
    problems: tuple[str, ...]

    @property
    def health(self) -> Health:
        return Health.DEGRADED if self.problems else Health.HEALTHY


def running_primaries(statuses: Sequence[S]) -> list[S]:
    return [s for s in statuses if s.role is Role.PRIMARY and s.state is PgState.RUNNING]


def cluster_identity(statuses: Sequence[StatusReading]) -> str | None:
    """The cluster's system identifier: its running primary's, else the most common one."""
    primaries = running_primaries(statuses)
    if len(primaries) == 1 and primaries[0].system_identifier:
        return primaries[0].system_identifier
    counts: dict[str, int] = {}
    for status in statuses:
        if status.system_identifier:
            counts[status.system_identifier] = counts.get(status.system_identifier, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def _replication_row_for(statuses: Sequence[StatusReading], name: str) -> tuple[str, float | None]:
    """The state and replay lag that any upstream reports for standby ``name``."""
    for status in statuses:
        for row in status.replication:
            if row.application_name == name:
                return row.state, row.replay_lag_s
    return "", None


def view(
    statuses: Sequence[StatusReading], node_at: NodeAt, independent: bool = False
) -> ClusterView:
    """``independent``: every node is a cluster of its own (``topology: independent``), so
    several primaries and differing system identifiers are expected, not problems."""
    primaries = running_primaries(statuses)
    primary = primaries[0] if len(primaries) == 1 and not independent else None
    identity = None if independent else cluster_identity(statuses)
    problems: list[str] = []
    if independent:
        pass
    elif not primaries:
        problems.append("no running primary")
    elif len(primaries) > 1:
        names = ", ".join(p.name for p in primaries)
        problems.append(f"more than one running primary: {names}")
    rows = []
    for status in statuses:
        row = _row(status, statuses, primary, identity, node_at)
        rows.append(row)
        if row.problem:
            problems.append(f"{row.name}: {row.problem}")
    return ClusterView(
        rows=tuple(rows),
        primary=primary.name if primary else None,
        system_identifier=identity,
        problems=tuple(problems),
    )


def _row(
    status: StatusReading,
    statuses: Sequence[StatusReading],
    primary: StatusReading | None,
    identity: str | None,
    node_at: NodeAt,
) -> NodeRow:
    upstream = None
    lag_b: int | None = None
    lag_s: float | None = None
    state = str(status.state)
    problem = None
    if status.state is PgState.UNREACHABLE:
        problem = "agent unreachable"
    elif status.state is not PgState.RUNNING:
        problem = f"PostgreSQL is {status.state}"
    if status.role is Role.STANDBY:
        upstream = node_at(status.upstream_host, status.upstream_port)
        if status.state is PgState.RUNNING:
            streaming = (
                status.wal_receiver is not None and status.wal_receiver.status == "streaming"
            )
            reported_state, lag_s = _replication_row_for(statuses, status.name)
            state = "streaming" if streaming else "not streaming"
            if not streaming:
                problem = "standby is not streaming from its upstream"
            if primary is not None:
                lag_b = lag_bytes(primary.current_lsn, status.replay_lsn)
                if lag_b == 0 and lag_s is None:
                    lag_s = 0.0
            if reported_state and reported_state != "streaming" and streaming:
                state = reported_state  # e.g. "catchup" while it catches up
    if (
        identity is not None
        and status.system_identifier is not None
        and status.system_identifier != identity
    ):
        problem = (
            f"system identifier {status.system_identifier} differs from the cluster's "
            f"{identity}: its data is not a copy of this cluster's; re-clone it from the primary"
        )
    return NodeRow(
        name=status.name,
        role=status.role,
        state=state,
        upstream=upstream,
        timeline=status.timeline,
        lsn=status.position,
        lag_bytes=lag_b,
        lag_seconds=lag_s,
        system_identifier=status.system_identifier,
        problem=problem,
        pending_restart=tuple(status.pending_restart),
        config_fingerprint=status.config_fingerprint,
    )


def row_json(row: NodeRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "role": str(row.role),
        "state": row.state,
        "primary": row.is_primary,
        "upstream": row.upstream,
        "timeline": row.timeline,
        "lsn": str(row.lsn) if row.lsn else None,
        "lag_bytes": row.lag_bytes,
        "lag_seconds": row.lag_seconds,
        "system_identifier": row.system_identifier,
        "problem": row.problem,
        "pending_restart": list(row.pending_restart),
        "config_fingerprint": row.config_fingerprint,
    }


def view_json(name: str, view: ClusterView) -> dict[str, Any]:
    return {
        "cluster": name,
        "health": str(view.health),
        "primary": view.primary,
        "system_identifier": view.system_identifier,
        "problems": list(view.problems),
        "nodes": [row_json(r) for r in view.rows],
    }


def pending_restart_notes(rows: Sequence[NodeRow]) -> list[str]:
    """A line per node with settings that wait for a restart, saying how to apply them."""
    return [
        f"{row.name}: pending restart: {', '.join(row.pending_restart)} — "
        f"pgherd node restart {row.name}, or pgherd cluster restart for every node"
        for row in rows
        if row.pending_restart
    ]


def config_warnings(
    fingerprints: Mapping[str, str | None], hosts: Mapping[str, str], local: str | None
) -> list[str]:
    """Members whose agents run another pgherd.yaml than the rest (named with their
    hosts), or, when they all agree, a file on this host that differs from theirs.
    ``fingerprints``: member -> what its agent reports (None: unknown, not counted)."""
    groups: dict[str, list[str]] = {}
    for name, found in fingerprints.items():
        if found:
            groups.setdefault(found, []).append(name)
    if not groups:
        return []

    def who(names: list[str]) -> str:
        return ", ".join(f"{n} ({hosts[n]})" if n in hosts else n for n in sorted(names))

    if len(groups) > 1:
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        parts = [f"{who(names)} run{'s' if len(names) == 1 else ''} {fp}" for fp, names in ranked]
        return [
            "the agents run different pgherd.yaml: "
            + "; ".join(parts)
            + " — copy the same file to every host, then pgherd agent reload (an agent "
            "restart for what a reload cannot change)"
        ]
    (found,) = groups
    if local is not None and found != local:
        return [
            f"every agent runs pgherd.yaml {found}, but this host's file is {local} — "
            "pgherd agent reload if this file is the newer, or copy theirs here"
        ]
    return []
