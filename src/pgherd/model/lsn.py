"""Log sequence numbers: PostgreSQL's ``X/Y`` WAL positions as ordered integers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True, order=True, slots=True)
class Lsn:
    """A WAL position; subtraction gives the distance in bytes, as pg_wal_lsn_diff does."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << 64:
            raise ValueError(f"LSN out of range: {self.value}")

    @classmethod
    def parse(cls, text: str) -> Self:
        match = _LSN.match(text.strip())
        if match is None:
            raise ValueError(f"not an LSN: {text!r} (expected the form 16/B374D848)")
        high, low = (int(part, 16) for part in match.groups())
        return cls(high << 32 | low)

    @classmethod
    def parse_optional(cls, text: str | None) -> Self | None:
        return None if text is None else cls.parse(text)

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __sub__(self, other: Lsn) -> int:
        return self.value - other.value

    def segment_number(self, segment_size: int = 16 * 1024 * 1024) -> int:
        """The number of the WAL segment that holds this position."""
        return self.value // segment_size


def lag_bytes(ahead: Lsn | None, behind: Lsn | None) -> int | None:
    """How many bytes ``behind`` trails ``ahead``; never negative, None when unknown.

    A standby can report a replay position past the primary's last flushed position for a
    moment (it replays what it received before the primary's status was read), which is
    zero lag, not a negative one.
    """
    if ahead is None or behind is None:
        return None
    return max(ahead - behind, 0)
