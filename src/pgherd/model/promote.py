"""Promote: whether turning a standby into the primary could create a second primary or
lose data another standby already has.

A promotion is refused while a primary runs and answers. A node whose agent does not
answer might be such a primary: the user has to state that it is gone (``--force``).
Promoting a standby that has less WAL than another one loses those transactions: also
refused unless forced, and the numbers say how much.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgherd.model.checks import (
    Check,
    by_name,
    failed,
    forceable,
    known,
    passed,
    reachable,
    running_primaries,
)
from pgherd.model.lsn import Lsn
from pgherd.model.status import NodeStatus, PgState, Role


def assess(statuses: Sequence[NodeStatus], target: str, force: bool) -> tuple[Check, ...]:
    checks: list[Check] = [known(target, statuses)]
    nodes = by_name(statuses)
    status = nodes.get(target)
    if status is None:
        return tuple(checks)
    checks.append(reachable(target, status))
    if status.state is PgState.UNREACHABLE:
        return tuple(checks)
    checks.append(_target(status))
    primaries = [p for p in running_primaries(statuses) if p.name != target]
    if primaries:
        checks.append(
            failed(
                "no-primary",
                f"this cluster already has an active primary {primaries[0].name!r}",
                f"switch over instead: pgherd standby switchover --to {target}"
                f" (or stop {primaries[0].name} first if it must go)",
            )
        )
    else:
        checks.append(passed("no-primary", "no other primary is running"))
    for other in statuses:
        if other.name != target and other.state is PgState.UNREACHABLE:
            checks.append(
                forceable(
                    failed(
                        "others-known",
                        f"the agent of {other.name} does not answer, so it may still run a primary",
                        f"if {other.name} is gone, say so with --force",
                    ),
                    force,
                )
            )
    checks.extend(forceable(c, force) for c in _most_advanced(status, statuses))
    return tuple(checks)


def _target(status: NodeStatus) -> Check:
    if status.state is not PgState.RUNNING:
        return failed(
            "target-running",
            f"{status.name} is {status.state}",
            f"start it first: pgherd node start {status.name}",
        )
    if status.role is not Role.STANDBY:
        return failed("target-standby", f"{status.name} is not a standby (it is {status.role})")
    return passed("target-standby", f"{status.name} is a running standby")


def _most_advanced(target: NodeStatus, statuses: Sequence[NodeStatus]) -> list[Check]:
    """Other running standbys on the same timeline that hold WAL the target lacks."""
    mine = _furthest(target)
    if target.state is not PgState.RUNNING or mine is None:
        return []
    checks: list[Check] = []
    for other in statuses:
        if other.name == target.name or other.role is not Role.STANDBY:
            continue
        if other.state is not PgState.RUNNING or other.timeline != target.timeline:
            continue
        theirs = _furthest(other)
        if theirs is not None and theirs > mine:
            checks.append(
                failed(
                    "most-advanced",
                    f"{other.name} has WAL up to {theirs}, {theirs - mine} bytes more than "
                    f"{target.name} (up to {mine}); promoting {target.name} loses them",
                    f"promote {other.name} instead, or pass --force to accept the loss",
                )
            )
    if not checks:
        checks.append(passed("most-advanced", f"no standby has more WAL than {target.name}"))
    return checks


def _furthest(status: NodeStatus) -> Lsn | None:
    """The furthest WAL a standby holds: received (flushed) or replayed, whichever is more
    (a restarted standby reports its receive position from the start of a segment)."""
    known = [lsn for lsn in (status.receive_lsn, status.replay_lsn) if lsn is not None]
    return max(known, default=None)
