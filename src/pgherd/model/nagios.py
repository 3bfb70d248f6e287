"""One node's health for Nagios, Icinga and their kin (``pgherd node check --nagios``). Pure.

The plugins' convention: one line ``SERVICE STATE - text | perfdata``, exit code 0 (OK),
1 (WARNING), 2 (CRITICAL), 3 (UNKNOWN). Perfdata items are ``'label'=value[UOM];warn;crit;min;max``
(https://nagios-plugins.org/doc/guidelines.html#AEN200), so graphs come for free.

Checked, each against its warning and critical thresholds: the node's agent answers and
its PostgreSQL runs; its role (a standby streams from its upstream); a standby's lag
behind the primary (bytes and seconds); the WAL its replication slots retain; on a
primary that archives, failing ``archive_command`` runs and segments waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Protocol

from pgherd.model.cluster import NodeRow
from pgherd.model.status_lite import PgState, Role


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class _Slot(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def retained_bytes(self) -> int | None: ...


class CheckedStatus(Protocol):
    """What the check reads of a node's status: NodeStatus or, for ``pgherd node check``
    (a quick command), LiteStatus."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> PgState: ...

    @property
    def role(self) -> Role: ...

    @property
    def error(self) -> str | None: ...

    @property
    def slots(self) -> Sequence[_Slot]: ...


@dataclass(frozen=True)
class Thresholds:
    lag_bytes: tuple[int, int] = (16 * 1024**2, 256 * 1024**2)  # warning, critical
    lag_seconds: tuple[float, float] = (30.0, 300.0)
    slot_bytes: tuple[int, int] = (1024**3, 8 * 1024**3)
    archive_pending: tuple[int, int] = (10, 100)


@dataclass(frozen=True)
class ArchiveFacts:
    """What a primary's archiver says (``GET /archiver``)."""

    mode: str
    failed_count: int
    ready_count: int
    last_failed: datetime | None
    last_archived: datetime | None

    @property
    def failing(self) -> bool:
        """Its last attempt failed (a failure newer than the last success)."""
        if self.last_failed is None:
            return False
        return self.last_archived is None or self.last_failed > self.last_archived


@dataclass(frozen=True)
class Perf:
    label: str
    value: float
    unit: str = ""
    warn: float | None = None
    crit: float | None = None
    minimum: float | None = None

    def render(self) -> str:
        def num(v: float | None) -> str:
            if v is None:
                return ""
            return str(int(v)) if float(v).is_integer() else f"{v:.3f}"

        tail = ";".join((num(self.warn), num(self.crit), num(self.minimum), "")).rstrip(";")
        return f"'{self.label}'={num(self.value)}{self.unit}" + (f";{tail}" if tail else "")


@dataclass(frozen=True)
class CheckResult:
    node: str
    state: State
    summary: str
    problems: tuple[str, ...] = ()
    perf: tuple[Perf, ...] = field(default_factory=tuple)

    def line(self) -> str:
        perf = " ".join(p.render() for p in self.perf)
        text = f"PGHERD {self.state.name} - {self.summary}"
        return f"{text} | {perf}" if perf else text

    def as_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "state": self.state.name,
            "exit_code": int(self.state),
            "summary": self.summary,
            "problems": list(self.problems),
            "perfdata": {p.label: p.value for p in self.perf},
        }


def check(
    status: CheckedStatus,
    row: NodeRow | None,
    archive: ArchiveFacts | None,
    limits: Thresholds = Thresholds(),
) -> CheckResult:
    """The node's verdict: the worst of its checks, every problem named."""
    name = status.name
    if status.state is PgState.UNREACHABLE:
        return CheckResult(
            name, State.CRITICAL, f"{name}: the agent does not answer ({status.error})"
        )
    found: list[tuple[State, str]] = []
    perf: list[Perf] = [Perf("primary", 1.0 if status.role is Role.PRIMARY else 0.0)]
    if status.state is not PgState.RUNNING:
        found.append((State.CRITICAL, f"PostgreSQL is {status.state}"))
    role_text = str(status.role)
    if status.role is Role.STANDBY and row is not None:
        role_text = f"standby of {row.upstream or '?'}, {row.state}"
        if status.state is PgState.RUNNING and row.state == "not streaming":
            found.append((State.CRITICAL, "the standby does not stream from its upstream"))
        found += _over("lag", row.lag_bytes, limits.lag_bytes, _bytes)
        found += _over("lag", row.lag_seconds, limits.lag_seconds, lambda v: f"{v:.1f} s")
        if row.lag_bytes is not None:
            perf.append(Perf("lag", row.lag_bytes, "B", *limits.lag_bytes, 0))
        if row.lag_seconds is not None:
            perf.append(Perf("lag_time", row.lag_seconds, "s", *limits.lag_seconds, 0))
    retained = [s.retained_bytes for s in status.slots if s.retained_bytes is not None]
    if status.slots:
        worst = max(status.slots, key=lambda s: s.retained_bytes or 0)
        found += _over(
            f"slot {worst.name} retains", worst.retained_bytes, limits.slot_bytes, _bytes
        )
        perf.append(Perf("slot_retained", max(retained, default=0), "B", *limits.slot_bytes, 0))
    if archive is not None and archive.mode != "off" and status.role is Role.PRIMARY:
        if archive.failing:
            found.append((State.CRITICAL, "archive_command fails (its last attempt failed)"))
        found += _over(
            "segments waiting for archive_command",
            archive.ready_count,
            limits.archive_pending,
            lambda v: str(int(v)),
        )
        perf.append(Perf("archive_pending", archive.ready_count, "", *limits.archive_pending, 0))
        perf.append(Perf("archive_failed", archive.failed_count, "c", minimum=0))
    state = max((s for s, _ in found), default=State.OK)
    problems = tuple(text for _, text in sorted(found, key=lambda f: -f[0]))
    summary = f"{name} {role_text}"
    if problems:
        summary += ": " + "; ".join(problems)
    return CheckResult(name, state, summary, problems, tuple(perf))


def _over(
    what: str, value: float | None, limits: tuple[float, float], show: Callable[[float], str]
) -> list[tuple[State, str]]:
    if value is None:
        return []
    warn, crit = limits
    if value > crit:
        return [(State.CRITICAL, f"{what} {show(value)} (critical above {show(crit)})")]
    if value > warn:
        return [(State.WARNING, f"{what} {show(value)} (warning above {show(warn)})")]
    return []


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"
