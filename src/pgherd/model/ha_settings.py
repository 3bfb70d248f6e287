"""The settings of automatic failover, as decide() takes them, and the timing rule.

Apart from model/ha.py so that config.py, which validates pgherd.yaml's ``ha:`` section
with this rule and takes its defaults from here, imports nothing heavier.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    MANUAL = "manual"
    AUTOMATIC = "automatic"


@dataclass(frozen=True)
class Settings:
    mode: Mode = Mode.AUTOMATIC
    ttl: float = 3.0
    loop_wait: float = 0.5
    retry_timeout: float = 1.0
    maximum_lag: int = 16 * 1024 * 1024
    primary_start_timeout: float = 10.0
    synchronous: bool = False
    sync_quorum: int = 1  # commits wait for this many synchronous standbys
    failsafe: bool = False

    def timing_problem(self) -> str | None:
        return timing_problem(self.ttl, self.loop_wait, self.retry_timeout)


def timing_problem(ttl: float, loop_wait: float, retry_timeout: float) -> str | None:
    """The rule that lets a primary demote before its lease can expire elsewhere (config.py
    refuses a pgherd.yaml that breaks it; docs/failover.md works an example through)."""
    need = loop_wait + 2 * retry_timeout
    if ttl < need:
        return (
            f"ttl ({ttl:g} s) must be at least loop_wait + 2 × retry_timeout "
            f"({loop_wait:g} + 2 × {retry_timeout:g} = {need:g} s), so that a primary that "
            "cannot renew its lease demotes before it expires"
        )
    return None
