"""What clients were told, as the fault suite records it: one line per write a client sent.

Each client writes rows with keys of its own (never reused, never retried under the same
key) and records, for every INSERT it sent, when it sent it, when (if) the server said
COMMIT, and which server said so on which timeline (the INSERT returns
``inet_server_addr()`` and the timeline of ``pg_current_wal_insert_lsn()``'s WAL file).
The checker (tests/faults/checker.py) reads these lines and the members' tables, nothing
else: it judges what clients were told, not what the agents say they did.

Times are the machine's wall clock in seconds (every test host shares it); the fault
harness stamps its own actions (a cut, a heal) on the same clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path


class Outcome(StrEnum):
    ACKED = "acked"  # the server acknowledged the commit
    FAILED = "failed"  # the server refused it (an error reply): it did not commit
    UNKNOWN = "unknown"  # no answer (connection lost): it may or may not have committed


@dataclass(frozen=True)
class Write:
    key: int
    client: str  # which client sent it ("uri", "haproxy"…)
    sent: float
    answered: float | None  # when the answer (acknowledgement or error) arrived
    outcome: Outcome
    server: str | None = None  # the node that acknowledged it
    timeline: int | None = None
    error: str | None = None

    @property
    def acked(self) -> bool:
        return self.outcome is Outcome.ACKED

    @property
    def epoch(self) -> Epoch | None:
        """The primary that acknowledged it: a node on a timeline."""
        if not self.acked or self.server is None or self.timeline is None:
            return None
        return Epoch(self.server, self.timeline)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_json(cls, line: str) -> Write:
        raw = json.loads(line)
        raw["outcome"] = Outcome(raw["outcome"])
        raw.setdefault("answered", None)
        return cls(**raw)


@dataclass(frozen=True, order=True)
class Epoch:
    """One primary's reign as clients saw it: a node on a timeline. A promotion always
    starts a new timeline, so two epochs are two primaries (or one node twice)."""

    server: str
    timeline: int

    def __str__(self) -> str:
        return f"{self.server} (timeline {self.timeline})"


def read(paths: Iterable[Path]) -> tuple[Write, ...]:
    """Every write the clients recorded, in the order they were sent."""
    found: list[Write] = []
    for path in paths:
        found.extend(_lines(path))
    return tuple(sorted(found, key=lambda w: (w.sent, w.key)))


def _lines(path: Path) -> Iterator[Write]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if line.strip():
            yield Write.from_json(line)
