"""The agent itself: ``POST /agent/reload`` re-reads pgherd.yaml (as SIGHUP does) and
answers what changed (ha/reload.py). It acts: an operator's or a peer's credential."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter

from pgherd.api.auth import authorized
from pgherd.model.reload import ReloadReport


class ReloadPort(Protocol):
    def reload(self) -> ReloadReport: ...


def router(reloader: ReloadPort) -> APIRouter:
    routes = APIRouter(prefix="/agent", dependencies=authorized())

    @routes.post("/reload")
    def reload() -> ReloadReport:
        """Read pgherd.yaml again: settings, members and this node's failover tags apply
        now; the rest is listed as needing an agent restart. 409 when the file is refused
        (nothing changed)."""
        return reloader.reload()

    return routes
