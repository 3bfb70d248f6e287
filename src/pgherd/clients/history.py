"""The agent's history endpoints, typed (see ``api/routes_history.py``)."""

from __future__ import annotations

from datetime import datetime

from pgherd.clients.agent import AgentClient
from pgherd.model.history import CleanupResult, HistoryPage, SampleKind


class HistoryClient(AgentClient):
    def history(
        self,
        since: datetime | None = None,
        kind: SampleKind | None = None,
        subject: str | None = None,
        limit: int = 10_000,
    ) -> HistoryPage:
        params = {"limit": str(limit)}
        if since is not None:
            params["since"] = since.isoformat()
        if kind is not None:
            params["kind"] = str(kind)
        if subject is not None:
            params["subject"] = subject
        return HistoryPage.model_validate(self._request("GET", "/history/lag", params=params))

    def cleanup(self, keep_days: float) -> CleanupResult:
        data = self._request("POST", "/history/cleanup", body={"keep_days": keep_days})
        return CleanupResult.model_validate(data)
