"""The agent's monitoring history (kept by ``ha/history_store.py``).

``GET /history/lag`` is open like ``/status`` (lags, no data); ``POST /history/cleanup``
needs an operator's or a peer's credential. (``GET /history`` is the timeline history, as
Patroni's.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fastapi import APIRouter, Query
from pydantic import Field

from pgherd.api.auth import authorized
from pgherd.model import history
from pgherd.model.history import MAX_LIMIT, CleanupResult, HistoryPage, Sample, SampleKind
from pgherd.model.status import Frozen


class CleanupRequest(Frozen):
    keep_days: float = Field(ge=0, le=36500, allow_inf_nan=False)


class HistoryPort(Protocol):
    """What the routes need of the agent's history (``ha.history_store.HistoryStore``)."""

    @property
    def source(self) -> str: ...

    def read(
        self,
        since: datetime | None = None,
        kind: SampleKind | None = None,
        subject: str | None = None,
        limit: int = 10_000,
    ) -> list[Sample]: ...

    def oldest(self) -> datetime | None: ...

    def trim(self, before: datetime) -> tuple[int, int]: ...


def router(store: HistoryPort, interval: float) -> APIRouter:
    api = APIRouter(tags=["history"])

    @api.get("/history/lag")
    def read(
        since: datetime | None = None,
        kind: SampleKind | None = None,
        subject: str | None = Query(default=None, max_length=200),
        limit: int = Query(default=10_000, ge=1, le=MAX_LIMIT),
    ) -> HistoryPage:
        """Samples oldest first (the newest ``limit`` of those matching)."""
        return HistoryPage(
            node=store.source,
            interval=interval,
            samples=tuple(store.read(since, kind, subject, limit)),
            oldest=store.oldest(),
        )

    @api.post("/history/cleanup", dependencies=authorized())
    def cleanup(request: CleanupRequest) -> CleanupResult:
        before = history.cutoff(history.now(), request.keep_days)
        removed, kept = store.trim(before)
        return CleanupResult(node=store.source, removed=removed, kept=kept, cutoff=before)

    return api
