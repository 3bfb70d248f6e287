"""The CLI's side of the agent's archive endpoints (api/routes_archive.py).

The answers' models (pydantic) are imported by the call that reads one: ``backup
create`` and ``restore`` import this module and start without pydantic
(docs/architecture.md), and most of their runs ask no agent anything here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgherd.clients.agent import AgentClient
from pgherd.errors import AgentError
from pgherd.model.wal_switch import SwitchedWal, read_wal_switch

if TYPE_CHECKING:
    from pgherd.model.archive_api import BackupMade, PusherState
    from pgherd.pg.archive_sql import ArchiverState, ReplayState, RestorePointMade


class ArchiveAgentClient(AgentClient):
    def replay(self) -> ReplayState:
        from pgherd.pg.archive_sql import ReplayState

        return ReplayState.model_validate(self._request("GET", "/replay"))

    def pause_replay(self) -> ReplayState:
        from pgherd.pg.archive_sql import ReplayState

        # The agent answers once the pause is taken, or after archive_sql's 5 s wait.
        return ReplayState.model_validate(self._request("POST", "/replay/pause", timeout=15))

    def resume_replay(self) -> ReplayState:
        from pgherd.pg.archive_sql import ReplayState

        return ReplayState.model_validate(self._request("POST", "/replay/resume"))

    def switch_wal(self) -> SwitchedWal:
        """pg_switch_wal on the node, read without pydantic (``archive check`` is quick)."""
        try:
            return read_wal_switch(self._request("POST", "/wal/switch"))
        except ValueError as exc:
            raise AgentError(
                f"{self.node.name}: the agent's answer could not be read ({exc})",
                "is the agent a different pgherd version? upgrade both to the same one",
            ) from None

    def restore_point(self, name: str) -> RestorePointMade:
        from pgherd.pg.archive_sql import RestorePointMade

        return RestorePointMade.model_validate(
            self._request("POST", "/restore-point", body={"name": name})
        )

    def archiver(self) -> ArchiverState:
        from pgherd.pg.archive_sql import ArchiverState

        return ArchiverState.model_validate(self._request("GET", "/archiver"))

    def take_backup(
        self,
        kind: str,
        repository: str | None,
        timeout: float = 24 * 3600,
        checksum: bool = False,
    ) -> BackupMade:
        """A bundled backup of this node taken by its agent (its catalog entry)."""
        from pgherd.model.archive_api import BackupMade

        body: dict[str, object] = {"type": kind, "repository": repository}
        if checksum:  # only when asked: an older agent forbids fields it does not know
            body["checksum"] = True
        return BackupMade.model_validate(self._request("POST", "/backup", timeout, body=body))

    def pusher(self) -> PusherState:
        """The agent's WAL pusher: waiting, in flight, pushed, failures."""
        from pgherd.model.archive_api import PusherState

        return PusherState.model_validate(self._request("GET", "/archive/pusher"))
