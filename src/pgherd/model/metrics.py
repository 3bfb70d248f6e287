"""The metrics read when Prometheus scrapes an agent, built from one read of its node. Pure.

``ha/metrics_source.py`` reads the node into a :class:`NodeMetrics` (its status, what it
sends, the archiver, its HA loop); :func:`families` turns that into metric families, with
the names docs/metrics.md documents. Counters of events (failovers, HA cycles) are not
here: they live in ``pgherd/metrics.py`` and are counted where they happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from pgherd.model import history
from pgherd.model.archive_api import PusherState
from pgherd.model.history import SampleKind, SenderState
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshWorkerRow
from pgherd.model.status import PgState, Role, Slot


@dataclass(frozen=True)
class MemberSeen:
    """A member's last check-in in the store, as this agent read it in its last cycle."""

    name: str
    age: float  # seconds since it checked in


@dataclass(frozen=True)
class NodeMetrics:
    """One read of a node for the /metrics page."""

    pg: PgState
    role: Role
    answers: bool  # PostgreSQL runs and answered the agent's query now
    automatic: bool  # the HA loop runs (failover: automatic)
    is_leader: bool  # holds the lease (automatic) / runs as the primary (manual)
    lease_left: float | None = None  # seconds this agent's lease still lasts
    paused: bool = False  # automatic failover paused (maintenance, or an operation)
    store_ok: bool = True
    timeline: int | None = None
    position: Lsn | None = None
    sending: SenderState | None = None  # what it sends (pg_stat_replication), its archiver
    slots: tuple[Slot, ...] = ()
    archive_failed: int | None = None  # pg_stat_archiver.failed_count (since stats reset)
    archive_pending: int | None = None  # segments waiting for archive_command (.ready)
    restarts: int = 0  # PostgreSQL restarts after a crash, by this agent
    mesh_workers: tuple[MeshWorkerRow, ...] = ()
    members: tuple[MemberSeen, ...] = ()
    pusher: PusherState | None = None  # the agent's WAL pusher (archive/pusher.py), if any
    # a standby's copies of the primary's logical slots: name → safe for a failover
    # (model/failover_slots.py)
    slot_copies: tuple[tuple[str, bool], ...] = ()
    # permanent slots removed from slots: that wait for their consumer to disconnect
    slots_waiting: tuple[str, ...] = ()


ROLES = (Role.PRIMARY, Role.STANDBY, Role.UNKNOWN)


def families(m: NodeMetrics) -> Iterator[Metric]:
    """Every scrape-time family, in the order of docs/metrics.md."""
    yield _gauge("pgherd_up", "1 when PostgreSQL runs and answers the agent.", m.answers)
    role = GaugeMetricFamily(
        "pgherd_node_role",
        "The role PostgreSQL runs in: 1 for the current role, 0 for the others.",
        labels=["role"],
    )
    for r in ROLES:
        role.add_metric([str(r)], 1.0 if m.role is r and m.pg is PgState.RUNNING else 0.0)
    yield role
    yield _gauge(
        "pgherd_is_leader",
        "1 on the holder of the leader lease (manual failover: on a running primary).",
        m.is_leader,
    )
    if m.automatic:
        yield _gauge(
            "pgherd_lease_remaining_seconds",
            "Seconds this agent's leader lease still lasts (0: it holds none).",
            m.lease_left or 0.0,
        )
        yield _gauge(
            "pgherd_paused",
            "1 while automatic failover is paused (cluster pause, or an operation runs).",
            m.paused,
        )
        yield _gauge(
            "pgherd_store_up", "1 when the agent's last HA cycle read the store.", m.store_ok
        )
        seen = GaugeMetricFamily(
            "pgherd_member_checkin_age_seconds",
            "Seconds since each member last checked in to the store (this agent's last read).",
            labels=["member"],
        )
        for member in m.members:
            seen.add_metric([member.name], member.age)
        yield seen
    if m.timeline is not None:
        yield _gauge("pgherd_timeline", "The timeline PostgreSQL runs on.", m.timeline)
    if m.position is not None:
        yield _gauge(
            "pgherd_wal_lsn_bytes",
            "WAL position as bytes: written (primary), received or replayed (standby).",
            m.position.value,
        )
    yield from _replication(m.sending)
    yield from _slots(m.slots)
    if m.slot_copies:
        ready = GaugeMetricFamily(
            "pgherd_slot_copy_ready",
            "On a standby, per copy of a primary's logical slot: 1 when a failover here could "
            "use it (the primary keeps its catalog rows), 0 not yet.",
            labels=["slot"],
        )
        for name, safe in m.slot_copies:
            ready.add_metric([name], 1.0 if safe else 0.0)
        yield ready
    if m.slots_waiting:
        waiting = GaugeMetricFamily(
            "pgherd_slot_drop_waiting",
            "Permanent slots removed from slots: that pgherd made, not dropped yet because "
            "their consumer is connected (1 per slot).",
            labels=["slot"],
        )
        for name in m.slots_waiting:
            waiting.add_metric([name], 1.0)
        yield waiting
    if m.archive_failed is not None:
        yield _counter(
            "pgherd_archive_failed",
            "Failed archive_command runs (pg_stat_archiver.failed_count).",
            m.archive_failed,
        )
    if m.archive_pending is not None:
        yield _gauge(
            "pgherd_archive_pending_segments",
            "WAL segments waiting for archive_command (.ready files).",
            m.archive_pending,
        )
    if m.pusher is not None and m.pusher.running:
        yield from _pusher(m.pusher)
    yield _counter(
        "pgherd_postgres_restarts",
        "PostgreSQL restarts by this agent after a crash, since the agent started.",
        m.restarts,
    )
    conflicts = CounterMetricFamily(
        "pgherd_mesh_conflicts",
        "Conflicts resolved by the mesh apply worker into this node, per mesh, source, "
        "kind and resolution.",
        labels=["mesh", "source", "kind", "resolution"],
    )
    for w in m.mesh_workers:
        if w.conflict_counts:
            for c in w.conflict_counts:
                conflicts.add_metric([w.mesh, w.source, c.kind, c.resolution], c.count)
        elif w.conflicts:  # a worker that does not count by kind
            conflicts.add_metric([w.mesh, w.source, "any", "any"], w.conflicts)
    yield conflicts
    yield from _mesh_workers(m.mesh_workers)


