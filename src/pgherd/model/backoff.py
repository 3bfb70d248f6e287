"""How long to wait before starting a crashed process again (the postmaster, a mesh apply
worker): a pure schedule, shared by every supervisor of a child process."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Seconds to wait before the next restart after a crash: none the first time, then
    2, 4, 8… up to ``limit``; back to none once the server ran ``stable_after`` seconds."""

    limit: float = 30.0
    stable_after: float = 60.0
    failures: int = 0
    last_start: float = field(default=0.0)

    def next_delay(self, now: float) -> float:
        if now - self.last_start > self.stable_after:
            self.failures = 0
        delay = min(2.0**self.failures, self.limit) if self.failures else 0.0
        self.failures += 1
        return delay
