"""The agent's Prometheus metrics: one registry per process, served by ``GET /metrics``.

Two kinds of metrics end up on the page (docs/metrics.md lists every name):

- **events counted as they happen** (a failover, an HA cycle's duration, a conflict
  resolved by a mesh worker): a ``prometheus_client`` Counter, Gauge or Histogram defined
  *in this module* on :data:`REGISTRY`, and incremented where the event happens;
- **state read when Prometheus scrapes** (role, lag, slots, the archive): built from one
  read of the node by ``model/metrics.py`` (pure) and ``ha/metrics_source.py``.

Every sample gets the labels ``cluster`` and ``node`` when the page is rendered
(:func:`exposition`), so a metric defined here names only its own labels.

Adding a metric (docs/metrics.md, "Adding a metric"): define it below with a
``pgherd_`` name, a unit suffix (``_seconds``, ``_bytes``, ``_total`` for counters, which
``prometheus_client`` appends itself) and a help text that says what an operator reads
in it; add its row to docs/metrics.md (``tests/unit/test_metrics.py`` fails on a metric
the page does not document); increment it where the event happens. Names are a
contract: add, never rename.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

# The classic text format, which every Prometheus reads (prometheus_client's "latest" is
# 1.0.0, with UTF-8 names that pgherd's names do not need).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# No `_created` series beside each counter and histogram: they double the page for a
# figure (the agent's start time) nobody alerts on.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

# ---- events counted as they happen (add new ones here) ---------------------------------

HA_CYCLE_SECONDS = Histogram(
    "pgherd_ha_cycle_seconds",
    "Duration of one HA cycle (observe, decide, act, check in).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
FAILOVERS = Counter(
    "pgherd_failovers",
    "Automatic promotions of this node by its HA loop (a failover it won).",
    registry=REGISTRY,
)
LEASE_LEFT = Histogram(
    "pgherd_lease_left_at_renewal_seconds",
    "Seconds of its lease the leader still had when it renewed it: how close a healthy "
    "leader came to losing its lease (a stalled cycle, a slow store).",
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),
    registry=REGISTRY,
)
LEASE_LEFT_MIN = Gauge(
    "pgherd_lease_left_min_seconds",
    "The least of its lease this agent had left at a renewal since it started (NaN "
    "before its second renewal).",
    registry=REGISTRY,
)
LEASE_LEFT_MIN.set(float("nan"))

LEASE_KEPT_FOR_LOOP = Counter(
    "pgherd_lease_renewed_for_loop_total",
    "Renewals of its lease this agent made on its HA loop's behalf while a cycle was held "
    "up in PostgreSQL work (a slow or stalled server): any increase is worth a look.",
    registry=REGISTRY,
)


class Collector(Protocol):
    """What ``prometheus_client`` calls at scrape time: yields metric families."""

    def collect(self) -> Iterable[Metric]: ...


class _Page:
    """The registry and the scrape-time collectors, with the identity labels added."""

    def __init__(self, sources: Iterable[Collector], labels: dict[str, str]) -> None:
        self.sources = (REGISTRY, *sources)
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            for family in source.collect():
                yield _with_labels(family, self.labels)


def _with_labels(family: Metric, labels: dict[str, str]) -> Metric:
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = [s._replace(labels={**labels, **s.labels}) for s in family.samples]
    return copy


def exposition(sources: Iterable[Collector], cluster: str, node: str) -> bytes:
    """The /metrics page: text format 0.0.4, every sample labelled with its cluster and
    node (the names Grafana and the alert rules group by)."""
    return generate_latest(_Page(sources, {"cluster": cluster, "node": node}))
