"""``GET /metrics``: the agent's Prometheus page (text format 0.0.4), open like
``/status`` (figures, no data). The names are documented in docs/metrics.md."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from fastapi.responses import Response

from pgherd import metrics


def router(sources: Sequence[metrics.Collector], cluster: str, node: str) -> APIRouter:
    api = APIRouter(tags=["metrics"])

    @api.get("/metrics")
    def page() -> Response:
        body = metrics.exposition(sources, cluster, node)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return api
