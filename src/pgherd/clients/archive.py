"""The CLI's side of the agent's archive endpoints (api/routes_archive.py)."""

from __future__ import annotations

from typing import Any

from pgherd.clients.agent import AgentClient
from pgherd.pg.archive_sql import ArchiverState, ReplayState, RestorePointMade, WalSwitch


class ArchiveAgentClient(AgentClient):
    def replay(self) -> ReplayState:
        return ReplayState.model_validate(self._request("GET", "/replay"))

    def pause_replay(self) -> ReplayState:
        return ReplayState.model_validate(self._request("POST", "/replay/pause"))

    def resume_replay(self) -> ReplayState:
        return ReplayState.model_validate(self._request("POST", "/replay/resume"))

    def switch_wal(self) -> WalSwitch:
        return WalSwitch.model_validate(self._request("POST", "/wal/switch"))

    def restore_point(self, name: str) -> RestorePointMade:
        return RestorePointMade.model_validate(
            self._request("POST", "/restore-point", body={"name": name})
        )

    def archiver(self) -> ArchiverState:
        return ArchiverState.model_validate(self._request("GET", "/archiver"))

    def take_backup(
        self, kind: str, repository: str | None, timeout: float = 24 * 3600
    ) -> dict[str, Any]:
        """A bundled backup of this node taken by its agent; the catalog entry (JSON)."""
        answer = self._request(
            "POST", "/backup", timeout, body={"type": kind, "repository": repository}
        )
        assert isinstance(answer, dict)
        return answer

    def pusher(self) -> dict[str, Any]:
        """The agent's WAL pusher: waiting, in flight, pushed, failures (PushStatus)."""
        answer = self._request("GET", "/archive/pusher")
        assert isinstance(answer, dict)
        return answer
