"""What the agents' operation endpoints return: plain values that cross the HTTP API.

The orchestrator (``pgherd.ops``) reads them and decides with the pure functions of
``model``; the agent fills them from its own server.
"""

from __future__ import annotations

from pgherd.model.lsn import Lsn
from pgherd.model.status import Frozen, LsnField, Role
from pgherd.model.timeline import History, WalPosition, parse_history


class NodeWal(Frozen):
    """Where a node's WAL ends and the timeline history it knows.

    ``lsn`` is exact (the end of the WAL) for a running server; for a server that was shut
    down cleanly as a primary it is the start of its shutdown checkpoint record
    (``exact`` False). ``lsn`` is None when the end is unknown: a server that crashed or
    was killed, whose WAL only crash recovery (or pg_rewind) can read to its end.
    """

    name: str
    running: bool
    role: Role
    cluster_state: str | None = None  # pg_controldata's "Database cluster state"
    timeline: int
    lsn: LsnField | None
    exact: bool = True
    history_timeline: int = 1  # the newest timeline whose history the node holds
    history: str = ""  # that history file's text ("" for timeline 1)
    rewindable: bool = True  # data checksums or wal_log_hints: pg_rewind can work on it
    unknown: str = ""  # why ``lsn`` is None

    @property
    def clean_shutdown(self) -> bool:
        return not self.running and self.cluster_state in ("shut down", "shut down in recovery")

    def parsed_history(self) -> History:
        return parse_history(self.history_timeline, self.history)

    def position(self) -> WalPosition | None:
        if self.lsn is None:
            return None
        return WalPosition(self.timeline, self.lsn, self.exact)


def timeline_at(history: History, lsn: Lsn) -> int:
    """The timeline a standby that follows ``history`` is on after replaying up to ``lsn``."""
    for switch in history.switches:
        if lsn <= switch.lsn:
            return switch.timeline
    return history.timeline


class PromoteResult(Frozen):
    name: str
    timeline_before: int
    timeline_after: int
    lsn: LsnField | None
    seconds: float


class RewindResult(Frozen):
    """pg_rewind's outcome on the node: whether it had to copy anything, and from where."""

    name: str
    source: str
    rewound: bool  # False: "no rewind required"
    diverged_at: LsnField | None = None
    diverged_timeline: int | None = None
    copied_mb: int | None = None  # pg_rewind copies changed blocks, and whole WAL files
    source_mb: int | None = None
    seconds: float
    output: str = ""  # the last lines pg_rewind printed


class ReplayWait(Frozen):
    name: str
    reached: bool
    target: LsnField
    replay_lsn: LsnField | None
    receive_lsn: LsnField | None
    seconds: float


class SlotChange(Frozen):
    node: str
    slot: str
    changed: bool  # created or dropped; False when there was nothing to do
    detail: str = ""


class CloneSummary(Frozen):
    name: str
    upstream: str
    bytes_copied: int
    seconds: float
    slot_created: bool


class CheckpointDone(Frozen):
    name: str
    redo_lsn: LsnField | None
    seconds: float


class SlotState(Frozen):
    """A slot's state file from a primary, for a standby's copy (model/failover_slots.py):
    ``state`` base64."""

    node: str
    slot: str
    state: str