def _mesh_workers(workers: tuple[MeshWorkerRow, ...]) -> Iterator[Metric]:
    """Whether each apply worker into this node applies, and how far behind it is: what a
    mesh alert watches (a pair stopped on a conflict, an error, or falling behind)."""
    running = GaugeMetricFamily(
        "pgherd_mesh_worker_running",
        "1 while the mesh apply worker source -> this node applies, 0 when it does not "
        "(stopped on a conflict, an error, waiting or restarting).",
        labels=["mesh", "source", "state"],
    )
    lag = GaugeMetricFamily(
        "pgherd_mesh_apply_lag_seconds",
        "Seconds since the oldest change the mesh apply worker has read but not committed "
        "was committed on its source (0 when caught up).",
        labels=["mesh", "source"],
    )
    for w in workers:
        running.add_metric([w.mesh, w.source, str(w.state)], 1 if w.state == "running" else 0)
        if w.lag_seconds is not None:
            lag.add_metric([w.mesh, w.source], w.lag_seconds)
    yield running
    yield lag


def _replication(sending: SenderState | None) -> Iterator[Metric]:
    lag_b = GaugeMetricFamily(
        "pgherd_replication_lag_bytes",
        "Bytes of WAL each standby has not replayed yet, measured on its upstream.",
        labels=["standby"],
    )
    lag_s = GaugeMetricFamily(
        "pgherd_replication_lag_seconds",
        "Replay lag of each standby in seconds (PostgreSQL's replay_lag; 0 when caught up).",
        labels=["standby"],
    )
    sub_b = GaugeMetricFamily(
        "pgherd_subscription_lag_bytes",
        "Bytes of WAL each logical subscriber (subscription, mesh worker) has not confirmed.",
        labels=["subscription"],
    )
    trailing = None
    if sending is not None:
        for sample in history.samples(sending, history.now()):
            if sample.kind is SampleKind.STANDBY:
                if sample.lag_bytes is not None:
                    lag_b.add_metric([sample.subject], sample.lag_bytes)
                if sample.lag_seconds is not None:
                    lag_s.add_metric([sample.subject], sample.lag_seconds)
            elif sample.kind is SampleKind.LOGICAL:
                if sample.lag_bytes is not None:
                    sub_b.add_metric([sample.subject], sample.lag_bytes)
            elif sample.lag_bytes is not None:
                trailing = sample.lag_bytes
    yield lag_b
    yield lag_s
    yield sub_b
    if trailing is not None:
        yield _gauge(
            "pgherd_archive_trailing_bytes",
            "Bytes of WAL on the primary the archive does not hold yet.",
            trailing,
        )


def _slots(slots: tuple[Slot, ...]) -> Iterator[Metric]:
    retained = GaugeMetricFamily(
        "pgherd_slot_retained_bytes",
        "Bytes of WAL each replication slot keeps from being removed.",
        labels=["slot", "slot_type"],
    )
    active = GaugeMetricFamily(
        "pgherd_slot_active",
        "1 when a client streams from the slot now; an inactive slot keeps WAL growing.",
        labels=["slot", "slot_type"],
    )
    for slot in slots:
        if slot.retained_bytes is not None:
            retained.add_metric([slot.name, slot.slot_type], slot.retained_bytes)
        active.add_metric([slot.name, slot.slot_type], 1.0 if slot.active else 0.0)
    yield retained
    yield active


def _pusher(p: PusherState) -> Iterator[Metric]:
    yield _gauge(
        "pgherd_archive_push_waiting_bytes",
        "WAL waiting to be archived (.ready segments) as the agent's pusher sees it.",
        p.waiting_bytes,
    )
    yield _gauge(
        "pgherd_archive_push_queue_limit_bytes",
        "archive.queue_max: WAL waiting past this counts as archiving falling behind.",
        p.queue_max_bytes,
    )
    yield _gauge(
        "pgherd_archive_push_in_flight",
        "Segments the pusher is archiving now (to every repository).",
        p.in_flight,
    )
    yield _counter(
        "pgherd_archive_pushed_segments",
        "WAL files the pusher made durable in every repository, since the agent started.",
        p.pushed,
    )
    yield _counter(
        "pgherd_archive_pushed_bytes",
        "Bytes of WAL the pusher archived (before compression), since the agent started.",
        p.pushed_bytes,
    )
    yield _counter(
        "pgherd_archive_push_failures",
        "Pushes that failed in some repository (retried with backoff), since the agent started.",
        p.failures,
    )
    if p.seconds_per_segment is not None:
        yield _gauge(
            "pgherd_archive_push_segment_seconds",
            "Mean time to make one segment durable everywhere, over the last 64 pushes.",
            p.seconds_per_segment,
        )


def _gauge(name: str, documentation: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))
