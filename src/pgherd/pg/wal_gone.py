"""A starting standby whose upstream removed the WAL it needs, told from its server log.

After pg_rewind (or on a standby left down too long), the server replays its upstream's
WAL before it is consistent. When the upstream has recycled a segment it needs and no
archive holds it, the wal receiver logs ``requested WAL segment … has already been
removed`` at every retry, forever; nothing else in the log or the process titles says
the wait is hopeless. :class:`GoneWatch` turns that line, repeated, into a verdict, so
that a rejoin clones the node at once instead of waiting out a timeout first.
"""

from __future__ import annotations

import re
from pathlib import Path

# The same segment named again this long after it was first seen: not a passing miss
# (the wal receiver retries every wal_retrieve_retry_interval, 5 s by default).
WAL_GONE_SECONDS = 5.0
READ_EVERY = 1.0  # seconds between reads of the log
_TAIL = 65536  # at most this much of the log's new bytes is read at a time

_REMOVED = re.compile(rb"requested WAL segment ([0-9A-F]{24}) has already been removed")


def removed_segment(text: bytes) -> str | None:
    """The last segment ``text`` (server log lines) says the upstream has removed."""
    found = _REMOVED.findall(text)
    return found[-1].decode() if found else None


class GoneWatch:
    """Reads what a server log gained since ``offset``, at most every :data:`READ_EVERY`
    seconds; :meth:`check` answers the missing segment once the log has named the same
    one again :data:`WAL_GONE_SECONDS` after it first did."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.segment: str | None = None
        self.first_seen = 0.0
        self.next_read = 0.0

    def check(self, log: Path, now: float) -> str | None:
        if now < self.next_read:
            return None
        self.next_read = now + READ_EVERY
        return self.seen(self._read(log), now)

    def seen(self, text: bytes, now: float) -> str | None:
        """The verdict after the log's new ``text`` was read at ``now``."""
        segment = removed_segment(text)
        if segment is None:
            return None
        if segment != self.segment:
            self.segment, self.first_seen = segment, now
            return None
        return segment if now - self.first_seen >= WAL_GONE_SECONDS else None

    def _read(self, log: Path) -> bytes:
        try:
            with log.open("rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:  # rotated or truncated: start over
                    self.offset = 0
                handle.seek(max(self.offset, size - _TAIL))
                text = handle.read()
        except OSError:
            return b""
        self.offset = size
        return text
